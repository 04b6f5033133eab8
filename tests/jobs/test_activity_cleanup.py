"""activity_cleanup: old rows only, a batch per transaction, nothing once fenced."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from sqlalchemy import func, insert, select
from twisted.internet.task import Clock

from revenge.db import Database, activity
from revenge.jobs import ActivityCleanup, Fenced, take_office
from revenge.metrics import Metrics

from .helpers import leader_run

NOW = 1_700_000_000.0
RETENTION = 90 * 86400.0
CUTOFF = datetime.fromtimestamp(NOW - RETENTION, timezone.utc)


def clock_at(seconds: float) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


async def seed(database: Database, moments: list[datetime], action: str) -> None:
    def write(connection):
        connection.execute(
            insert(activity),
            [{"created_at": m, "action": action, "node_id": "seed"} for m in moments],
        )

    await database.write(write)


async def count(database: Database, action: str | None = None) -> int:
    def read(connection):
        query = select(func.count()).select_from(activity)
        if action is not None:
            query = query.where(activity.c.action == action)
        return connection.execute(query).scalar_one()

    return await database.read(read)


@pytest_twisted.ensureDeferred
async def test_deletes_only_rows_older_than_the_retention_in_batches(database):
    old = [CUTOFF - timedelta(hours=1, seconds=i) for i in range(25)]
    young = [CUTOFF + timedelta(seconds=1 + i) for i in range(5)]
    await seed(database, old, "test.old")
    await seed(database, young, "test.young")
    metrics = Metrics()
    job = ActivityCleanup(
        interval=3600, retention=RETENTION, clock=clock_at(NOW), metrics=metrics, batch_size=10
    )
    run = await leader_run(database, job.name)
    await job.run(run)
    assert await count(database, "test.old") == 0
    assert await count(database, "test.young") == 5
    # 10 + 10 + 5: three transactions, the last one short.
    assert run.details["deleted"] == 25
    assert run.details["batches"] == 3
    assert run.changed
    assert metrics.registry.get_sample_value("revenge_activity_rows_deleted_total") == 25


@pytest_twisted.ensureDeferred
async def test_rows_sharing_one_timestamp_across_batches_all_go(database):
    # Batches continue from the newest timestamp of the previous one; rows
    # with that very timestamp must not be skipped.
    moment = CUTOFF - timedelta(days=1)
    await seed(database, [moment] * 23, "test.same")
    job = ActivityCleanup(
        interval=3600, retention=RETENTION, clock=clock_at(NOW), batch_size=10
    )
    run = await leader_run(database, job.name)
    await job.run(run)
    assert await count(database, "test.same") == 0
    assert run.details["deleted"] == 23


@pytest_twisted.ensureDeferred
async def test_ids_need_not_follow_creation_times(database):
    # Young rows first, then old ones newest first: ids run against time.
    await seed(database, [CUTOFF + timedelta(seconds=1 + i) for i in range(5)], "test.young")
    await seed(database, [CUTOFF - timedelta(seconds=1 + i) for i in range(25)], "test.old")
    job = ActivityCleanup(
        interval=3600, retention=RETENTION, clock=clock_at(NOW), batch_size=10
    )
    run = await leader_run(database, job.name)
    await job.run(run)
    assert await count(database, "test.old") == 0
    assert await count(database, "test.young") == 5
    assert (run.details["deleted"], run.details["batches"]) == (25, 3)


@pytest_twisted.ensureDeferred
async def test_an_exact_multiple_of_the_batch_size_ends_with_an_empty_batch(database):
    await seed(database, [CUTOFF - timedelta(seconds=1 + i) for i in range(20)], "test.old")
    job = ActivityCleanup(
        interval=3600, retention=RETENTION, clock=clock_at(NOW), batch_size=10
    )
    run = await leader_run(database, job.name)
    await job.run(run)
    assert await count(database) == 0
    assert (run.details["deleted"], run.details["batches"]) == (20, 2)


@pytest_twisted.ensureDeferred
async def test_nothing_to_delete_changes_nothing(database):
    await seed(database, [CUTOFF + timedelta(seconds=1)], "test.young")
    job = ActivityCleanup(interval=3600, retention=RETENTION, clock=clock_at(NOW))
    run = await leader_run(database, job.name)
    await job.run(run)
    assert (run.details["deleted"], run.details["batches"], run.changed) == (0, 0, False)
    assert await count(database) == 1


@pytest_twisted.ensureDeferred
async def test_a_fenced_batch_deletes_nothing(database):
    await seed(database, [CUTOFF - timedelta(seconds=1 + i) for i in range(15)], "test.old")
    job = ActivityCleanup(
        interval=3600, retention=RETENTION, clock=clock_at(NOW), batch_size=10
    )
    stale = await leader_run(database, job.name)
    # A newer leader takes office; the stale one carries on.
    await database.write(lambda connection: take_office(connection, "b", [job.name]))
    with pytest.raises(Fenced):
        await job.run(stale)
    assert await count(database, "test.old") == 15
    assert stale.details["deleted"] == 0


@pytest_twisted.ensureDeferred
async def test_a_leader_fenced_between_batches_stops_after_the_committed_ones(database):
    await seed(database, [CUTOFF - timedelta(seconds=1 + i) for i in range(25)], "test.old")
    job = ActivityCleanup(
        interval=3600, retention=RETENTION, clock=clock_at(NOW), batch_size=10
    )
    run = await leader_run(database, job.name)
    original_write = run.write
    batches = 0

    async def write_then_be_overtaken(work):
        nonlocal batches
        result = await original_write(work)
        batches += 1
        if batches == 1:
            await database.write(lambda connection: take_office(connection, "b", [job.name]))
        return result

    run.write = write_then_be_overtaken  # type: ignore[method-assign]
    with pytest.raises(Fenced):
        await job.run(run)
    # The first batch was committed under a current term; nothing after it.
    assert await count(database, "test.old") == 15
    assert run.details["deleted"] == 10
