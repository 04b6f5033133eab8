"""
Leader-only periodic jobs: the scheduler (once per period, on the leader,
under a fencing term from the database), the run ledger, the fence, the
built-in jobs and their HTTP API. See docs/jobs.md.

Exported: what a job's author uses (``Job``, the ``JobRun`` its body gets,
``Fenced``, ``RunInterrupted``, ``JobScheduler``), what the server assembles
a node from, and what benchmarks and the postgres plugin's tests reach for.
Everything else is imported from the private modules.
"""

from revenge.jobs._activity_cleanup import ACTIVITY_CLEANUP, DEFAULT_BATCH_SIZE, ActivityCleanup
from revenge.jobs._avatar_sweep import AVATAR_SWEEP
from revenge.jobs._eligibility import FOLLOWER_STORAGE_INTERVAL_S, Eligibility
from revenge.jobs._fence import LEADER_TERM_COUNTER, Fenced, pass_fence, take_office
from revenge.jobs._job import Job, JobRun, RunInterrupted
from revenge.jobs._routes import install_job_routes
from revenge.jobs._scheduler import JobScheduler
from revenge.jobs._setup import create_scheduler

__all__ = [
    "ACTIVITY_CLEANUP",
    "AVATAR_SWEEP",
    "DEFAULT_BATCH_SIZE",
    "FOLLOWER_STORAGE_INTERVAL_S",
    "LEADER_TERM_COUNTER",
    "ActivityCleanup",
    "Eligibility",
    "Fenced",
    "Job",
    "JobRun",
    "JobScheduler",
    "RunInterrupted",
    "create_scheduler",
    "install_job_routes",
    "pass_fence",
    "take_office",
]
