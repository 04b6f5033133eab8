"""Migrating on start, and retrying until the database is there."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from revenge.db._database import Database
from revenge.db._errors import describe_database_error

_log = Logger(namespace="revenge.db")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0


class DatabaseService(Service):
    """
    Brings the schema to head in the background as the server starts, so a
    database that is down does not stop the node from starting: it listens,
    ``/healthz`` answers, ``/readyz`` says ``database`` is failing, and the
    migration is retried with backoff until it succeeds. Added first to the
    server's services, it stops last and closes the pool.
    """

    name = "database"

    def __init__(
        self,
        database: Database,
        reactor: Any,
        first_retry: float = FIRST_RETRY_S,
        max_retry: float = MAX_RETRY_S,
    ) -> None:
        self._database = database
        self._reactor = reactor
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._pause: Deferred[None] | None = None
        self.migrated: Deferred[None] = Deferred()

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        ensureDeferred(self._migrate_until_done()).addErrback(
            lambda failure: _log.failure("database migration loop crashed", failure=failure)
        )

    async def _migrate_until_done(self) -> None:
        delay = self._first_retry
        attempt = 1
        while self.running:
            try:
                upgrade = await self._database.upgrade_schema()
            except Exception as error:
                if not self.running:
                    return
                _log.warn(
                    "database not ready (attempt {attempt}): {reason}; retrying in {delay}s",
                    attempt=attempt,
                    reason=describe_database_error(error),
                    delay=delay,
                )
                self._pause = deferLater(self._reactor, delay, lambda: None)
                try:
                    await self._pause
                except CancelledError:
                    return
                finally:
                    self._pause = None
                delay = min(delay * 2, self._max_retry)
                attempt += 1
                continue
            if upgrade.changed:
                _log.info(
                    "database schema upgraded from {before} to {after} ({dialect})",
                    before=upgrade.before or "empty",
                    after=upgrade.after,
                    dialect=self._database.dialect,
                )
            else:
                _log.info(
                    "database schema is current at {after} ({dialect})",
                    after=upgrade.after,
                    dialect=self._database.dialect,
                )
            self.migrated.callback(None)
            return

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._pause is not None:
            self._pause.cancel()
        return ensureDeferred(self._database.close())
