"""
Scratch PostgreSQL databases for tests and benchmarks, on a server given by
``REVENGE_TEST_POSTGRES_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
as a user that may create databases. The pytest fixture is in
:mod:`revenge.testing.postgres`.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

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

    @classmethod
    def from_environment(cls) -> PostgresServer:
        """The server ``REVENGE_TEST_POSTGRES_DSN`` names, or the default one."""
        return cls(os.environ.get(POSTGRES_DSN_VARIABLE, DEFAULT_POSTGRES_DSN))

    def check(self) -> None:
        """Raise (a psycopg error) unless the server answers."""
        with self._admin() as connection:
            connection.execute("SELECT 1")
