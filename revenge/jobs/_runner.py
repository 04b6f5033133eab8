"""
Running the jobs: a ``LoopingCall`` per job that claims each period in the
ledger and runs it, under the term the office holds (docs/jobs.md, "The
tick"); manual runs; the counts of ``revenge_job_runs_total``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel

from revenge.activity import record_activity
from revenge.db import Database, DatabaseUnavailable, describe_database_error
from revenge.jobs._fence import Fenced
from revenge.jobs._job import Job, JobRun, RunInterrupted, write_fenced
from revenge.jobs._ledger import (
    ABANDONED,
    ERROR,
    SUCCESS,
    ClaimOutcome,
    abandon_stale_runs,
    claim_period,
    find_run,
    finish_run,
)
from revenge.jobs._office import Office, TermTaken
from revenge.jobs._outcomes import (
    FENCED,
    INTERRUPTED,
    RESULTS,
    SKIPPED_ALREADY_RAN,
    SKIPPED_NOT_LEADER,
    JobBusy,
    NoFencingTerm,
    NotLeader,
    RunReport,
    UnknownJob,
)
from revenge.jobs._periods import MAX_TICK_S, period_of, tick_interval, tick_lag, utc
from revenge.jobs._waiting import shielded
from revenge.logs import current_request_id, new_request_id
from revenge.metrics import Metrics
from revenge.storage import StorageError

_log = Logger(namespace="revenge.jobs")

@dataclass(frozen=True)
class _Unrecorded:
    """A run whose end record failed in a way that leaves its outcome unknown."""

    run_id: int
    term: int
    period: int
    result: str
    error: str


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
    # A run whose end may or may not be in the ledger: looked up before
    # anything else, and counted by what the ledger says.
    unrecorded: _Unrecorded | None = None
    # Periods before the current one that passed without a successful run,
    # as found on taking office: the next successful run covers them.
    uncovered: tuple[int, int] | None = None


class Runner:
    """Ticks, claims and runs every job under the office's term."""

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        database: Database,
        office: Office,
        metrics: Metrics,
        node_id: str,
        clock: IReactorTime,
        max_tick: float = MAX_TICK_S,
    ) -> None:
        self._database = database
        self._office = office
        self._metrics = metrics
        self._node_id = node_id
        self._clock = clock
        self._states: dict[str, _JobState] = {}
        for job in jobs:
            if not job.interval > 0:
                raise ValueError(f"job {job.name!r}: the interval must be positive")
            loop = LoopingCall(self.tick, job.name)
            loop.clock = clock
            self._states[job.name] = _JobState(job, tick_interval(job.interval, max_tick), loop)
            # Every series exists from the start: followers show 0, not nothing.
            metrics.job_last_success_timestamp_seconds.labels(job=job.name)
            for result in RESULTS:
                metrics.job_runs_total.labels(job=job.name, result=result)
        self._stopping = False

    # What the scheduler reads.

    @property
    def jobs(self) -> list[Job]:
        return [state.job for state in self._states.values()]

    def job(self, name: str) -> Job | None:
        state = self._states.get(name)
        return None if state is None else state.job

    def tick_of(self, name: str) -> float:
        return self._states[name].tick

    def in_flight(self) -> list[Deferred[Any]]:
        return [state.busy for state in self._states.values() if state.busy is not None]

    # Starting and stopping.

    def start(self) -> None:
        self._stopping = False
        now = self._clock.seconds()
        for state in self._states.values():
            # Start each loop on a tick boundary, which every period boundary is.
            delay = state.tick - (now % state.tick) + tick_lag(state.tick)
            state.start_call = self._clock.callLater(delay, self._start_loop, state)

    def stop(self) -> None:
        """Stop ticking; runs end at their next write (RunInterrupted)."""
        self._stopping = True
        for state in self._states.values():
            if state.start_call is not None and state.start_call.active():
                state.start_call.cancel()
            state.start_call = None
            if state.loop.running:
                state.loop.stop()

    def _start_loop(self, state: _JobState) -> None:
        state.start_call = None
        state.loop.start(state.tick, now=True).addErrback(
            lambda failure: _log.failure(
                "the loop of job {job} stopped", failure=failure, job=state.job.name
            )
        )

    # A new term: every job at once.

    def on_new_term(self, taken: TermTaken) -> None:
        now = self._clock.seconds()
        for name, state in self._states.items():
            state.settled_period = None
            last = taken.last_success.get(name)
            current = period_of(now, state.job.interval)
            state.uncovered = (last + 1, current - 1) if last is not None and current - last > 1 else None
        # No missed period: whatever the current period of each job is,
        # attempt it now rather than at the next tick.
        for name in self._states:
            self.tick(name)

    # Ticks.

    def tick(self, name: str) -> None:
        # Also the LoopingCall's function: an exception would stop the loop.
        try:
            self._tick_once(self._states[name])
        except Exception:
            _log.failure("tick of job {job} failed", job=name)

    def _tick_once(self, state: _JobState) -> None:
        if state.busy is not None or self._stopping:
            # One attempt at a time per job; the next tick looks again.
            return
        if state.unrecorded is not None:
            # Whatever else happens, find out first how the last run ended.
            self._start(state, self._resolve(state, state.unrecorded), None)
            return
        period = period_of(self._clock.seconds(), state.job.interval)
        term = self._office.term
        # A leader without a fencing term yet is not yet a leader for jobs.
        if term is None or not self._office.leads():
            self._count(state, SKIPPED_NOT_LEADER, period)
            return
        if state.settled_period == period:
            return
        self._start(state, self._attempt(state, period, term), term)

    def _start(self, state: _JobState, work: Any, term: int | None) -> None:
        """Run ``work`` as the job's one attempt (``term`` None: a ledger lookup)."""
        attempt = ensureDeferred(work)
        state.busy = attempt
        attempt.addErrback(
            lambda failure: _log.failure(
                "an attempt of job {job} crashed", failure=failure, job=state.job.name
            )
        )

        def done(result: object) -> object:
            state.busy = None
            # The term changed during the attempt (leadership lost and won
            # again): the period may hold our old term's unfinished row; take
            # it over now rather than at the next tick. And an outcome just
            # found out is followed by the attempt it held back.
            current = self._office.term
            if term is None:
                again = state.unrecorded is None
            else:
                again = current is not None and current != term
            if again and not self._stopping:
                self._clock.callLater(0, self.tick, state.job.name)
            return result

        attempt.addBoth(done)

    def _count(self, state: _JobState, result: str, period: int | None) -> None:
        if period is not None:
            if state.counted.get(result) == period:
                return
            state.counted[result] = period
        self._metrics.job_runs_total.labels(job=state.job.name, result=result).inc()

    def _current(self, state: _JobState, period: int) -> bool:
        return period_of(self._clock.seconds(), state.job.interval) == period

    async def _attempt(self, state: _JobState, period: int, term: int) -> None:
        # This coroutine runs in its own copy of the context: the id is this
        # attempt's, in every log line and activity row it causes.
        current_request_id.set(new_request_id())
        job = state.job
        started_at = utc(self._clock.seconds())

        def claim(connection: Connection) -> Any:
            # Ours to close (we hold the fence): runs of this job that never
            # finished in a period that has ended.
            abandon_stale_runs(
                connection, job=job.name, term=term, current_period=period,
                finished_at=utc(self._clock.seconds()),
            )
            return claim_period(
                connection,
                job=job.name,
                period=period,
                term=term,
                node_id=self._node_id,
                started_at=started_at,
                still_current=lambda: self._current(state, period),
            )

        try:
            claimed = await write_fenced(self._database, job.name, term, claim)
        except Fenced as fenced:
            state.settled_period = period
            self._count(state, FENCED, period)
            _log.warn(
                "job {job} period {period} not claimed: {reason}",
                job=job.name,
                period=period,
                reason=str(fenced),
            )
            self._office.overtaken(term)
            return
        except Exception as error:
            self._count(state, ERROR, period)
            _log.warn(
                "job {job} period {period}: cannot claim the period: {reason}; "
                "retrying at the next tick",
                job=job.name,
                period=period,
                reason=describe_database_error(error),
            )
            return
        state.settled_period = period
        if claimed.outcome is ClaimOutcome.TOO_LATE:
            _log.warn(
                "job {job} period {period}: the period ended before it could be claimed; "
                "it is not run late",
                job=job.name,
                period=period,
            )
            return
        row = claimed.row
        assert row is not None
        if claimed.outcome is ClaimOutcome.ALREADY_RAN:
            self._count(state, SKIPPED_ALREADY_RAN, period)
            _log.debug(
                "job {job} period {period} already claimed by {node} (term {row_term})",
                job=job.name,
                period=period,
                node=row.node_id,
                row_term=row.term,
            )
            return
        if claimed.previous is not None:
            _log.info(
                "job {job} period {period}: taking over the unfinished run of {node} "
                "(term {old_term})",
                job=job.name,
                period=period,
                node=claimed.previous.node_id,
                old_term=claimed.previous.term,
            )
        if not self._current(state, period):
            # The claim committed after the period ended (the database was
            # slow or cut off): a period is never run after its end.
            await self._abandon(state, term, row.id, period,
                                "claimed after its period had ended; not run late")
            return
        report = await self._execute(state, term, period, row.id, actor=None)
        if report.result in (SUCCESS, ERROR) and not report.recorded:
            state.unrecorded = _Unrecorded(
                row.id, term, period, report.result, report.end_error or "unknown"
            )
            await self._resolve(state, state.unrecorded)

    async def _abandon(
        self, state: _JobState, term: int, run_id: int, period: int, reason: str
    ) -> None:
        job = state.job.name
        try:
            await write_fenced(
                self._database,
                job,
                term,
                lambda connection: finish_run(
                    connection, job=job, run_id=run_id, term=term, result=ABANDONED,
                    finished_at=utc(self._clock.seconds()), reason=reason,
                ),
            )
        except Exception as error:
            # The next claim of this job (or the next term) closes it.
            _log.warn(
                "job {job} period {period}: cannot close the run as abandoned: {error}",
                job=job, period=period, error=describe_database_error(error),
            )
            return
        _log.warn("job {job} period {period} abandoned: {reason}", job=job, period=period,
                  reason=reason)

    async def _resolve(self, state: _JobState, unrecorded: _Unrecorded) -> None:
        """
        Look the run up in the ledger and count it as what the ledger says:
        success only when its end is recorded (metrics match the ledger).
        While the database does not answer, the lookup waits for the next tick.
        """
        job = state.job.name
        try:
            row = await self._database.read(lambda c: find_run(c, unrecorded.run_id))
        except Exception:
            return  # still unknown; the next tick asks again
        state.unrecorded = None
        period = unrecorded.period
        if (
            row is not None
            and row.term == unrecorded.term
            and row.finished_at is not None
            and row.result == unrecorded.result
        ):
            self._count_outcome(state, unrecorded.result, period)
            _log.info(
                "job {job} period {period}: its end ({result}) was recorded after all",
                job=job, period=period, result=unrecorded.result,
            )
            return
        self._count(state, ERROR, period)
        _log.warn(
            "job {job} period {period}: counted as error: the end of the run could not be "
            "recorded ({error})",
            job=job, period=period, error=unrecorded.error,
        )
        if row is not None and row.term == unrecorded.term and row.finished_at is None:
            if self._current(state, period):
                state.settled_period = None  # ours still: the next tick runs it again
            else:
                await self._abandon(
                    state, unrecorded.term, row.id, period,
                    f"the end of the run could not be recorded ({unrecorded.error})",
                )

    def _count_outcome(self, state: _JobState, result: str, period: int | None) -> None:
        self._count(state, result, period)
        if result == SUCCESS:
            self._metrics.job_last_success_timestamp_seconds.labels(job=state.job.name).set(
                self._clock.seconds()
            )

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
        uncovered = None if manual else state.uncovered
        if uncovered is not None:
            run.details["covers_periods"] = list(uncovered)
            _log.info(
                "job {job}: periods {first}-{last} passed without a successful run "
                "(no node could run them); this run covers them",
                job=job.name, first=uncovered[0], last=uncovered[1],
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
            result = INTERRUPTED
            _log.info(
                "job {job} interrupted by shutdown; the next leader takes its period over",
                job=job.name,
            )
        except DatabaseUnavailable as unavailable:
            # Not a fault of the job's: one line, no traceback.
            result = ERROR
            _log.warn("job {job} failed: {reason}", job=job.name,
                      reason=describe_database_error(unavailable))
        except StorageError as unavailable:
            # Nor is a storage that cannot be reached or is not set up yet (a
            # bucket before `revenge storage init`): its message says which.
            result = ERROR
            _log.warn("job {job} failed: {reason}", job=job.name, reason=str(unavailable))
        except Exception:
            result = ERROR
            _log.failure("job {job} failed", job=job.name, level=LogLevel.error)
        recorded = False
        end_error: str | None = None
        if result in (SUCCESS, ERROR):
            end = result
            finished_at = utc(self._clock.seconds())
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
                end_error = describe_database_error(error)
        duration = self._clock.seconds() - started
        if result != INTERRUPTED:
            self._metrics.job_duration_seconds.labels(job=job.name).observe(duration)
        if recorded:
            self._count_outcome(state, result, period)
            if result == SUCCESS and not manual:
                state.uncovered = None
        elif result == FENCED:
            self._count(state, FENCED, period)
            self._office.overtaken(term)
        elif manual and result in (SUCCESS, ERROR):
            self._count(state, ERROR, period)
        if end_error is None:
            _log.info(
                "job {job} finished: {result} in {duration:.3f}s {details}",
                job=job.name,
                result=result,
                duration=duration,
                details=run.details,
            )
        else:
            _log.warn(
                "job {job} finished ({result} in {duration:.3f}s), but its end could not be "
                "recorded: {error}; it counts once the ledger says how it ended {details}",
                job=job.name,
                result=result,
                duration=duration,
                error=end_error,
                details=run.details,
            )
        return RunReport(
            job.name, result, term, self._node_id, period, run.request_id, run.details,
            recorded, end_error,
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
        if self._office.term != term:
            # Leadership was lost (or lost and won again under a new term).
            raise Fenced(job, term)

    # Manual runs.

    async def run_now(self, name: str, actor: str | None = None) -> RunReport:
        """See :meth:`JobScheduler.run_now`."""
        state = self._states.get(name)
        if state is None:
            raise UnknownJob(name)
        if self._stopping or not self._office.elected():
            raise NotLeader(self._office.leader())
        term = self._office.term
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
        return await shielded(execution)
