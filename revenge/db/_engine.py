"""
Engines for ``database.url``: SQLite files and PostgreSQL through psycopg 3.

Everything here blocks; the server calls it through :class:`Database`, which
runs it in the reactor's thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.pool import StaticPool

from revenge.config import USERINFO_HINT, userinfo_problem
from revenge.db._errors import note_secrets, url_secrets

# Waiting this long for another writer before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
# PostgreSQL: how long to wait for a TCP connection, and how soon a silently
# dead one (a peer gone without a word, packets dropped by a partition) is
# noticed: a statement whose bytes are not acknowledged for
# POSTGRES_TCP_USER_TIMEOUT_MS fails instead of hanging its thread for the
# kernel's ~15 minutes of retransmissions; one waiting for an answer that
# never comes is probed after 5 s idle and given up about 3 s later.
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_TCP_USER_TIMEOUT_MS = 5000
POSTGRES_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
}
# At most as many connections as the reactor's thread pool has threads.
POOL_SIZE = 5
POOL_MAX_OVERFLOW = 5
POOL_TIMEOUT_S = 10
# Servers and proxies close idle connections; recycle them before that.
POOL_RECYCLE_S = 1800

# The execution option that makes SQLite's BEGIN take the write lock at once.
_SQLITE_BEGIN = "revenge_sqlite_begin"
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE"})


class DatabaseUrlError(ValueError):
    """``database.url`` cannot be used; the message never contains the URL."""


def database_url(url: str) -> URL:
    """
    The SQLAlchemy URL for a ``database.url`` value: ``postgresql://`` means
    the psycopg 3 driver (SQLAlchemy's default would be psycopg2). A user
    name or password that is not percent-encoded is refused, as loading the
    configuration refuses it: SQLAlchemy would end the password at its first
    "@" and hand the rest to the driver as the host.
    """
    problem = userinfo_problem(url)
    if problem is not None:
        raise DatabaseUrlError(f"database.url: {problem}; {USERINFO_HINT}")
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseUrlError("database.url is not a valid database URL") from None
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        return parsed
    raise DatabaseUrlError(
        f"database.url: unsupported driver {parsed.drivername!r} "
        "(use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB)"
    )


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or is_memory_sqlite(url):
        return None
    assert url.database is not None
    return Path(url.database)


def create_database_engine(url: str | URL, *, application_name: str = "revenge") -> Engine:
    """
    An engine for ``url`` with the pool and per-connection settings Revenge
    relies on. Creates a SQLite file's directory; connects to nothing yet.
    """
    parsed = url if isinstance(url, URL) else database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed)
    else:
        engine = _postgresql_engine(parsed, application_name)
    event.listen(engine, "handle_error", _note_url_secrets)
    return engine


def _note_url_secrets(context: ExceptionContext) -> None:
    # Connection failures included: the error knows nothing of the URL, so
    # it is told here what of it describe_database_error must mask.
    if context.engine is None:
        return
    secrets = url_secrets(context.engine.url)
    note_secrets(context.sqlalchemy_exception, secrets)
    note_secrets(context.original_exception, secrets)


def _postgresql_engine(url: URL, application_name: str) -> Engine:
    connect_args: dict[str, Any] = {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
        "application_name": application_name[:63],
        "tcp_user_timeout": POSTGRES_TCP_USER_TIMEOUT_MS,
        **POSTGRES_KEEPALIVES,
    }
    return create_engine(
        url,
        connect_args=connect_args,
        # A connection that died with a restarted server is found and
        # replaced before use, instead of failing the request.
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        pool_recycle=POOL_RECYCLE_S,
    )


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    options: dict[str, Any] = {}
    if path is None:
        # One shared connection, or every checkout would see its own empty database.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUrlError(
                f"cannot create the directory for the SQLite database: {error.strerror}"
            ) from None
        options = {
            "pool_size": POOL_SIZE,
            "max_overflow": POOL_MAX_OVERFLOW,
            "pool_timeout": POOL_TIMEOUT_S,
        }
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    # Python's sqlite3 would BEGIN only before INSERT/UPDATE/DELETE, leaving
    # SELECTs and DDL outside the transaction; SQLAlchemy emits BEGIN instead
    # (see _begin_sqlite_transaction).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers do not block the writer nor the writer the readers.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    assert mode in _SQLITE_BEGIN_MODES
    connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """
    A transaction that will write: committed on success, rolled back on error.
    On SQLite it takes the write lock at BEGIN, so a read followed by a write
    cannot fail halfway because another writer came first.
    """
    with engine.connect() as connection:
        begin_immediately(connection)
        with connection.begin():
            yield connection


def begin_immediately(connection: Connection) -> None:
    """Make ``connection``'s next SQLite transactions take the write lock at BEGIN."""
    connection.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for reading only; it is rolled back at the end."""
    with engine.connect() as connection:
        with connection.begin() as transaction:
            yield connection
            transaction.rollback()
