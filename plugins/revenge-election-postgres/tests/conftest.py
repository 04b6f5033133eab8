"""Fixtures for the postgres election provider's tests: a PostgreSQL database and lease tables."""

from __future__ import annotations

import secrets

import pytest

from revenge.testing.postgres import PostgresServer, postgres_server  # noqa: F401 (a fixture)

# trust authentication ignores it, so it can stand for a real password that
# must never show in status() or logs.
PASSWORD = "lease-db-password-must-not-leak"


@pytest.fixture(scope="session")
def election_database_url(postgres_server: PostgresServer) -> str:
    """One scratch database for the session's in-process tests (each uses its own table)."""
    return postgres_server.create_database()


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def conninfo(election_database_url: str) -> str:
    """The database as psycopg takes it, with a password in it."""
    user_and_rest = election_database_url.split("://", 1)[1]
    user, _, rest = user_and_rest.partition("@")
    return f"postgresql://{user}:{PASSWORD}@{rest}"


@pytest.fixture
def table() -> str:
    """A lease table of the test's own, created by the provider on start."""
    return f"lease_{secrets.token_hex(6)}"
