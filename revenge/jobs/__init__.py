"""
Leader-only periodic jobs: the scheduler (once per period, on the leader,
under a fencing term from the database), the run ledger, the fence, the
built-in jobs and their HTTP API. See docs/jobs.md.
"""

from revenge.jobs._activity_cleanup import (
    ACTIVITY_CLEANUP,
    DEFAULT_BATCH_SIZE,
    ActivityCleanup,
    delete_expired_batch,
)
from revenge.jobs._avatar_sweep import AVATAR_SWEEP, ORPHAN_MIN_AGE_S, AvatarSweep
from revenge.jobs._fence import LEADER_TERM_COUNTER, Fenced, pass_fence, take_office
from revenge.jobs._job import Job, JobRun, RunInterrupted, write_fenced
from revenge.jobs._ledger import (
    RECENT_RUNS,
    Claim,
    ClaimOutcome,
    LedgerRow,
    claim_period,
    finish_run,
    recent_runs,
)
from revenge.jobs._routes import install_job_routes
from revenge.jobs._scheduler import (
    ERROR,
    FENCED,
    MAX_TICK_S,
    RESULTS,
    SKIPPED_ALREADY_RAN,
    SKIPPED_NOT_LEADER,
    SUCCESS,
    JobBusy,
    JobScheduler,
    NoFencingTerm,
    NotLeader,
    RunReport,
    UnknownJob,
    period_of,
    tick_interval,
    tick_lag,
)
from revenge.jobs._setup import create_scheduler

__all__ = [
    "ACTIVITY_CLEANUP",
    "AVATAR_SWEEP",
    "DEFAULT_BATCH_SIZE",
    "ERROR",
    "FENCED",
    "LEADER_TERM_COUNTER",
    "MAX_TICK_S",
    "ORPHAN_MIN_AGE_S",
    "RECENT_RUNS",
    "RESULTS",
    "SKIPPED_ALREADY_RAN",
    "SKIPPED_NOT_LEADER",
    "SUCCESS",
    "ActivityCleanup",
    "AvatarSweep",
    "Claim",
    "ClaimOutcome",
    "Fenced",
    "Job",
    "JobBusy",
    "JobRun",
    "JobScheduler",
    "LedgerRow",
    "NoFencingTerm",
    "NotLeader",
    "RunInterrupted",
    "RunReport",
    "UnknownJob",
    "claim_period",
    "create_scheduler",
    "delete_expired_batch",
    "finish_run",
    "install_job_routes",
    "pass_fence",
    "period_of",
    "recent_runs",
    "take_office",
    "tick_interval",
    "tick_lag",
    "write_fenced",
]
