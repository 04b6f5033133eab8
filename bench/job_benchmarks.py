"""
Benchmarks of the leader-only jobs, registered into ``bench/run.py`` with
:func:`register`.

- ``cleanup_vs_single_delete``: 1,000,000 expired activity rows in PostgreSQL
  (``--quick``: 200,000). Rows/s of the ``activity_cleanup`` job (small
  batches, one transaction each, through the fence) divided by rows/s of one
  plain ``DELETE FROM activity WHERE created_at < cutoff`` on an identical
  table. Also the slowest batch transaction, which bounds how long the job
  holds its locks.

The job's own code runs (``ActivityCleanup.run`` with a ``JobRun``, the fence,
``delete_expired_batch``), driven synchronously: its database calls run
inline instead of on the reactor's thread pool, which leaves out the thread
hop (tens of microseconds per batch). The table is filled with ``INSERT ...
SELECT generate_series`` and vacuumed before each measurement, so both ways
start from the same state; rounds alternate which way goes first.

PostgreSQL: ``REVENGE_BENCH_POSTGRES_DSN`` (else ``REVENGE_TEST_POSTGRES_DSN``,
else ``postgresql://postgres@127.0.0.1:5432/postgres``), a user that may
create databases; a scratch database is created and dropped.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import delete, make_url, text
from sqlalchemy.engine import Connection, Engine

from revenge.db import (
    Database,
    activity,
    create_database_engine,
    upgrade_schema,
    write_transaction,
)
from revenge.jobs import DEFAULT_BATCH_SIZE, ActivityCleanup, JobRun, take_office

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]
_T = TypeVar("_T")

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
RETENTION_S = 90 * 86400.0
# Rows inside the retention window, left alone by both ways of deleting.
YOUNG_ROWS = 10_000


class _Skipped(Exception):
    pass


_skipped: type[Exception] = _Skipped


def _dsn() -> str:
    return os.environ.get(
        "REVENGE_BENCH_POSTGRES_DSN", os.environ.get("REVENGE_TEST_POSTGRES_DSN", DEFAULT_DSN)
    )


@contextmanager
def _scratch_database() -> Iterator[str]:
    import psycopg

    dsn = _dsn()
    name = f"revenge_bench_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        raise _skipped(f"PostgreSQL is not reachable ({type(error).__name__})") from None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(dsn).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(engine: Engine, expired: int, now: float) -> None:
    """``expired`` rows older than the retention, YOUNG_ROWS newer, oldest first; vacuumed."""
    with write_transaction(engine) as connection:
        connection.execute(text("TRUNCATE activity"))
        connection.execute(
            text(
                """
                INSERT INTO activity (created_at, actor, action, target, request_id, node_id, details)
                SELECT to_timestamp(:start + g * :step), 'someone', 'bench.filler',
                       'target-' || g, md5(g::text), 'bench-node', '{"via": "bench"}'::json
                FROM generate_series(1, :rows) AS g
                """
            ),
            # Spread over the 30 days before the cutoff, one row after another.
            {
                "start": now - RETENTION_S - 30 * 86400.0,
                "step": 30 * 86400.0 / (expired + 1),
                "rows": expired,
            },
        )
        connection.execute(
            text(
                """
                INSERT INTO activity (created_at, actor, action, target, request_id, node_id, details)
                SELECT to_timestamp(:start + g), 'someone', 'bench.young', 'target-' || g,
                       md5(g::text), 'bench-node', '{"via": "bench"}'::json
                FROM generate_series(1, :rows) AS g
                """
            ),
            {"start": now - RETENTION_S + 60, "rows": YOUNG_ROWS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) activity"))
        connection.execute(text("CHECKPOINT"))


def _remaining(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM activity")).scalar_one())


class _InlineDatabase(Database):
    """Runs work inline, timing each write transaction (commit included)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, reactor=None, node_id="bench-node")
        self.schema_ready = True
        self.write_seconds: list[float] = []

    async def write(self, work: Callable[[Connection], _T]) -> _T:
        started = time.perf_counter()
        with write_transaction(self.engine) as connection:
            result = work(connection)
        self.write_seconds.append(time.perf_counter() - started)
        return result


class _Clock:
    def __init__(self, now: float) -> None:
        self._now = now

    def seconds(self) -> float:
        return self._now


def _run_job(engine: Engine, now: float, batch_size: int) -> tuple[float, int, list[float]]:
    """Seconds, rows deleted and per-batch seconds of one ActivityCleanup run."""
    with write_transaction(engine) as connection:
        term = take_office(connection, "bench-node", ["activity_cleanup"])
    database = _InlineDatabase(engine)
    job = ActivityCleanup(
        interval=3600.0,
        retention=RETENTION_S,
        clock=_Clock(now),  # type: ignore[arg-type]
        batch_size=batch_size,
    )
    run = JobRun(
        job=job.name,
        term=term,
        node_id="bench-node",
        period=0,
        request_id=None,
        database=database,
        ensure_current=lambda: None,
    )
    started = time.perf_counter()
    body = job.run(run)
    try:
        body.send(None)
    except StopIteration:
        pass
    else:
        body.close()
        raise RuntimeError("the job waited on something that is not its database")
    elapsed = time.perf_counter() - started
    return elapsed, int(run.details["deleted"]), database.write_seconds


def _single_delete(engine: Engine, now: float) -> tuple[float, int]:
    cutoff = datetime.fromtimestamp(now - RETENTION_S, timezone.utc)
    started = time.perf_counter()
    with write_transaction(engine) as connection:
        deleted = connection.execute(delete(activity).where(activity.c.created_at < cutoff))
    return time.perf_counter() - started, int(deleted.rowcount)


def cleanup_vs_single_delete(quick: bool, batch_size: int = DEFAULT_BATCH_SIZE) -> Figures:
    rows = 200_000 if quick else 1_000_000
    rounds = 2 if quick else 3
    now = time.time()
    job_rates: list[float] = []
    single_rates: list[float] = []
    batch_seconds: list[float] = []
    batches: list[int] = []
    with _scratch_database() as url:
        engine = create_database_engine(url, application_name="revenge bench")
        try:
            upgrade_schema(engine)
            for round_index in range(rounds):
                order = ("job", "single") if round_index % 2 == 0 else ("single", "job")
                for way in order:
                    _fill(engine, rows, now)
                    if way == "job":
                        seconds, deleted, writes = _run_job(engine, now, batch_size)
                        job_rates.append(deleted / seconds)
                        batch_seconds.extend(writes)
                        batches.append(len(writes))
                    else:
                        seconds, deleted = _single_delete(engine, now)
                        single_rates.append(deleted / seconds)
                    if deleted != rows or _remaining(engine) != YOUNG_ROWS:
                        raise RuntimeError(f"{way}: deleted {deleted} of {rows} rows")
        finally:
            engine.dispose()
    job_rate = statistics.median(job_rates)
    single_rate = statistics.median(single_rates)
    ordered = sorted(batch_seconds)
    return {
        "ratio": round(job_rate / single_rate, 3),
        "max_batch_ms": round(max(batch_seconds) * 1000, 1),
        "p99_batch_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 1),
        "job_rows_per_s": round(job_rate),
        "single_delete_rows_per_s": round(single_rate),
        "rows": rows,
        "batch_size": batch_size,
        "batches": batches[0],
        "rounds": rounds,
    }


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add these benchmarks to ``bench/run.py``'s registry."""
    global _skipped
    _skipped = skipped
    benchmark(
        "cleanup_vs_single_delete",
        target="ratio >= 0.50 (goal: max_batch_ms <= 100)",
        met=lambda figures: bool(figures["ratio"] >= 0.50),
    )(cleanup_vs_single_delete)


if __name__ == "__main__":
    # Tuning without bench/run.py: python bench/job_benchmarks.py [--quick] [BATCH_SIZE ...]
    quick_mode = "--quick" in sys.argv
    sizes = [int(arg) for arg in sys.argv[1:] if not arg.startswith("--")] or [DEFAULT_BATCH_SIZE]
    for size in sizes:
        figures = cleanup_vs_single_delete(quick_mode, batch_size=size)
        sys.stdout.write(json.dumps({"name": "cleanup_vs_single_delete", **figures}) + "\n")
