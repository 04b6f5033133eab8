"""
PostgreSQL for tests: scratch databases on a server the tests may use, and
the ``postgres_server`` pytest fixture that finds it.

The server is ``REVENGE_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), a user that may create
databases. When it is not reachable the tests that need it are skipped, or
fail under ``CI=true``. A provider's test suite uses it by importing the
fixture into its ``conftest.py``::

    from revenge.testing.postgres import postgres_server  # noqa: F401

    def test_something(postgres_server):
        url = postgres_server.create_database()   # dropped at the end of the session

This module imports pytest: import it from tests only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = [
    "DEFAULT_POSTGRES_DSN",
    "POSTGRES_DSN_VARIABLE",
    "POSTGRES_START_HINT",
    "PostgresServer",
    "postgres_server",
]

POSTGRES_DSN_VARIABLE = "REVENGE_TEST_POSTGRES_DSN"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_START_HINT = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    f"or point {POSTGRES_DSN_VARIABLE} at a server where this user may create databases"
)


class PostgresServer:
    """The PostgreSQL server the tests may use: creates and drops scratch databases."""

    def __init__(self, dsn: str) -> None:
        from sqlalchemy import make_url

        self.dsn = dsn
        self._url = make_url(dsn)
        self.created: list[str] = []

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)

    def url_for(self, database: str) -> str:
        return self._url.set(database=database).render_as_string(hide_password=False)

    @property
    def host(self) -> str:
        return self._url.host or "127.0.0.1"

    @property
    def port(self) -> int:
        return self._url.port or 5432

    def create_database(self) -> str:
        """A new empty database; returns its URL (dropped when the session ends)."""
        name = f"revenge_test_{secrets.token_hex(6)}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_for(name)

    def drop_created(self) -> None:
        with self._admin() as connection:
            for name in self.created:
                # FORCE: a server process a failed test left behind may still be connected.
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The test PostgreSQL server; skips (fails under ``CI=true``) when it is not reachable."""
    import psycopg

    server = PostgresServer(os.environ.get(POSTGRES_DSN_VARIABLE, DEFAULT_POSTGRES_DSN))
    try:
        with server._admin() as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        reason = f"PostgreSQL is not reachable ({type(error).__name__}); {POSTGRES_START_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.drop_created()
