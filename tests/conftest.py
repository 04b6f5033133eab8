"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, Logger, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.static import Data

from revenge.logs import carry_context, event_record, run_in_thread
from revenge.metrics import Metrics
from revenge.testing import InProcessNode, start_in_process_node
from revenge.testing.postgres import PostgresServer, postgres_server  # noqa: F401 (a fixture)
from revenge.web import ApiError, HealthChecks, RevengeApp, RevengeSite

log = Logger(namespace="tests.web")


class CapturedLog:
    """Log lines as the server would write them, captured at emission time."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, event: LogEvent) -> None:
        # event_record reads the request id from the emitting context, so it
        # must run now, not later.
        self.records.append(event_record(event, "test-node"))

    def matching(self, **fields: Any) -> list[dict[str, Any]]:
        return [r for r in self.records if all(r.get(k) == v for k, v in fields.items())]


@pytest.fixture
def captured_log() -> Iterator[CapturedLog]:
    captured = CapturedLog()
    globalLogPublisher.addObserver(captured)
    try:
        yield captured
    finally:
        globalLogPublisher.removeObserver(captured)


# An in-process server on loopback: the real wrapper, routes made for testing.


class Boom(Exception):
    pass


def build_test_app() -> tuple[RevengeApp, HealthChecks, Metrics]:
    metrics = Metrics()
    health = HealthChecks(global_reactor)
    app = RevengeApp(health, metrics)

    @app.route("/boom")
    def boom(request: Any) -> bytes:
        raise Boom("secret internals")

    @app.route("/boom-later")
    async def boom_later(request: Any) -> bytes:
        await deferLater(global_reactor, 0, lambda: None)
        raise Boom("secret internals, later")

    @app.route("/teapot")
    def teapot(request: Any) -> bytes:
        raise ApiError(418, "teapot", "short and stout")

    @app.route("/items/<name>", methods=["GET", "PUT"])
    def item(request: Any, name: str) -> bytes:
        return name.encode()

    @app.route("/chain")
    def chain(request: Any) -> Deferred[bytes]:
        # A plain Deferred chain fired later by the reactor: the contextvar does
        # not follow by itself, carry_context makes it.
        log.info("chain: before")
        d = deferLater(global_reactor, 0.01, lambda: None)
        d.addCallback(carry_context(lambda _: log.info("chain: in callback")))
        d.addCallback(lambda _: b"chained")
        return d

    @app.route("/thread")
    async def thread(request: Any) -> bytes:
        def blocking() -> str:
            log.info("thread: in worker")
            return "from thread"

        result = await run_in_thread(global_reactor, blocking)
        log.info("thread: back on reactor")
        return result.encode()

    static = Resource()
    static.putChild(b"hello", Data(b"plain twisted resource", "text/plain"))

    @app.route("/static/", branch=True)
    def static_branch(request: Any) -> Resource:
        return static

    return app, health, metrics


@dataclass
class RunningApp:
    url: str
    app: RevengeApp
    health: HealthChecks
    metrics: Metrics
    site: RevengeSite

    def get(self, path: str, **kwargs: Any) -> Any:
        return treq.get(self.url + path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return treq.request(method, self.url + path, **kwargs)


@pytest_twisted.async_yield_fixture
async def running_app() -> AsyncIterator[RunningApp]:
    app, health, metrics = build_test_app()
    site = RevengeSite(app.resource(), metrics)
    port = global_reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        yield RunningApp(
            f"http://127.0.0.1:{port.getHost().port}", app, health, metrics, site
        )
    finally:
        await port.stopListening()



# -- databases: one suite over SQLite and PostgreSQL ------------------------------
# postgres_server (revenge.testing.postgres) gives scratch databases.


@pytest.fixture(scope="session")
def shared_postgres_url(postgres_server: PostgresServer) -> str:
    """One migrated database for the whole run; tests get it with empty tables."""
    from revenge.db import create_database_engine, upgrade_schema

    url = postgres_server.create_database()
    engine = create_database_engine(url)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    return url


def empty_tables(url: str) -> None:
    from sqlalchemy import text

    from revenge.db import create_database_engine, write_transaction
    from revenge.db._schema import metadata

    engine = create_database_engine(url)
    try:
        with write_transaction(engine) as connection:
            names = ", ".join(table.name for table in metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """
    A migrated database with empty tables: a new SQLite file, or the session's
    PostgreSQL database (emptied after the test).
    """
    if request.param == "sqlite":
        from revenge.db import create_database_engine, upgrade_schema

        url = f"sqlite:///{tmp_path}/db/revenge.db"
        engine = create_database_engine(url)
        upgrade_schema(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("shared_postgres_url")
    try:
        yield url
    finally:
        empty_tables(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all: a new SQLite path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty/revenge.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


# An in-process node (revenge.testing.start_in_process_node) on loopback with a
# real database.


@pytest_twisted.async_yield_fixture
async def running_server(database_url: str, tmp_path: Path) -> AsyncIterator[InProcessNode]:
    """A whole node built by build_server, started in this process, with an admin user."""
    running = await start_in_process_node(tmp_path, database_url)
    try:
        yield running
    finally:
        await running.stop()
