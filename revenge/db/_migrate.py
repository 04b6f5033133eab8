"""
Applying the Alembic revisions shipped in ``revenge/db/migrations``, under a
lock, so that any number of processes may try at once and exactly one does
the work while the others wait and then find the schema current.

- PostgreSQL: a session-level advisory lock, held by the one connection that
  runs the migration; the server releases it when that connection closes,
  even if the process dies halfway.
- SQLite: an exclusive ``flock`` on a file beside the database (processes on
  one machine is all SQLite supports anyway).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from revenge.db._engine import begin_immediately, sqlite_path, write_transaction

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# pg_advisory_lock's key: any 64-bit number other software on the same
# database does not use. These are the bytes of "REVENGE".
POSTGRES_MIGRATION_LOCK = 0x52455645_4E4745
# How long a process waits for another one's migration before giving up
# (the server then retries later).
LOCK_TIMEOUT_S = 120


class MigrationLockTimeout(Exception):
    """Another process held the migration lock for longer than ``LOCK_TIMEOUT_S``."""


@dataclass(frozen=True)
class SchemaUpgrade:
    """The schema revision before and after :func:`upgrade_schema`."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An Alembic configuration for Revenge's migrations, without an ini file."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revision modules need importable names (mypy checks them): rev_0002_...
    config.set_main_option("file_template", "rev_%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None before the first migration."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine) -> SchemaUpgrade:
    """
    Bring the schema to the newest revision, holding the migration lock; a
    no-op when it is current. Blocks: call it from a thread.
    """
    if engine.dialect.name == "postgresql":
        return _upgrade_postgresql(engine)
    return _upgrade_sqlite(engine)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Go back to ``revision`` (``"base"`` for an empty database); for development and tests."""
    with write_transaction(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


def _upgrade_in(connection: Connection) -> SchemaUpgrade:
    # One transaction: Alembic sees it already open and runs inside it, so a
    # failing revision leaves the schema as it was.
    with connection.begin():
        before = current_revision(connection)
        command.upgrade(alembic_config(connection), "head")
        after = current_revision(connection)
    return SchemaUpgrade(before, after)


def _upgrade_postgresql(engine: Engine) -> SchemaUpgrade:
    connection = engine.connect()
    try:
        # lock_timeout bounds the wait for the advisory lock as well.
        connection.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'"))
        connection.execute(
            text("SELECT pg_advisory_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK}
        )
        # The lock belongs to the session and outlives this transaction.
        connection.commit()
        return _upgrade_in(connection)
    finally:
        # Not back to the pool: closing the session drops the lock and the
        # lock_timeout setting with it, on every path.
        connection.invalidate()
        connection.close()


def _upgrade_sqlite(engine: Engine) -> SchemaUpgrade:
    path = sqlite_path(engine.url)
    lock_path = None if path is None else path.with_name(path.name + ".migrate-lock")
    with _file_lock(lock_path):
        with engine.connect() as connection:
            begin_immediately(connection)
            return _upgrade_in(connection)


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(
                        f"another process held the migration lock for {LOCK_TIMEOUT_S}s"
                    ) from None
                # Runs in a worker thread or the CLI, never on the reactor.
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
