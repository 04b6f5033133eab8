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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from revenge.db import job_runs
from revenge.jobs._fence import Fenced

# How many runs of each job GET /api/v1/jobs shows.
RECENT_RUNS = 20


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
        }


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"
    """No row existed: ours now."""
    TAKEN_OVER = "taken_over"
    """An unfinished row of a lower term (or an abandoned one of ours): ours now."""
    ALREADY_RAN = "already_ran"
    """The period has a finished row: nothing to do."""


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    # The period's row after the claim: ours unless ALREADY_RAN.
    row: LedgerRow
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
) -> Claim:
    """
    Claim ``period`` of ``job`` for ``term``: insert its row, or take over an
    unfinished one whose term is not higher than ours. A row of the same term
    is ours from an attempt whose end could not be written (a scheduler runs
    one attempt per job at a time), so it is taken over too. Having passed
    the fence, no row of a higher term can exist.
    """
    existing = _period_row(connection, job, period)
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
    if existing.finished_at is not None or existing.term > term:
        return Claim(ClaimOutcome.ALREADY_RAN, existing)
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
) -> None:
    """
    Mark our row finished with ``result``. Raises :class:`Fenced` when the row
    is no longer ours (taken over by a higher term), which the fence should
    already have caught.
    """
    updated = connection.execute(
        update(job_runs)
        .where(
            job_runs.c.id == run_id,
            job_runs.c.term == term,
            job_runs.c.finished_at.is_(None),
        )
        .values(finished_at=finished_at, result=result)
    )
    if updated.rowcount != 1:
        raise Fenced(job, term)


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
