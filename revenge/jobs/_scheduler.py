"""
The scheduler: a ``LoopingCall`` per job that runs it once per period, only
on the leader, under a fencing term from the database. docs/jobs.md explains
the algorithm; the comments here say why the code is shaped as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from revenge.activity import record_activity
from revenge.db import Database, DatabaseUnavailable, describe_database_error
from revenge.election import IElection, LeadershipChange
from revenge.jobs._fence import Fenced, take_office
from revenge.jobs._job import Job, JobRun, RunInterrupted, write_fenced
from revenge.jobs._ledger import ClaimOutcome, claim_period, finish_run
from revenge.logs import current_request_id
from revenge.metrics import Metrics
from revenge.web import new_request_id

_T = TypeVar("_T")

_log = Logger(namespace="revenge.jobs")

# The longest time between two ticks of a job: how late a period may start
# being attempted, and how soon a failed claim is retried.
MAX_TICK_S = 5.0
# Even short periods get several ticks: a claim that failed, or a tick that
# fell in a moment without leadership (a lease renewed late under load), is
# retried within the same period.
MIN_TICKS_PER_PERIOD = 4
# Retrying to take a fencing term while the database does not answer.
TAKE_OFFICE_FIRST_RETRY_S = 0.5
TAKE_OFFICE_MAX_RETRY_S = 5.0
# Waiting for the database service to finish migrating, quietly.
SCHEMA_POLL_S = 0.25

SUCCESS = "success"
ERROR = "error"
SKIPPED_NOT_LEADER = "skipped_not_leader"
SKIPPED_ALREADY_RAN = "skipped_already_ran"
FENCED = "fenced"
RESULTS = (SUCCESS, ERROR, SKIPPED_NOT_LEADER, SKIPPED_ALREADY_RAN, FENCED)
# Internal only: a run cut short by shutdown is not an outcome; its period is
# taken over by the next leader.
_INTERRUPTED = "interrupted"


def tick_interval(interval: float, max_tick: float = MAX_TICK_S) -> float:
    """
    The tick of a job: the interval divided into the fewest equal parts no
    longer than ``max_tick``, and at least MIN_TICKS_PER_PERIOD of them. A
    whole number of ticks per period keeps a tick on every period boundary
    once the loop is started on one.
    """
    return interval / max(MIN_TICKS_PER_PERIOD, math.ceil(interval / max_tick))


def tick_lag(tick: float) -> float:
    """How long after a boundary a tick falls, so that it reads the new period."""
    return min(0.05, tick / 100)


def period_of(seconds: float, interval: float) -> int:
    """``floor(unix seconds / interval seconds)`` (DESIGN.md, "Periodic jobs")."""
    return math.floor(seconds / interval)


class UnknownJob(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"no job is called {name!r}")
        self.name = name


class NotLeader(Exception):
    """Jobs run on the leader only; ``leader`` names it when known."""

    def __init__(self, leader: str | None) -> None:
        where = f"the leader is {leader}" if leader else "no leader is known right now"
        super().__init__(f"this node is not the leader; {where}")
        self.leader = leader


class NoFencingTerm(Exception):
    """This node leads but has not taken a fencing term from the database yet."""

    def __init__(self) -> None:
        super().__init__("this node leads but holds no fencing term yet (database unreachable?)")


class JobBusy(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"job {name!r} is running on this node right now")
        self.name = name


@dataclass(frozen=True)
class RunReport:
    """How one run ended."""

    job: str
    result: str
    term: int
    node_id: str
    period: int | None
    request_id: str | None
    details: dict[str, Any]
    # Whether the end of the run (ledger row, activity row) was written.
    recorded: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "result": self.result,
            "term": self.term,
            "node_id": self.node_id,
            "period": self.period,
            "request_id": self.request_id,
            "details": self.details,
        }


@dataclass(eq=False)
class _JobState:
    job: Job
    tick: float
    loop: LoopingCall
    start_call: IDelayedCall | None = None
    # The attempt or manual run in flight: at most one per job on this node.
    busy: Deferred[Any] | None = None
    # The period this node is done with under its current term: later ticks
    # of the same period do nothing.
    settled_period: int | None = None
    # The period each result was last counted for: a result counts once per period.
    counted: dict[str, int] = field(default_factory=dict)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _reason(error: BaseException) -> str:
    if isinstance(error, DatabaseUnavailable):
        return error.reason
    return describe_database_error(error)


def _when_done(deferred: Deferred[Any]) -> Deferred[None]:
    """Fires (with None) when ``deferred`` does, leaving its result alone."""
    done: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        if not done.called:
            done.callback(None)
        return result

    deferred.addBoth(fire)
    return done


def _shielded(deferred: Deferred[_T]) -> Deferred[_T]:
    """
    A Deferred with ``deferred``'s result whose cancellation does not cancel
    ``deferred``: a manual run goes on when its HTTP client goes away.
    """
    out: Deferred[_T] = Deferred()

    def forward(result: object) -> None:
        if out.called:  # cancelled by the waiter: nobody wants the result
            return
        if isinstance(result, Failure):
            out.errback(result)
        else:
            out.callback(result)  # type: ignore[arg-type]

    deferred.addBoth(forward)
    return out


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
        self._database = database
        self._election = election
        self._metrics = metrics
        self._node_id = node_id
        self._clock = clock
        self._states: dict[str, _JobState] = {}
        for job in jobs:
            if not job.interval > 0:
                raise ValueError(f"job {job.name!r}: the interval must be positive")
            loop = LoopingCall(self._tick, job.name)
            loop.clock = clock
            self._states[job.name] = _JobState(job, tick_interval(job.interval, max_tick), loop)
            # Every series exists from the start: followers show 0, not nothing.
            metrics.job_last_success_timestamp_seconds.labels(job=job.name)
            for result in RESULTS:
                metrics.job_runs_total.labels(job=job.name, result=result)
        # Leadership as announced by the election, and the term taken for it.
        self._leading = False
        self._term: int | None = None
        # The election's own term when this leadership began.
        self._leader_since_term: int | None = None
        # Bumped whenever leadership begins or ends: a take-office attempt
        # started under an older epoch must not install its term.
        self._epoch = 0
        self._taking_office: Deferred[None] | None = None
        self._office_write: Deferred[int] | None = None
        self._pause: Deferred[None] | None = None
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None

    # What routes and tests read.

    @property
    def jobs(self) -> list[Job]:
        return [state.job for state in self._states.values()]

    def job(self, name: str) -> Job | None:
        state = self._states.get(name)
        return None if state is None else state.job

    @property
    def fencing_term(self) -> int | None:
        """The term this node's job writes carry; None unless it leads and has taken one."""
        return self._term

    def tick_of(self, name: str) -> float:
        return self._states[name].tick

    async def wait_idle(self) -> None:
        """
        Wait until no run, claim or take-office transaction is in flight on
        this node. A take-office waiting to retry is idle: it waits on the clock.
        """
        while True:
            pending = [s.busy for s in self._states.values() if s.busy is not None]
            if self._office_write is not None:
                pending.append(self._office_write)
            if not pending:
                return
            for deferred in pending:
                await _when_done(deferred)

    # Service.

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._stopping = False
        now = self._clock.seconds()
        for state in self._states.values():
            # Start each loop on a tick boundary, which every period boundary is.
            delay = state.tick - (now % state.tick) + tick_lag(state.tick)
            state.start_call = self._clock.callLater(delay, self._start_loop, state)
        self._unsubscribe = self._election.subscribe(self._on_leadership_change)
        # The election may have announced leadership before this service
        # started (standalone does so in its start()): ask it now.
        if self._election.is_leader():
            self._on_leadership_change(
                LeadershipChange(True, self._election.leader(), self._election.term())
            )

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        super().stopService()
        self._stopping = True
        for state in self._states.values():
            if state.start_call is not None and state.start_call.active():
                state.start_call.cancel()
            state.start_call = None
            if state.loop.running:
                state.loop.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._end_leadership()
        # Runs end at their next write (RunInterrupted); wait for that.
        waiting = [_when_done(s.busy) for s in self._states.values() if s.busy is not None]
        if self._taking_office is not None:
            waiting.append(_when_done(self._taking_office))
        return ensureDeferred(self._wait_for(waiting))

    async def _wait_for(self, waiting: list[Deferred[None]]) -> None:
        for done in waiting:
            await done

    def _start_loop(self, state: _JobState) -> None:
        state.start_call = None
        state.loop.start(state.tick, now=True).addErrback(
            lambda failure: _log.failure(
                "the loop of job {job} stopped", failure=failure, job=state.job.name
            )
        )

    # Leadership and the fencing term.

    def _on_leadership_change(self, change: LeadershipChange) -> None:
        if not self.running:
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

    async def _sleep(self, seconds: float) -> None:
        self._pause = deferLater(self._clock, seconds, lambda: None)
        try:
            await self._pause
        except CancelledError:
            pass
        finally:
            self._pause = None

    async def _take_office(self, epoch: int, previous: Deferred[None] | None) -> None:
        if previous is not None:
            # One take-office in flight at a time: an older one committing
            # after ours would raise the fences above our own term.
            await _when_done(previous)
        job_names = list(self._states)
        delay = TAKE_OFFICE_FIRST_RETRY_S
        attempt = 1
        while self._epoch == epoch and self.running:
            if not self._database.schema_ready:
                await self._sleep(SCHEMA_POLL_S)
                continue
            write = ensureDeferred(
                self._database.write(
                    lambda connection: take_office(connection, self._node_id, job_names)
                )
            )
            self._office_write = write
            try:
                term = await write
            except Exception as error:
                self._office_write = None
                if self._epoch != epoch or not self.running:
                    return
                _log.warn(
                    "leading, but cannot take a fencing term (attempt {attempt}): {reason}; "
                    "no job runs until then; retrying in {delay}s",
                    attempt=attempt,
                    reason=_reason(error),
                    delay=delay,
                )
                await self._sleep(delay)
                delay = min(delay * 2, TAKE_OFFICE_MAX_RETRY_S)
                attempt += 1
                continue
            self._office_write = None
            if self._epoch != epoch or not self.running:
                _log.info(
                    "fencing term {term} was taken after leadership ended; it stays unused",
                    term=term,
                )
                return
            self._term = term
            for state in self._states.values():
                state.settled_period = None
            _log.info(
                "leading with fencing term {term}; running every job whose current period "
                "has not run",
                term=term,
            )
            # No missed period: whatever the current period of each job is,
            # attempt it now rather than at the next tick.
            for name in self._states:
                self._tick(name)
            return

    # Ticks.

    def _tick(self, name: str) -> None:
        # Also the LoopingCall's function: an exception would stop the loop.
        try:
            self._tick_once(self._states[name])
        except Exception:
            _log.failure("tick of job {job} failed", job=name)

    def _tick_once(self, state: _JobState) -> None:
        if state.busy is not None or self._stopping:
            # One attempt at a time per job; the next tick looks again.
            return
        period = period_of(self._clock.seconds(), state.job.interval)
        term = self._term
        # A leader without a fencing term yet is not yet a leader for jobs.
        if term is None or not self._leading or not self._election.is_leader():
            self._count(state, SKIPPED_NOT_LEADER, period)
            return
        if state.settled_period == period:
            return
        attempt = ensureDeferred(self._attempt(state, period, term))
        state.busy = attempt
        attempt.addErrback(
            lambda failure: _log.failure(
                "job {job} period {period} crashed", failure=failure, job=state.job.name,
                period=period,
            )
        )

        def done(result: object) -> object:
            state.busy = None
            # The term changed during the attempt (leadership lost and won
            # again): the period may hold our old term's unfinished row; take
            # it over now rather than at the next tick.
            if self._term is not None and self._term != term and not self._stopping:
                self._clock.callLater(0, self._tick, state.job.name)
            return result

        attempt.addBoth(done)

    def _count(self, state: _JobState, result: str, period: int | None) -> None:
        if period is not None:
            if state.counted.get(result) == period:
                return
            state.counted[result] = period
        self._metrics.job_runs_total.labels(job=state.job.name, result=result).inc()

    async def _attempt(self, state: _JobState, period: int, term: int) -> None:
        # This coroutine runs in its own copy of the context: the id is this
        # attempt's, in every log line and activity row it causes.
        current_request_id.set(new_request_id())
        job = state.job
        started_at = _utc(self._clock.seconds())
        try:
            claim = await write_fenced(
                self._database,
                job.name,
                term,
                lambda connection: claim_period(
                    connection,
                    job=job.name,
                    period=period,
                    term=term,
                    node_id=self._node_id,
                    started_at=started_at,
                ),
            )
        except Fenced as fenced:
            state.settled_period = period
            self._count(state, FENCED, period)
            _log.warn(
                "job {job} period {period} not claimed: {reason}",
                job=job.name,
                period=period,
                reason=str(fenced),
            )
            self._overtaken(term)
            return
        except Exception as error:
            self._count(state, ERROR, period)
            _log.warn(
                "job {job} period {period}: cannot claim the period: {reason}; "
                "retrying at the next tick",
                job=job.name,
                period=period,
                reason=_reason(error),
            )
            return
        state.settled_period = period
        if claim.outcome is ClaimOutcome.ALREADY_RAN:
            self._count(state, SKIPPED_ALREADY_RAN, period)
            _log.debug(
                "job {job} period {period} already claimed by {node} (term {row_term})",
                job=job.name,
                period=period,
                node=claim.row.node_id,
                row_term=claim.row.term,
            )
            return
        if claim.previous is not None:
            _log.info(
                "job {job} period {period}: taking over the unfinished run of {node} "
                "(term {old_term})",
                job=job.name,
                period=period,
                node=claim.previous.node_id,
                old_term=claim.previous.term,
            )
        report = await self._execute(state, term, period, claim.row.id, actor=None)
        if report.result in (SUCCESS, ERROR) and not report.recorded:
            # The end could not be written: the row is still open under our
            # term, so the next tick takes it over and runs the period again.
            state.settled_period = None

    async def _execute(
        self,
        state: _JobState,
        term: int,
        period: int | None,
        run_id: int | None,
        actor: str | None,
    ) -> RunReport:
        job = state.job
        manual = run_id is None
        run = JobRun(
            job=job.name,
            term=term,
            node_id=self._node_id,
            period=period,
            request_id=current_request_id.get(),
            database=self._database,
            ensure_current=lambda: self._ensure_current(job.name, term),
        )
        started = self._clock.seconds()
        _log.info(
            "job {job} started ({how}, term {term})",
            job=job.name,
            how="manual run" if manual else f"period {period}",
            term=term,
        )
        result = SUCCESS
        try:
            await job.run(run)
        except Fenced as fenced:
            result = FENCED
            _log.warn("job {job} stopped: {reason}", job=job.name, reason=str(fenced))
        except RunInterrupted:
            result = _INTERRUPTED
            _log.info(
                "job {job} interrupted by shutdown; the next leader takes its period over",
                job=job.name,
            )
        except Exception:
            result = ERROR
            _log.failure("job {job} failed", job=job.name)
        recorded = False
        if result in (SUCCESS, ERROR):
            end = result
            finished_at = _utc(self._clock.seconds())
            try:
                await write_fenced(
                    self._database,
                    job.name,
                    term,
                    lambda connection: self._record_end(
                        connection, run, run_id, end, actor, finished_at
                    ),
                )
                recorded = True
            except Fenced as fenced:
                result = FENCED
                _log.warn(
                    "job {job}: the end of the run was fenced off: {reason}",
                    job=job.name,
                    reason=str(fenced),
                )
            except Exception as error:
                _log.warn(
                    "job {job}: cannot record the end of the run: {reason}",
                    job=job.name,
                    reason=_reason(error),
                )
        duration = self._clock.seconds() - started
        if result != _INTERRUPTED:
            self._count(state, result, period)
            self._metrics.job_duration_seconds.labels(job=job.name).observe(duration)
        if result == SUCCESS:
            self._metrics.job_last_success_timestamp_seconds.labels(job=job.name).set(
                self._clock.seconds()
            )
        if result == FENCED:
            self._overtaken(term)
        _log.info(
            "job {job} finished: {result} in {duration:.3f}s {details}",
            job=job.name,
            result=result,
            duration=duration,
            details=run.details,
        )
        return RunReport(
            job.name, result, term, self._node_id, period, run.request_id, run.details, recorded
        )

    def _record_end(
        self,
        connection: Connection,
        run: JobRun,
        run_id: int | None,
        result: str,
        actor: str | None,
        finished_at: datetime,
    ) -> None:
        if run_id is not None:
            finish_run(
                connection,
                job=run.job,
                run_id=run_id,
                term=run.term,
                result=result,
                finished_at=finished_at,
            )
        # The activity log records changes: a scheduled run that found nothing
        # to do leaves only its ledger row; a manual run is an admin's action.
        if run.changed or run_id is None:
            record_activity(
                connection,
                action=f"job.{run.job}",
                node_id=self._node_id,
                actor=actor,
                details={
                    **run.details,
                    "result": result,
                    "term": run.term,
                    "period": run.period,
                    "manual": run_id is None,
                },
                request_id=run.request_id,
            )

    def _ensure_current(self, job: str, term: int) -> None:
        if self._stopping:
            raise RunInterrupted()
        if self._term != term:
            # Leadership was lost (or lost and won again under a new term).
            raise Fenced(job, term)

    def _overtaken(self, term: int) -> None:
        """
        The database holds a higher term than ``term``. When that is our
        current term and the election still says we lead, another node took
        office after us (its take-office committed late, after it had lost
        leadership): take a new term rather than stay locked out.
        """
        if term == self._term and self.running and self._election.is_leader():
            _log.warn(
                "fencing term {term} was overtaken while this node still leads; "
                "taking a new one",
                term=term,
            )
            self._begin_leadership(self._leader_since_term)

    # Manual runs.

    async def run_now(self, name: str, actor: str | None = None) -> RunReport:
        """
        Run job ``name`` at once, on this node if it leads, through the fence
        under the current term and without a ledger row (docs/jobs.md,
        "Manual runs"). Raises UnknownJob, NotLeader, NoFencingTerm or JobBusy.
        The run goes on if the caller stops waiting.
        """
        state = self._states.get(name)
        if state is None:
            raise UnknownJob(name)
        if not (self.running and self._leading and self._election.is_leader()):
            raise NotLeader(self._election.leader())
        term = self._term
        if term is None:
            raise NoFencingTerm()
        if state.busy is not None:
            raise JobBusy(name)
        execution = ensureDeferred(self._execute(state, term, None, None, actor))
        state.busy = execution

        def done(result: object) -> object:
            state.busy = None
            return result

        execution.addBoth(done)
        return await _shielded(execution)
