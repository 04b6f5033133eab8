"""Engines for database.url: drivers, SQLite settings, transactions."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import URL, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from revenge.db import (
    DatabaseUnavailable,
    DatabaseUrlError,
    create_database_engine,
    database_url,
    describe_database_error,
    read_transaction,
    users,
    utc_now,
    write_transaction,
)


def test_postgresql_urls_use_psycopg_3():
    assert database_url("postgresql://u:pw@db/revenge").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@db/revenge").drivername == "postgresql+psycopg"
    assert database_url("sqlite:///data/revenge.db").drivername == "sqlite"


def test_unsupported_url_names_the_driver_not_the_password():
    with pytest.raises(DatabaseUrlError) as raised:
        database_url("mysql://user:hunter2@db/revenge")
    assert "mysql" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_sqlite_creates_its_directory_and_uses_wal(tmp_path: Path):
    path = tmp_path / "deep" / "er" / "revenge.db"
    engine = create_database_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_write_transactions_take_the_write_lock_at_begin(tmp_path: Path):
    engine = create_database_engine(f"sqlite:///{tmp_path}/revenge.db")
    statements: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql)
    )
    try:
        with write_transaction(engine) as connection:
            connection.execute(text("SELECT 1"))
        with read_transaction(engine) as connection:
            connection.execute(text("SELECT 2"))
    finally:
        engine.dispose()
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN DEFERRED"]


def _user_row(name: str) -> dict[str, object]:
    return {
        "name": name,
        "is_admin": False,
        "token_selector": name.ljust(16, "0"),
        "token_verifier_hash": "0" * 64,
        "created_at": utc_now(),
    }


def test_a_failing_write_transaction_rolls_back(database_url: str):
    engine = create_database_engine(database_url)
    try:
        with pytest.raises(RuntimeError):
            with write_transaction(engine) as connection:
                connection.execute(insert(users).values(**_user_row("ghost")))
                raise RuntimeError("changed my mind")
        with read_transaction(engine) as connection:
            assert connection.execute(select(users.c.name)).all() == []
    finally:
        engine.dispose()


def test_error_descriptions_leave_out_statements_and_parameters(database_url: str):
    engine = create_database_engine(database_url)
    try:
        with write_transaction(engine) as connection:
            connection.execute(insert(users).values(**_user_row("twin")))
        with pytest.raises(IntegrityError) as raised:
            with write_transaction(engine) as connection:
                row = _user_row("twin")
                row["token_verifier_hash"] = "f" * 60 + "beef"
                connection.execute(insert(users).values(**row))
    finally:
        engine.dispose()
    description = describe_database_error(raised.value)
    assert "IntegrityError" in description or "UniqueViolation" in description
    assert "beef" not in description
    assert "INSERT" not in description
    assert "\n" not in description


def test_an_in_memory_database_keeps_its_schema_across_checkouts():
    from revenge.db import upgrade_schema

    engine = create_database_engine("sqlite://")
    try:
        assert upgrade_schema(engine).changed
        with read_transaction(engine) as connection:
            assert connection.execute(select(users.c.name)).all() == []
        assert not upgrade_schema(engine).changed
    finally:
        engine.dispose()


# -- no part of a URL's secrets in what is logged or printed ------------------------

# Every four characters of these are distinctive: none may show anywhere.
PASSWORD = "Qx7@Wv9k/Jz3?Ym8"
SSL_PASSWORD = "Sp4ss@K3yQ"


def _pieces(secret: str) -> list[str]:
    forms = (secret, quote(secret, safe=""))
    return [form[start : start + 4] for form in forms for start in range(len(form) - 3)]


def _leaked(text: str) -> list[str]:
    return [piece for secret in (PASSWORD, SSL_PASSWORD) for piece in _pieces(secret) if piece in text]


def _connection_error(url: str | URL) -> BaseException:
    engine = create_database_engine(url)
    try:
        with pytest.raises(OperationalError) as raised, engine.connect():
            pass
    finally:
        engine.dispose()
    return raised.value


def test_database_url_refuses_an_unencoded_password_without_showing_it():
    with pytest.raises(DatabaseUrlError) as raised:
        database_url("postgresql://revenge:Qx7@Wv9k@127.0.0.1/revenge")
    assert str(raised.value).startswith("database.url: the password holds a raw '@'")
    assert "%40" in str(raised.value)
    assert "Qx7" not in str(raised.value)
    assert "Wv9k" not in str(raised.value)


@pytest.mark.parametrize("host", ["nonexistent.invalid", "127.0.0.1:{closed}"])
def test_a_failed_connection_shows_no_part_of_the_passwords(host: str):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = (
        f"postgresql://revenge:{quote(PASSWORD, safe='')}@{host.format(closed=closed)}/revenge"
        f"?sslpassword={quote(SSL_PASSWORD, safe='')}&sslmode=prefer"
    )
    description = describe_database_error(_connection_error(url))
    assert description.startswith("OperationalError: "), description
    assert _leaked(description) == [], description


def test_a_password_tail_in_the_host_is_masked():
    # What an unencoded "@" did before database_url refused it: SQLAlchemy
    # ends the password there, and libpq fails to resolve "tail@host".
    url = URL.create(
        "postgresql+psycopg", username="revenge", password="Qx7", host="Wv9kJz3Ym8@127.0.0.1"
    )
    description = describe_database_error(_connection_error(url))
    assert "failed to resolve host '***@127.0.0.1'" in description, description
    assert "Wv9k" not in description


def test_urls_and_connection_strings_in_driver_text_are_redacted():
    # Not from one of our engines, so no URL is known: what is in it is scrubbed.
    error = RuntimeError(
        'invalid URI "postgresql://u:Qx7%40Wv9k@h/db?sslpassword=Sp4ss%40K3yQ" '
        "(from host=h password='Qx7@Wv9k/Jz3?Ym8' dbname=x)"
    )
    description = describe_database_error(error)
    assert description == (
        'RuntimeError: invalid URI "postgresql://u:***@h/db?sslpassword=***" '
        "(from host=h password=*** dbname=x)"
    )
    assert _leaked(description) == []


def test_a_reason_is_scrubbed_too():
    unavailable = DatabaseUnavailable("cannot reach postgresql://u:Qx7%40Wv9k@db/x")
    assert describe_database_error(unavailable) == "cannot reach postgresql://u:***@db/x"
