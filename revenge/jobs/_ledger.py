"""
The run ledger, ``job_runs``: one row per (job, period), claimed by the node
that runs that period (docs/jobs.md, "The tick").

Every function here runs inside a transaction that has already passed the
job's fence (:func:`revenge.jobs._fence.pass_fence`): the fence row's lock
serialises all writers of one job, so reading the period's row and then
inserting or updating it cannot race another node.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row

from revenge.db import REASON_MAX, job_runs
from revenge.jobs._fence import Fenced

# How many runs of each job GET /api/v1/jobs shows.
RECENT_RUNS = 20

# The ledger's results: a run ended with success or error, or was abandoned
# (its node never finished it and its period ended first; ``reason`` says why).
SUCCESS = "success"
ERROR = "error"
ABANDONED = "abandoned"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class LedgerRow:
    """One row of ``job_runs``."""

    id: int
    job: str
    period: int
    node_id: str
    term: int
    started_at: datetime
    finished_at: datetime | None
    result: str | None
    reason: str | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> LedgerRow:
        return cls(
            id=int(row.id),
            job=row.job,
            period=int(row.period),
            node_id=row.node_id,
            term=int(row.term),
            started_at=row.started_at,
            finished_at=row.finished_at,
            result=row.result,
            reason=row.reason,
        )

    def to_json(self) -> dict[str, Any]:
        """A run as ``GET /api/v1/jobs`` shows it."""
        return {
            "period": self.period,
            "node_id": self.node_id,
            "term": self.term,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "result": self.result,
            "reason": self.reason,
        }


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"
    """No row existed: ours now."""
    TAKEN_OVER = "taken_over"
    """An unfinished row of a lower term (or an abandoned one of ours): ours now."""
    ALREADY_RAN = "already_ran"
    """The period has a finished row: nothing to do."""
    TOO_LATE = "too_late"
    """The period ended before the claim could be written: nothing was written."""


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    # The period's row after the claim: ours unless ALREADY_RAN (None when TOO_LATE).
    row: LedgerRow | None
    # The row as it was before a takeover.
    previous: LedgerRow | None = None


def _period_row(connection: Connection, job: str, period: int) -> LedgerRow | None:
    row = connection.execute(
        select(job_runs).where(job_runs.c.job == job, job_runs.c.period == period)
    ).one_or_none()
    return None if row is None else LedgerRow.from_row(row)


def claim_period(
    connection: Connection,
    *,
    job: str,
    period: int,
    term: int,
    node_id: str,
    started_at: datetime,
    still_current: Callable[[], bool] = lambda: True,
) -> Claim:
    """
    Claim ``period`` of ``job`` for ``term``: insert its row, or take over an
    unfinished one whose term is not higher than ours. A row of the same term
    is ours from an attempt whose end could not be written (a scheduler runs
    one attempt per job at a time), so it is taken over too. Having passed
    the fence, no row of a higher term can exist. ``still_current()`` is asked
    just before writing: a claim that comes too late (the transaction waited
    past the period's end) writes nothing.
    """
    existing = _period_row(connection, job, period)
    if existing is not None and (existing.finished_at is not None or existing.term > term):
        return Claim(ClaimOutcome.ALREADY_RAN, existing)
    if not still_current():
        return Claim(ClaimOutcome.TOO_LATE, None)
    if existing is None:
        row_id = connection.execute(
            insert(job_runs).values(
                job=job,
                period=period,
                node_id=node_id,
                term=term,
                started_at=started_at,
                finished_at=None,
                result=None,
            )
        ).inserted_primary_key
        assert row_id is not None
        claimed = LedgerRow(int(row_id[0]), job, period, node_id, term, started_at, None, None)
        return Claim(ClaimOutcome.CLAIMED, claimed)
    connection.execute(
        update(job_runs)
        .where(job_runs.c.id == existing.id)
        .values(node_id=node_id, term=term, started_at=started_at)
    )
    taken = LedgerRow(existing.id, job, period, node_id, term, started_at, None, None)
    return Claim(ClaimOutcome.TAKEN_OVER, taken, previous=existing)


def finish_run(
    connection: Connection,
    *,
    job: str,
    run_id: int,
    term: int,
    result: str,
    finished_at: datetime,
    reason: str | None = None,
) -> None:
    """
    Mark our row finished with ``result`` (and ``reason``). Raises
    :class:`Fenced` when the row is no longer ours (taken over by a higher
    term), which the fence should already have caught.
    """
    updated = connection.execute(
        update(job_runs)
        .where(
            job_runs.c.id == run_id,
            job_runs.c.term == term,
            job_runs.c.finished_at.is_(None),
        )
        .values(
            finished_at=finished_at,
            result=result,
            reason=None if reason is None else reason[:REASON_MAX],
        )
    )
    if updated.rowcount != 1:
        raise Fenced(job, term)


def find_run(connection: Connection, run_id: int) -> LedgerRow | None:
    row = connection.execute(select(job_runs).where(job_runs.c.id == run_id)).one_or_none()
    return None if row is None else LedgerRow.from_row(row)


def abandon_stale_runs(
    connection: Connection, *, job: str, term: int, current_period: int, finished_at: datetime
) -> list[LedgerRow]:
    """
    Close as ``abandoned`` every unfinished row of ``job`` whose term is not
    higher than ``term`` and whose period ended before ``current_period``:
    its run stopped (node killed, frozen, cut off, or its end not recorded)
    and no claim ever takes a past period over. Called, having passed the
    fence for ``term``, as a term takes office and with every claim; returns
    the rows as they were.
    """
    stale = [
        LedgerRow.from_row(row)
        for row in connection.execute(
            select(job_runs).where(
                job_runs.c.job == job,
                job_runs.c.finished_at.is_(None),
                job_runs.c.term <= term,
                job_runs.c.period < current_period,
            )
        )
    ]
    for row in stale:
        connection.execute(
            update(job_runs)
            .where(job_runs.c.id == row.id, job_runs.c.finished_at.is_(None))
            .values(
                finished_at=finished_at,
                result=ABANDONED,
                reason=(
                    f"node {row.node_id} (term {row.term}) never finished it, and its period "
                    f"ended; closed by term {term}"
                )[:REASON_MAX],
            )
        )
    return stale


def last_success_periods(connection: Connection, jobs: Iterable[str]) -> dict[str, int | None]:
    """The newest period of each job that has a successful run (None: never)."""
    found: dict[str, int | None] = {job: None for job in jobs}
    rows = connection.execute(
        select(job_runs.c.job, func.max(job_runs.c.period))
        .where(job_runs.c.job.in_(list(found)), job_runs.c.result == SUCCESS)
        .group_by(job_runs.c.job)
    )
    for job, period in rows:
        found[job] = None if period is None else int(period)
    return found


def recent_runs(
    connection: Connection, jobs: Iterable[str], limit: int = RECENT_RUNS
) -> dict[str, list[LedgerRow]]:
    """The newest ``limit`` rows of each job, newest period first."""
    runs: dict[str, list[LedgerRow]] = {}
    for job in jobs:
        rows = connection.execute(
            select(job_runs)
            .where(job_runs.c.job == job)
            .order_by(job_runs.c.period.desc())
            .limit(limit)
        )
        runs[job] = [LedgerRow.from_row(row) for row in rows]
    return runs
