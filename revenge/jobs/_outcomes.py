"""
What a run (or an attempt at one) can come to: the results counted in
``revenge_job_runs_total``, the report of a run, and the refusals of a manual run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from revenge.jobs._ledger import ERROR, SUCCESS

# The outcomes counted in revenge_job_runs_total (with SUCCESS and ERROR).
SKIPPED_NOT_LEADER = "skipped_not_leader"
SKIPPED_ALREADY_RAN = "skipped_already_ran"
FENCED = "fenced"
RESULTS = (SUCCESS, ERROR, SKIPPED_NOT_LEADER, SKIPPED_ALREADY_RAN, FENCED)
# Internal only: a run cut short by shutdown is not an outcome; its period is
# taken over by the next leader.
INTERRUPTED = "interrupted"


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
    # Why it could not be written, when it could not (not known to be fenced).
    end_error: str | None = None

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
