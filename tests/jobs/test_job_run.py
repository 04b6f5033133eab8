"""
What a job's body gets: fenced writes, reads that keep nothing, and no raw
database to write around the fence with.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import pytest_twisted
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from revenge.db import Database, activity
from revenge.jobs import Fenced, take_office

from .helpers import leader_run

JOB = "probe"
# Everything a job's body may use of its run (docs/jobs.md, "A job's body").
RUN_API = {
    "job",
    "term",
    "node_id",
    "period",
    "request_id",
    "details",
    "changed",
    "ensure_current",
    "write",
    "read",
}


def add_row(connection: Connection) -> None:
    connection.execute(
        insert(activity).values(
            created_at=datetime.now(timezone.utc), action="test.job_run", node_id="a"
        )
    )


async def rows(database: Database) -> int:
    return await database.read(
        lambda connection: connection.execute(
            select(func.count()).select_from(activity).where(activity.c.action == "test.job_run")
        ).scalar_one()
    )


@pytest_twisted.ensureDeferred
async def test_a_run_offers_no_database_only_its_fenced_write_and_read(database):
    run = await leader_run(database, JOB)
    assert not hasattr(run, "database")
    public = {name for name in dir(run) if not name.startswith("_")}
    assert public == RUN_API
    assert not any(isinstance(getattr(run, name), Database) for name in public)


@pytest_twisted.ensureDeferred
async def test_write_keeps_what_it_wrote_while_the_term_holds_the_fence(database):
    run = await leader_run(database, JOB)
    await run.write(add_row)
    assert await rows(database) == 1


@pytest_twisted.ensureDeferred
async def test_write_of_an_overtaken_term_keeps_nothing(database):
    run = await leader_run(database, JOB)
    await database.write(lambda connection: take_office(connection, "b", [JOB]))
    with pytest.raises(Fenced):
        await run.write(add_row)
    assert await rows(database) == 0


@pytest_twisted.ensureDeferred
async def test_read_keeps_nothing_a_body_writes_in_it(database):
    run = await leader_run(database, JOB)
    await run.read(add_row)
    assert await rows(database) == 0
