"""
``activity_cleanup``: delete activity rows older than
``jobs.cleanup.activity_retention``, a small batch per transaction.

One big ``DELETE`` would hold its locks (and on SQLite the whole database's
write lock) until every expired row is gone; small batches let requests
write between them and let a newer leader's fence stop a stale one between
any two. Each batch is a range of the ``created_at`` index starting where the
previous one ended, so no batch scans the entries of rows already deleted,
and nothing depends on ids following creation times.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from revenge.db import activity
from revenge.jobs._job import JobRun
from revenge.metrics import Metrics

ACTIVITY_CLEANUP = "activity_cleanup"

# Rows per transaction, chosen with bench/job_benchmarks.py
# (cleanup_vs_single_delete, 1,000,000 rows on PostgreSQL): at 10,000 a batch
# takes about 10-20 ms and the job deletes at 50-75 % of the rate of one big
# DELETE; at 5,000 the per-transaction cost (commit, fence) drags the rate
# under half, and beyond 20,000 it barely improves while batches grow.
DEFAULT_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class Batch:
    """What one batch transaction deleted, and where the next one starts."""

    deleted: int
    # The created_at the next batch starts at; None when no expired row is left.
    next_since: datetime | None


def delete_expired_batch(
    connection: Connection,
    cutoff: datetime,
    limit: int,
    since: datetime | None = None,
) -> Batch:
    """
    Delete the oldest rows with ``created_at < cutoff`` (and ``>= since``,
    where the previous batch ended): about ``limit`` of them, cut at a
    ``created_at`` boundary so that the delete is one range of the index.
    """
    expired = activity.c.created_at < cutoff
    if since is not None:
        expired = and_(expired, activity.c.created_at >= since)
    # The first row the batch leaves for the next one.
    upto = connection.execute(
        select(activity.c.created_at)
        .where(expired)
        .order_by(activity.c.created_at)
        .offset(limit)
        .limit(1)
    ).scalar_one_or_none()
    if upto is None:
        doomed = expired  # the rest, at most `limit` rows
    elif since is not None and upto == since:
        # More than `limit` rows share one timestamp: they go together.
        doomed = activity.c.created_at == since
    else:
        doomed = and_(expired, activity.c.created_at < upto)
    deleted = connection.execute(delete(activity).where(doomed)).rowcount
    return Batch(int(deleted), upto)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


class ActivityCleanup:
    """The retention job of the activity log."""

    name = ACTIVITY_CLEANUP

    def __init__(
        self,
        *,
        interval: float,
        retention: float,
        clock: IReactorTime,
        metrics: Metrics | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.interval = interval
        self.retention = retention
        self.batch_size = batch_size
        self._clock = clock
        self._metrics = metrics

    async def run(self, run: JobRun) -> None:
        cutoff = _utc(self._clock.seconds() - self.retention)
        run.details.update(
            deleted=0, batches=0, cutoff=cutoff.isoformat().replace("+00:00", "Z")
        )
        since: datetime | None = None
        while True:
            batch = await run.write(
                partial(delete_expired_batch, cutoff=cutoff, limit=self.batch_size, since=since)
            )
            if batch.deleted:
                run.changed = True
                run.details["deleted"] += batch.deleted
                run.details["batches"] += 1
                if self._metrics is not None:
                    self._metrics.activity_rows_deleted_total.inc(batch.deleted)
            if batch.next_since is None:
                return
            since = batch.next_since
