"""A fake election, a test job and a node (scheduler + database) for scheduler tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from revenge.activity import record_activity
from revenge.db import Database, DatabaseUnavailable, activity, create_database_engine, job_runs
from revenge.election import IElection, LeadershipChange
from revenge.jobs import JobRun, JobScheduler, take_office
from revenge.jobs._ledger import LedgerRow
from revenge.jobs._periods import tick_lag
from revenge.metrics import Metrics

INTERVAL = 60.0
# A period boundary in a realistic year, so timestamps look like real ones.
FIRST_PERIOD = 28_333_334
PROBE = "probe"
# How long a scheduler test waits for a run to get somewhere (eventually);
# generous, it only bounds a failing test.
DEADLINE_S = 15.0


@implementer(IElection)
class FakeElection:
    """An election the test decides; ``win``/``lose`` announce, ``leading`` alone does not."""

    name = "fake"

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.leading = False
        self.current_term = 0
        self.current_leader: str | None = None
        self._subscribers: dict[object, Callable[[LeadershipChange], None]] = {}

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def is_leader(self) -> bool:
        return self.leading

    def leader(self) -> str | None:
        return self.current_leader

    def term(self) -> int:
        return self.current_term

    def status(self) -> dict[str, Any]:
        return {"peers": [], "has_quorum": True}

    def subscribe(self, callback: Callable[[LeadershipChange], None]) -> Callable[[], None]:
        token = object()
        self._subscribers[token] = callback
        return lambda: self._subscribers.pop(token, None) and None

    def announce(self) -> None:
        change = LeadershipChange(self.leading, self.current_leader, self.current_term)
        for callback in list(self._subscribers.values()):
            callback(change)

    def win(self) -> None:
        self.leading = True
        self.current_term += 1
        self.current_leader = self.node_id
        self.announce()

    def lose(self, new_leader: str | None = None) -> None:
        self.leading = False
        self.current_leader = new_leader
        self.announce()


class FlakyDatabase(Database):
    """A database whose writes fail (as if unreachable) while ``failing`` is set."""

    failing = False

    async def write(self, work: Any) -> Any:
        if self.failing:
            raise DatabaseUnavailable("test: the database is unreachable")
        return await super().write(work)


class ProbeJob:
    """
    Writes one activity row per step (``probe.step``, details {"step": n});
    before each step after the first it waits for ``gate`` when one is set.
    """

    name = PROBE

    def __init__(self, steps: int = 1, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.steps = steps
        self.gate: Deferred[None] | None = None
        self.waiting = False
        self.runs = 0

    async def run(self, run: JobRun) -> None:
        self.runs += 1
        for step in range(self.steps):
            if step and self.gate is not None:
                self.waiting = True
                await self.gate
                self.waiting = False
            await run.write(
                lambda connection, step=step: record_activity(
                    connection,
                    action="probe.step",
                    node_id=run.node_id,
                    details={"step": step, "term": run.term, "period": run.period},
                )
            )
            run.changed = True
        run.details["steps"] = self.steps


@dataclass
class Node:
    node_id: str
    database: Database
    election: FakeElection
    metrics: Metrics
    scheduler: JobScheduler

    def count(self, result: str, job: str = PROBE) -> float:
        value = self.metrics.registry.get_sample_value(
            "revenge_job_runs_total", {"job": job, "result": result}
        )
        return value or 0.0

    async def settle(self, timeout: float = 15.0) -> None:
        await ensureDeferred(self.scheduler.wait_idle()).addTimeout(timeout, global_reactor)


def make_node(
    url: str,
    node_id: str,
    clock: Clock,
    jobs: list[Any],
    database_class: type[Database] = Database,
) -> Node:
    database = database_class(create_database_engine(url), global_reactor, node_id)
    database.schema_ready = True
    election = FakeElection(node_id)
    metrics = Metrics()
    scheduler = JobScheduler(
        jobs,
        database=database,
        election=election,
        metrics=metrics,
        node_id=node_id,
        clock=clock,
    )
    return Node(node_id, database, election, metrics, scheduler)


def boundary(period: int, interval: float = INTERVAL) -> float:
    """The first moment of ``period``."""
    return period * interval


class Cluster:
    """Nodes sharing one database and one fake clock; time moves only when told."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.nodes: list[Node] = []

    def add(
        self, node_id: str, jobs: list[Any], database_class: type[Database] = Database
    ) -> Node:
        node = make_node(self.url, node_id, self.clock, jobs, database_class)
        self.nodes.append(node)
        return node

    async def settle(self) -> None:
        """Wait until no node has database work in flight."""
        for _ in range(3):
            for node in self.nodes:
                await node.settle()

    async def advance_to(self, moment: float) -> None:
        """
        Move the clock like a reactor would: to each scheduled call in turn
        (at most a second at a time), letting the work each one starts finish.
        """
        now = self.clock.seconds()
        assert moment >= now, (moment, now)
        while True:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            if any(when <= now for when in due):
                self.clock.advance(0)
            elif now >= moment:
                return
            else:
                later = min((when for when in due), default=moment)
                self.clock.advance(min(later, moment, now + 1.0) - now)
            await self.settle()
            now = self.clock.seconds()

    async def advance_into(self, period: int, interval: float = INTERVAL) -> None:
        """To the first tick of ``period``: its boundary plus the tick lag."""
        await self.advance_to(boundary(period, interval) + tick_lag(5.0))


async def ledger(database: Database, job: str = PROBE) -> list[LedgerRow]:
    def read(connection: Any) -> list[LedgerRow]:
        rows = connection.execute(
            select(job_runs).where(job_runs.c.job == job).order_by(job_runs.c.period)
        )
        return [LedgerRow.from_row(row) for row in rows]

    return await database.read(read)


async def activity_rows(database: Database, action: str | None = None) -> list[Any]:
    def read(connection: Any) -> list[Any]:
        query = select(activity).order_by(activity.c.id)
        if action is not None:
            query = query.where(activity.c.action == action)
        return list(connection.execute(query))

    return await database.read(read)


async def leader_run(database: Database, job: str, term: int | None = None) -> JobRun:
    """A run of ``job`` as node "a" would make it, in ``term`` (else a new term it takes)."""
    if term is None:
        term = await database.write(lambda connection: take_office(connection, "a", [job]))
    return JobRun(
        job=job,
        term=term,
        node_id="a",
        period=1,
        request_id="run-1",
        database=database,
        ensure_current=lambda: None,
    )
