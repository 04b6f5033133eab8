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
from collections.abc import Iterator

import pytest

from revenge.testing._postgres import (
    DEFAULT_POSTGRES_DSN,
    POSTGRES_DSN_VARIABLE,
    POSTGRES_START_HINT,
    PostgresServer,
)

__all__ = [
    "DEFAULT_POSTGRES_DSN",
    "POSTGRES_DSN_VARIABLE",
    "POSTGRES_START_HINT",
    "PostgresServer",
    "postgres_server",
]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The test PostgreSQL server; skips (fails under ``CI=true``) when it is not reachable."""
    import psycopg

    server = PostgresServer.from_environment()
    try:
        server.check()
    except psycopg.Error as error:
        reason = f"PostgreSQL is not reachable ({type(error).__name__}); {POSTGRES_START_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.drop_created()
