"""
Media tests run a whole node (build_server, in this process, SQLite) whose
libraries are directories under the test's tmp_path, and talk to it with
http.client in a worker thread: it sends the request path byte for byte as
written (no dot-segment removal, no re-encoding), which the traversal tests
depend on.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from revenge.config import load_config

# One known pattern, so any byte range of the file can be computed here.
SAMPLE_SIZE = 10_000
SAMPLE = bytes((i * 7 + i // 256) % 256 for i in range(SAMPLE_SIZE))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def raw_request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> Answer:
    """One request on a new connection, the path sent exactly as given (blocking)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, body
        )
    finally:
        connection.close()


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Wait (serving the reactor) until ``condition()`` is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, 0.01, lambda: None)


@dataclass
class MediaNode:
    server: Any
    port: int
    roots: dict[str, Path]
    token: str = ""

    async def add_user(self, name: str, admin: bool = False) -> str:
        """Create a user directly in the database; returns its token."""
        from revenge.users import create_user

        database = self.server.database
        created = await database.write(
            lambda connection: create_user(
                connection, name, is_admin=admin, node_id="test-node", actor=None, via="test"
            )
        )
        token: str = created.token
        return token

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        token: str | None = "default",
    ) -> Answer:
        sent = dict(headers or {})
        if token == "default":
            token = self.token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        answer: Answer = await deferToThread(raw_request, self.port, method, path, sent)
        return answer

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)


@pytest.fixture
def media_roots(tmp_path: Path) -> dict[str, Path]:
    """Library roots: ``movies`` (with files), ``movies-2`` and ``tv`` (one file each)."""
    movies = tmp_path / "media" / "movies"
    (movies / "Film (2001)").mkdir(parents=True)
    (movies / "Film (2001)" / "film.mkv").write_bytes(SAMPLE)
    (movies / "sample.bin").write_bytes(SAMPLE)
    (movies / "empty.mp4").write_bytes(b"")
    second = tmp_path / "media" / "more-movies"
    second.mkdir(parents=True)
    (second / "other.mp4").write_bytes(b"second root")
    tv = tmp_path / "media" / "tv"
    tv.mkdir(parents=True)
    (tv / "show.webm").write_bytes(b"tv")
    return {"movies": movies, "movies-2": second, "tv": tv}


def media_environment(roots: dict[str, Path], extra_music: list[Path] | None = None) -> dict[str, str]:
    return {
        "REVENGE_MEDIA_MOVIE_PATHS": f"{roots['movies']},{roots['movies-2']}",
        "REVENGE_MEDIA_TV_PATHS": str(roots["tv"]),
        "REVENGE_MEDIA_MUSIC_PATHS": ",".join(str(path) for path in extra_music or []),
    }


async def start_media_node(
    tmp_path: Path, roots: dict[str, Path], extra_music: list[Path] | None = None
) -> tuple[MediaNode, Any]:
    from revenge.server._server import build_server

    environment = {
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_DATABASE_URL": f"sqlite:///{tmp_path}/db/revenge.db",
        "REVENGE_NODE_ID": "test-node",
        "REVENGE_SERVER_LISTEN": "tcp:0:interface=127.0.0.1",
        # Stopped after every test; the listener linger would add 2 s each.
        "REVENGE_SERVER_SHUTDOWN_LINGER": "0s",
        **media_environment(roots, extra_music),
    }
    server = build_server(load_config(None, environment, cwd=str(tmp_path)), reactor)
    server.service.startService()
    try:
        migrated = server.service.getServiceNamed("database").migrated
        await migrated.addTimeout(30, reactor)
        port = server.service.getServiceNamed("http").port.getHost().port
        node = MediaNode(server, port, roots)
        node.token = await node.add_user("root", admin=True)
    except BaseException:
        await server.service.stopService()
        raise
    return node, server


@pytest_twisted.async_yield_fixture
async def media_node(tmp_path: Path, media_roots: dict[str, Path]) -> AsyncIterator[MediaNode]:
    """A whole node with the libraries of ``media_roots`` and an admin user."""
    node, server = await start_media_node(tmp_path, media_roots)
    try:
        yield node
    finally:
        await server.service.stopService()


@pytest.fixture(autouse=True)
def no_errors_logged(captured_log: Any) -> Any:
    """Every media test also checks that nothing was logged as an error along the way."""
    yield
    errors = [
        record
        for record in captured_log.records
        if record.get("level") in ("error", "critical")
    ]
    assert not errors, errors
