"""
What the media tests share (conftest.py has the fixtures): a whole node
(revenge.testing.start_in_process_node, SQLite) whose libraries are
directories under the test's tmp_path, talked to with http.client in a worker
thread: it sends the request path byte for byte as written (no dot-segment
removal, no re-encoding), which the traversal tests depend on.

Tests import from here, never from conftest.py: pytest imports conftest
files itself, and a second import of one by name may pick another folder's.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread

from revenge.testing import InProcessNode, start_in_process_node

# How long a media test waits for what a node does in its own time (closing
# a file, logging a warning); generous, it only bounds a failing test.
DEADLINE_S = 15.0

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


@dataclass
class MediaNode:
    """A running node, the library roots it serves, and requests sent byte for byte."""

    running: InProcessNode
    roots: dict[str, Path]

    @property
    def server(self) -> Any:
        return self.running.server

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def token(self) -> str:
        """The admin's token, sent by default."""
        return self.running.admin_token

    async def add_user(self, name: str, admin: bool = False) -> str:
        """Create a user directly in the database; returns its token."""
        return await self.running.add_user(name, admin)

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


def media_environment(
    roots: dict[str, Path], extra_music: list[Path] | None = None
) -> dict[str, str]:
    return {
        "REVENGE_MEDIA_MOVIE_PATHS": f"{roots['movies']},{roots['movies-2']}",
        "REVENGE_MEDIA_TV_PATHS": str(roots["tv"]),
        "REVENGE_MEDIA_MUSIC_PATHS": ",".join(str(path) for path in extra_music or []),
    }


async def start_media_node(
    tmp_path: Path, roots: dict[str, Path], extra_music: list[Path] | None = None
) -> tuple[MediaNode, Any]:
    """A node serving ``roots`` (and ``extra_music``), with an admin; stop the returned server."""
    running = await start_in_process_node(
        tmp_path, f"sqlite:///{tmp_path}/db/revenge.db", media_environment(roots, extra_music)
    )
    return MediaNode(running, roots), running.server
