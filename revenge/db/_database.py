"""The server's handle on the database: blocking work, run off the reactor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twisted.logger import Logger

from revenge.db._engine import create_database_engine, read_transaction, write_transaction
from revenge.db._errors import DatabaseUnavailable, describe_database_error
from revenge.db._migrate import SchemaUpgrade, upgrade_schema
from revenge.logs import run_in_thread

_T = TypeVar("_T")

_log = Logger(namespace="revenge.db")


# SQLite's primary result codes that mean "not now" rather than "wrong":
# BUSY, LOCKED, IOERR, FULL, CANTOPEN.
_SQLITE_UNAVAILABLE_CODES = frozenset({5, 6, 10, 13, 14})


def _is_unavailable(error: BaseException) -> bool:
    """Errors that mean "cannot use the database now", not "bad query"."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    # SQLite reports a missing table as an OperationalError too.
    code = getattr(error.orig, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_UNAVAILABLE_CODES
    return True


class Database:
    """
    The engine plus the rules for using it from Twisted code: every call
    runs in the reactor's thread pool (keeping the request id for logs and
    activity rows), and a database that cannot be reached, or whose schema is
    not migrated yet, raises :class:`DatabaseUnavailable` (a 503).

    Work is a plain function of a ``Connection``, run inside one transaction::

        user = await database.write(lambda connection: create_user(connection, ...))
    """

    def __init__(self, engine: Engine, reactor: Any, node_id: str) -> None:
        self.engine = engine
        self.reactor = reactor
        # Written into activity rows and the job ledger.
        self.node_id = node_id
        # Set once the schema is at head; until then every call is a 503.
        self.schema_ready = False

    @classmethod
    def from_url(cls, url: str, reactor: Any, node_id: str) -> Database:
        engine = create_database_engine(url, application_name=f"revenge {node_id}")
        return cls(engine, reactor, node_id)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    async def read(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in a read-only transaction, off the reactor thread."""
        return await self._run(work, write=False)

    async def write(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in a transaction committed when it returns, off the reactor thread."""
        return await self._run(work, write=True)

    async def _run(self, work: Callable[[Connection], _T], write: bool) -> _T:
        if not self.schema_ready:
            raise DatabaseUnavailable("the database schema is not migrated yet")
        return await run_in_thread(self.reactor, self._in_transaction, work, write)

    def _in_transaction(self, work: Callable[[Connection], _T], write: bool) -> _T:
        transaction = write_transaction if write else read_transaction
        try:
            with transaction(self.engine) as connection:
                return work(connection)
        except Exception as error:
            if not _is_unavailable(error):
                raise
            reason = describe_database_error(error)
            _log.warn("database unavailable: {reason}", reason=reason)
            raise DatabaseUnavailable(reason) from None

    async def check(self) -> None:
        """The ``/readyz`` check: migrated, and answering ``SELECT 1``."""
        if not self.schema_ready:
            raise DatabaseUnavailable("the database schema is not migrated yet")
        await run_in_thread(self.reactor, self._ping)

    def _ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:
            raise DatabaseUnavailable(describe_database_error(error)) from None

    async def upgrade_schema(self) -> SchemaUpgrade:
        """Migrate to head under the migration lock; afterwards calls are allowed."""
        result = await run_in_thread(self.reactor, upgrade_schema, self.engine)
        self.schema_ready = True
        return result

    async def close(self) -> None:
        """Close the pooled connections."""
        await run_in_thread(self.reactor, self.engine.dispose)
