"""
Fixtures of the job tests: a fake clock, nodes sharing one database, and one
migrated-as-if ``Database`` on each backend for the jobs run by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor as global_reactor
from twisted.internet.task import Clock

from revenge.db import Database, create_database_engine

from .helpers import FIRST_PERIOD, Cluster, boundary


@pytest.fixture
def clock() -> Clock:
    """Ten seconds into a period."""
    fake = Clock()
    fake.advance(boundary(FIRST_PERIOD) + 10)
    return fake


@pytest_twisted.async_yield_fixture
async def cluster(database_url: str, clock: Clock) -> AsyncIterator[Cluster]:
    """Scheduler nodes on the test database (SQLite or PostgreSQL); stopped afterwards."""
    made = Cluster(database_url, clock)
    try:
        yield made
    finally:
        for node in made.nodes:
            if node.scheduler.running:
                await node.scheduler.stopService().addTimeout(10, global_reactor)
            node.database.engine.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A ``Database`` on ``database_url`` whose tables the fixture already made."""
    db = Database(create_database_engine(database_url), global_reactor, "test-node")
    db.schema_ready = True
    yield db
    db.engine.dispose()
