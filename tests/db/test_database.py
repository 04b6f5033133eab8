"""Database: blocking work off the reactor, request ids carried, 503 when unavailable."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import text
from twisted.internet import reactor
from twisted.python.threadable import isInIOThread

from revenge.db import Database, DatabaseUnavailable
from revenge.web import api_error_for
from revenge.logs import current_request_id, get_request_id


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.from_url(database_url, reactor, "db-test-node")
    yield db
    db.engine.dispose()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_work_runs_off_the_reactor_thread_with_the_request_id(database: Database):
    await database.upgrade_schema()
    seen: dict[str, object] = {}

    def work(connection: Any) -> int:
        seen["io_thread"] = isInIOThread()
        seen["request_id"] = get_request_id()
        return int(connection.execute(text("SELECT 41 + 1")).scalar_one())

    assert isInIOThread()
    current_request_id.set("db-req-7")
    try:
        assert await database.write(work) == 42
        assert await database.read(work) == 42
    finally:
        current_request_id.set(None)
    assert seen == {"io_thread": False, "request_id": "db-req-7"}


@pytest_twisted.ensureDeferred
async def test_nothing_runs_before_the_schema_is_migrated(database: Database):
    assert not database.schema_ready
    with pytest.raises(DatabaseUnavailable) as raised:
        await database.read(lambda connection: None)
    answer = api_error_for(raised.value)
    assert answer is not None
    assert (answer.status, answer.code) == (503, "database_unavailable")
    with pytest.raises(DatabaseUnavailable):
        await database.check()
    await database.upgrade_schema()
    await database.check()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_server_is_a_503_without_secrets():
    url = f"postgresql://revenge:hunter2@127.0.0.1:{_closed_port()}/revenge"
    database = Database.from_url(url, reactor, "db-test-node")
    # As if it had been migrated before the server went away.
    database.schema_ready = True
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await database.read(lambda connection: connection.execute(text("SELECT 1")))
        answer = api_error_for(raised.value)
        assert answer is not None and answer.status == 503
        assert "hunter2" not in raised.value.reason
        assert "hunter2" not in answer.message
        with pytest.raises(DatabaseUnavailable) as checked:
            await database.check()
        assert "refused" in checked.value.reason.lower()
    finally:
        database.engine.dispose()


@pytest_twisted.ensureDeferred
async def test_query_errors_are_not_mistaken_for_an_outage(database: Database):
    await database.upgrade_schema()
    with pytest.raises(Exception) as raised:
        await database.read(lambda connection: connection.execute(text("SELECT * FROM nowhere")))
    assert not isinstance(raised.value, DatabaseUnavailable)
