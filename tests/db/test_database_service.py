"""DatabaseService: migrate on start, retry with backoff while the database is away."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from revenge.db import DatabaseService
from revenge.db._migrate import SchemaUpgrade


class FlakyDatabase:
    """Fails ``failures`` migrations, then succeeds; records what was asked of it."""

    dialect = "sqlite"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.closed = False

    def upgrade_schema(self) -> Deferred[SchemaUpgrade]:
        self.attempts += 1
        if self.attempts <= self.failures:
            return fail(ConnectionRefusedError("database down"))
        return succeed(SchemaUpgrade(None, "0001"))

    async def close(self) -> None:
        self.closed = True


def _service(database: Any, clock: Clock) -> DatabaseService:
    return DatabaseService(database, clock, first_retry=0.5, max_retry=2.0)


def test_retries_with_capped_backoff_until_migrated(captured_log):
    clock = Clock()
    database = FlakyDatabase(failures=4)
    service = _service(database, clock)
    migrated: list[object] = []
    service.migrated.addCallback(migrated.append)
    service.startService()
    assert database.attempts == 1
    # 0.5, 1, 2, then capped at 2.
    for delay, attempts_after in [(0.5, 2), (1.0, 3), (2.0, 4), (2.0, 5)]:
        clock.advance(delay - 0.01)
        assert database.attempts == attempts_after - 1
        clock.advance(0.01)
        assert database.attempts == attempts_after
    assert migrated == [None]
    warnings = [r for r in captured_log.records if "retrying in" in r.get("message", "")]
    assert len(warnings) == 4
    assert "database down" in warnings[0]["message"]
    upgraded = [r for r in captured_log.records if "upgraded from empty to 0001" in r["message"]]
    assert len(upgraded) == 1
    service.stopService()
    assert database.closed


def test_stopping_while_waiting_to_retry_stops_retrying():
    clock = Clock()
    database = FlakyDatabase(failures=100)
    service = _service(database, clock)
    service.startService()
    assert database.attempts == 1
    service.stopService()
    assert database.closed
    assert clock.getDelayedCalls() == []
    clock.advance(60)
    assert database.attempts == 1
    assert not service.migrated.called
