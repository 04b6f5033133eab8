"""Engines for database.url: drivers, SQLite settings, transactions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import IntegrityError

from revenge.db import (
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
