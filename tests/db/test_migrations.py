"""Alembic migrations: they build the schema, are idempotent, and serialise."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from revenge.db import (
    create_database_engine,
    upgrade_schema,
)
from revenge.db._migrate import current_revision, downgrade_schema, head_revision
from revenge.db._schema import metadata

TABLES = {"users", "activity", "job_runs", "job_fences", "election_terms"}


def test_upgrade_creates_the_schema_then_does_nothing(empty_database_url: str):
    engine = create_database_engine(empty_database_url)
    try:
        assert not set(inspect(engine).get_table_names()) & TABLES
        first = upgrade_schema(engine)
        assert first.before is None
        assert first.after == head_revision()
        assert first.changed
        assert TABLES <= set(inspect(engine).get_table_names())

        second = upgrade_schema(engine)
        assert second.before == second.after == head_revision()
        assert not second.changed
        with engine.connect() as connection:
            assert current_revision(connection) == head_revision()
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_table_definitions(empty_database_url: str):
    engine = create_database_engine(empty_database_url)
    try:
        upgrade_schema(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
        unique = {
            tuple(c["column_names"])
            for c in inspect(engine).get_unique_constraints("job_runs")
        }
        assert ("job", "period") in unique
        indexed = {tuple(i["column_names"]) for i in inspect(engine).get_indexes("activity")}
        assert ("created_at",) in indexed
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(empty_database_url: str):
    engine = create_database_engine(empty_database_url)
    try:
        upgrade_schema(engine)
        downgrade_schema(engine, "base")
        assert not set(inspect(engine).get_table_names()) & TABLES
        assert upgrade_schema(engine).changed
    finally:
        engine.dispose()


def test_concurrent_upgrades_migrate_exactly_once(empty_database_url: str):
    # Separate engines, as separate processes would have.
    engines = [create_database_engine(empty_database_url) for _ in range(3)]
    results: list[object] = []
    start = threading.Barrier(len(engines))

    def migrate(engine: object) -> None:
        start.wait()
        try:
            results.append(upgrade_schema(engine))  # type: ignore[arg-type]
        except Exception as error:  # reported below
            results.append(error)

    threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(results) == 3
    assert sum(1 for r in results if r.changed) == 1  # type: ignore[attr-defined]
    assert {r.after for r in results} == {head_revision()}  # type: ignore[attr-defined]
