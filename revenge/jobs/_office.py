"""
Leadership as the election announces it, and the fencing term taken for it
(docs/jobs.md, "The fencing token"). The scheduler's runner asks this office
whether, and under which term, it may run anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from revenge.db import Database, describe_database_error
from revenge.election import IElection, LeadershipChange
from revenge.jobs._fence import take_office
from revenge.jobs._job import Job
from revenge.jobs._ledger import LedgerRow, abandon_stale_runs, last_success_periods
from revenge.jobs._periods import period_of, utc
from revenge.jobs._waiting import when_done

_log = Logger(namespace="revenge.jobs")

# Retrying to take a fencing term while the database does not answer.
TAKE_OFFICE_FIRST_RETRY_S = 0.25
TAKE_OFFICE_MAX_RETRY_S = 5.0
# Waiting for the database service to finish migrating, quietly.
SCHEMA_POLL_S = 0.25


@dataclass(frozen=True)
class TermTaken:
    """What taking office found, for the runner."""

    term: int
    # Per job: the unfinished rows of older terms in past periods, now abandoned.
    abandoned: dict[str, list[LedgerRow]] = field(default_factory=dict)
    # Per job: the newest period with a successful run (None: never).
    last_success: dict[str, int | None] = field(default_factory=dict)


class Office:
    """
    Follows the election; on becoming leader takes a new fencing term from
    the database (retrying while it does not answer) and hands it to
    ``on_term``. ``term`` is None unless this node leads and holds one.
    """

    def __init__(
        self,
        *,
        database: Database,
        election: IElection,
        node_id: str,
        clock: IReactorTime,
        jobs: Sequence[Job],
        on_term: Callable[[TermTaken], None],
    ) -> None:
        self._database = database
        self._election = election
        self._node_id = node_id
        self._clock = clock
        self._jobs = list(jobs)
        self._on_term = on_term
        # Leadership as announced by the election, and the term taken for it.
        self._leading = False
        self._term: int | None = None
        # The election's own term when this leadership began.
        self._leader_since_term: int | None = None
        # Bumped whenever leadership begins or ends: a take-office attempt
        # started under an older epoch must not install its term.
        self._epoch = 0
        self._taking_office: Deferred[None] | None = None
        self._office_write: Deferred[TermTaken] | None = None
        self._pause: Deferred[None] | None = None
        self._open = False
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def term(self) -> int | None:
        """The term this node's job writes carry; None unless it leads and has taken one."""
        return self._term

    def elected(self) -> bool:
        """Leadership was announced and the election still says so (checked now)."""
        return self._open and self._leading and self._election.is_leader()

    def leads(self) -> bool:
        """Elected, and holding a fencing term: jobs may run."""
        return self._term is not None and self.elected()

    def leader(self) -> str | None:
        return self._election.leader()

    def in_flight(self) -> list[Deferred[TermTaken]]:
        """The take-office transaction on the database, if any (not a pause between retries)."""
        return [] if self._office_write is None else [self._office_write]

    def taking(self) -> Deferred[None] | None:
        return self._taking_office

    def open(self) -> None:
        self._open = True
        self._unsubscribe = self._election.subscribe(self._on_leadership_change)
        # The election may have announced leadership before the scheduler
        # started (standalone does so in its start()): ask it now.
        if self._election.is_leader():
            self._on_leadership_change(
                LeadershipChange(True, self._election.leader(), self._election.term())
            )

    def close(self) -> None:
        self._open = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._end_leadership()

    def _on_leadership_change(self, change: LeadershipChange) -> None:
        if not self._open:
            return
        if change.is_leader:
            # The same leadership announced again (quorum, leader name): nothing
            # new. A different election term means a new election was won
            # (possibly with a loss in between that was never announced), and
            # gets a new fencing term. The election may also report our own
            # fencing term as its term.
            if self._leading and change.term in (self._leader_since_term, self._term):
                return
            self._begin_leadership(change.term)
        elif self._leading:
            _log.info("no longer leading: jobs stop at their next write")
            self._end_leadership()

    def _begin_leadership(self, election_term: int | None) -> None:
        self._end_leadership()
        self._leading = True
        self._leader_since_term = election_term
        self._epoch += 1
        previous = self._taking_office
        taking = ensureDeferred(self._take_office(self._epoch, previous))
        self._taking_office = taking
        taking.addErrback(
            lambda failure: _log.failure("taking a fencing term crashed", failure=failure)
        )

        def forget(result: object) -> object:
            if self._taking_office is taking:
                self._taking_office = None
            return result

        taking.addBoth(forget)

    def _end_leadership(self) -> None:
        if self._leading or self._term is not None:
            self._epoch += 1
        self._leading = False
        self._term = None
        self._leader_since_term = None
        if self._pause is not None:
            self._pause.cancel()

    def overtaken(self, term: int) -> None:
        """
        The database holds a higher term than ``term``. When that is our
        current term and the election still says we lead, another node took
        office after us (its take-office committed late, after it had lost
        leadership): take a new term rather than stay locked out.
        """
        if term == self._term and self._open and self._election.is_leader():
            _log.warn(
                "fencing term {term} was overtaken while this node still leads; "
                "taking a new one",
                term=term,
            )
            self._begin_leadership(self._leader_since_term)

    async def _sleep(self, seconds: float) -> None:
        self._pause = deferLater(self._clock, seconds, lambda: None)
        try:
            await self._pause
        except CancelledError:
            pass
        finally:
            self._pause = None

    def _take_office_transaction(self, connection: Connection) -> TermTaken:
        term = take_office(connection, self._node_id, [job.name for job in self._jobs])
        now = self._clock.seconds()
        abandoned = {
            job.name: abandon_stale_runs(
                connection,
                job=job.name,
                term=term,
                current_period=period_of(now, job.interval),
                finished_at=utc(now),
            )
            for job in self._jobs
        }
        last = last_success_periods(connection, [job.name for job in self._jobs])
        return TermTaken(term, abandoned, last)

    async def _take_office(self, epoch: int, previous: Deferred[None] | None) -> None:
        if previous is not None:
            # One take-office in flight at a time: an older one committing
            # after ours would raise the fences above our own term.
            await when_done(previous)
        delay = TAKE_OFFICE_FIRST_RETRY_S
        attempt = 1
        while self._epoch == epoch and self._open:
            if not self._database.schema_ready:
                await self._sleep(SCHEMA_POLL_S)
                continue
            write = ensureDeferred(self._database.write(self._take_office_transaction))
            self._office_write = write
            try:
                taken = await write
            except Exception as error:
                self._office_write = None
                if self._epoch != epoch or not self._open:
                    return
                _log.warn(
                    "leading, but cannot take a fencing term (attempt {attempt}): {reason}; "
                    "no job runs until then; retrying in {delay}s",
                    attempt=attempt,
                    reason=describe_database_error(error),
                    delay=delay,
                )
                await self._sleep(delay)
                delay = min(delay * 2, TAKE_OFFICE_MAX_RETRY_S)
                attempt += 1
                continue
            self._office_write = None
            if self._epoch != epoch or not self._open:
                _log.info(
                    "fencing term {term} was taken after leadership ended; it stays unused",
                    term=taken.term,
                )
                return
            self._term = taken.term
            _log.info(
                "leading with fencing term {term}; running every job whose current period "
                "has not run",
                term=taken.term,
            )
            for job, rows in taken.abandoned.items():
                for row in rows:
                    _log.warn(
                        "job {job} period {period}: closed as abandoned: node {node} "
                        "(term {old_term}) never finished it",
                        job=job,
                        period=row.period,
                        node=row.node_id,
                        old_term=row.term,
                    )
            self._on_term(taken)
            return
