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
from revenge.jobs._eligibility import FOLLOWER_STORAGE_INTERVAL_S, Eligibility
from revenge.jobs._fence import LEADER_TERM_COUNTER, Fenced, pass_fence, take_office
from revenge.jobs._job import Job, JobRun, RunInterrupted, write_fenced
from revenge.jobs._ledger import (
    ABANDONED,
    ERROR,
    RECENT_RUNS,
    SUCCESS,
    Claim,
    ClaimOutcome,
    LedgerRow,
    claim_period,
    finish_run,
    recent_runs,
)
from revenge.jobs._outcomes import (
    FENCED,
    RESULTS,
    SKIPPED_ALREADY_RAN,
    SKIPPED_NOT_LEADER,
    JobBusy,
    NoFencingTerm,
    NotLeader,
    RunReport,
    UnknownJob,
)
from revenge.jobs._periods import MAX_TICK_S, period_of, tick_interval, tick_lag
from revenge.jobs._routes import install_job_routes
from revenge.jobs._scheduler import JobScheduler
from revenge.jobs._setup import create_scheduler

__all__ = [
    "ABANDONED",
    "ACTIVITY_CLEANUP",
    "AVATAR_SWEEP",
    "DEFAULT_BATCH_SIZE",
    "ERROR",
    "FENCED",
    "FOLLOWER_STORAGE_INTERVAL_S",
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
    "Eligibility",
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
