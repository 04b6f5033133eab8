"""
The scheduler service: leader-only jobs, once per period, under a fencing
term from the database. docs/jobs.md explains the algorithm. Two parts do the
work: the office (``_office``: leadership and its fencing term) and the
runner (``_runner``: ticks, claims, runs and their counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime

from revenge.db import Database
from revenge.election import IElection
from revenge.jobs._job import Job
from revenge.jobs._office import Office
from revenge.jobs._outcomes import NotLeader, RunReport
from revenge.jobs._periods import MAX_TICK_S
from revenge.jobs._runner import Runner
from revenge.jobs._waiting import when_done
from revenge.metrics import Metrics


class JobScheduler(Service):
    """
    Runs ``jobs`` on this node whenever the election says it leads and it
    holds a fencing term. Add it as the server's last service so that it
    stops first: no job is left running while the rest shuts down.
    """

    name = "scheduler"

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        database: Database,
        election: IElection,
        metrics: Metrics,
        node_id: str,
        clock: IReactorTime,
        max_tick: float = MAX_TICK_S,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self._office = Office(
            database=database,
            election=election,
            node_id=node_id,
            clock=clock,
            jobs=jobs,
            on_term=lambda taken: self._runner.on_new_term(taken),
        )
        self._runner = Runner(
            jobs,
            database=database,
            office=self._office,
            metrics=metrics,
            node_id=node_id,
            clock=clock,
            max_tick=max_tick,
        )

    # What routes and tests read.

    @property
    def jobs(self) -> list[Job]:
        return self._runner.jobs

    def job(self, name: str) -> Job | None:
        return self._runner.job(name)

    @property
    def fencing_term(self) -> int | None:
        """The term this node's job writes carry; None unless it leads and has taken one."""
        return self._office.term

    def tick_of(self, name: str) -> float:
        return self._runner.tick_of(name)

    async def wait_idle(self) -> None:
        """
        Wait until no run, claim or take-office transaction is in flight on
        this node. A take-office waiting to retry is idle: it waits on the clock.
        """
        while True:
            pending: list[Deferred[Any]] = [*self._runner.in_flight(), *self._office.in_flight()]
            if not pending:
                return
            for deferred in pending:
                await when_done(deferred)

    # Service.

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._runner.start()
        self._office.open()

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        super().stopService()
        self._runner.stop()
        self._office.close()
        waiting = [when_done(busy) for busy in self._runner.in_flight()]
        taking = self._office.taking()
        if taking is not None:
            waiting.append(when_done(taking))
        return ensureDeferred(self._wait_for(waiting))

    async def _wait_for(self, waiting: list[Deferred[None]]) -> None:
        for done in waiting:
            await done

    # Manual runs.

    async def run_now(self, name: str, actor: str | None = None) -> RunReport:
        """
        Run job ``name`` at once, on this node if it leads, through the fence
        under the current term and without a ledger row (docs/jobs.md,
        "Manual runs"). Raises UnknownJob, NotLeader, NoFencingTerm or JobBusy.
        The run goes on if the caller stops waiting.
        """
        if not self.running:
            raise NotLeader(self._office.leader())
        return await self._runner.run_now(name, actor)
