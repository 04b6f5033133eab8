"""
Avatar tests run a whole node (build_server, in this process) whose storage is
``local`` or ``s3`` (moto on loopback, reached through a TcpProxy that a test
can cut), over SQLite or PostgreSQL, and look at what is stored directly: the
files under the local root, or the bucket through botocore.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from sqlalchemy import select
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from revenge.db import users
from revenge.testing import TcpProxy
from revenge.testing.s3 import S3Server, moto_server

# Small, so that "over the cap" tests move little data.
AVATAR_CAP = 64 * 1024

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(255, -1, -1)) * 8
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"gif" * 500
WEBP = b"RIFF" + (4000).to_bytes(4, "little") + b"WEBPVP8 " + b"w" * 3990


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "avatar_cap(bytes): storage.avatar_max_bytes for the avatar_node fixture"
    )


@pytest.fixture(scope="session")
def avatar_moto() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


TEST_NODE_ID = "test-node"


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any


@dataclass
class RunningNode:
    """
    A node built by build_server, on loopback, with an admin. (The root
    conftest has a similar helper, but ``from conftest import`` picks up
    whichever conftest module was imported last, so it is not used here.)
    """

    url: str
    server: Any
    admin_token: str = ""

    @property
    def database(self) -> Any:
        return self.server.database

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request; ``body`` is the decoded JSON (None for an empty body)."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        response = await treq.request(method, self.url + path, headers=sent, data=data)
        raw = await treq.content(response)
        return Reply(response.code, response.headers, json.loads(raw) if raw else None)

    async def add_user(self, name: str, admin: bool = False) -> str:
        """Create a user directly in the database; returns its token."""
        from revenge.users import create_user

        created = await self.database.write(
            lambda connection: create_user(
                connection, name, is_admin=admin, node_id=TEST_NODE_ID, actor=None, via="test"
            )
        )
        token: str = created.token
        return token


@dataclass
class AvatarNode:
    """A running node plus direct access to where its avatars are stored."""

    running: RunningNode
    backend: str
    storage_root: Path
    s3: S3Server | None = None
    bucket: str | None = None
    s3_proxy: TcpProxy | None = None

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def server(self) -> Any:
        return self.running.server

    @property
    def admin_token(self) -> str:
        return self.running.admin_token

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.running.call(method, path, **kwargs)

    async def add_user(self, name: str, admin: bool = False) -> str:
        return await self.running.add_user(name, admin)

    async def put_avatar(
        self, name: str, token: str, data: bytes, content_type: str = "image/png", **headers: str
    ) -> Any:
        return await self.call(
            "PUT",
            f"/api/v1/users/{name}/avatar",
            token=token,
            data=data,
            headers={"Content-Type": content_type, **headers},
        )

    async def avatar_key(self, name: str) -> str | None:
        key: str | None = await self.running.database.read(
            lambda connection: connection.execute(
                select(users.c.avatar_key).where(users.c.name == name)
            ).scalar_one()
        )
        return key

    async def stored_keys(self) -> list[str]:
        """Every object the backend holds, listed without going through Revenge."""
        if self.s3 is not None:
            assert self.bucket is not None
            keys: list[str] = await deferToThread(self.s3.keys, self.bucket)
            return keys
        return _local_keys(self.storage_root)

    async def stored_bytes(self, key: str) -> bytes:
        if self.s3 is not None:
            body, _ = await deferToThread(self.s3.read, self.bucket, key)
            data: bytes = body
            return data
        with open(self.storage_root / (key + "~obj"), "rb") as file:
            file.readline()  # magic
            file.readline()  # metadata
            return file.read()

    def cut_storage(self) -> None:
        """Make the storage unreachable (s3) or unusable (local)."""
        if self.s3_proxy is not None:
            self.s3_proxy.cut()
            return
        os.rename(self.storage_root, str(self.storage_root) + ".away")
        self.storage_root.write_bytes(b"not a directory")

    def restore_storage(self) -> None:
        if self.s3_proxy is not None:
            self.s3_proxy.restore()
            return
        self.storage_root.unlink()
        os.rename(str(self.storage_root) + ".away", self.storage_root)


def _local_keys(root: Path) -> list[str]:
    keys = []
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            # Temporary files of an unfinished store count too: nothing may linger.
            keys.append(relative[: -len("~obj")] if relative.endswith("~obj") else relative)
    return sorted(keys)


async def start_node(tmp_path: Path, database_url: str, **env: str) -> RunningNode:
    """build_server on loopback with ``env`` as extra REVENGE_* settings, plus an admin."""
    from revenge.config import load_config
    from revenge.server._server import build_server

    environ = {
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_DATABASE_URL": database_url,
        "REVENGE_NODE_ID": TEST_NODE_ID,
        "REVENGE_SERVER_LISTEN": "tcp:0:interface=127.0.0.1",
        # Stopped after every test; the listener linger would add 2 s each.
        "REVENGE_SERVER_SHUTDOWN_LINGER": "0s",
        **env,
    }
    server = build_server(load_config(None, environ, cwd=str(tmp_path)), reactor)
    server.service.startService()
    try:
        await server.service.getServiceNamed("database").migrated.addTimeout(30, reactor)
        port = server.service.getServiceNamed("http").port.getHost().port
        running = RunningNode(f"http://127.0.0.1:{port}", server)
        running.admin_token = await running.add_user("root", admin=True)
    except BaseException:
        await server.service.stopService()
        raise
    return running


def s3_settings(s3: S3Server, bucket: str, endpoint: str) -> dict[str, str]:
    return {
        "REVENGE_STORAGE_BACKEND": "s3",
        "REVENGE_STORAGE_S3_ENDPOINT": endpoint,
        "REVENGE_STORAGE_S3_BUCKET": bucket,
        "REVENGE_STORAGE_S3_REGION": s3.region,
        "REVENGE_STORAGE_S3_ACCESS_KEY_ID": s3.access_key,
        "REVENGE_STORAGE_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "REVENGE_STORAGE_S3_USE_PATH_STYLE": "true",
    }


@pytest_twisted.async_yield_fixture(params=["local", "s3"])
async def avatar_node(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[AvatarNode]:
    """A node with local or s3 storage (× SQLite and PostgreSQL through ``database_url``)."""
    marker = request.node.get_closest_marker("avatar_cap")
    cap = marker.args[0] if marker is not None else AVATAR_CAP
    settings = {"REVENGE_STORAGE_AVATAR_MAX_BYTES": str(cap)}
    storage_root = tmp_path / "data" / "storage"
    if request.param == "local":
        running = await start_node(tmp_path, database_url, **settings)
        try:
            yield AvatarNode(running, "local", storage_root)
        finally:
            await running.server.service.stopService()
        return
    s3: S3Server = request.getfixturevalue("avatar_moto")
    bucket = await deferToThread(s3.make_bucket)
    host, port = s3.endpoint.rsplit("//", 1)[1].split(":")
    proxy = TcpProxy(host, int(port)).start()
    try:
        settings.update(s3_settings(s3, bucket, f"http://127.0.0.1:{proxy.port}"))
        running = await start_node(tmp_path, database_url, **settings)
        try:
            yield AvatarNode(running, "s3", storage_root, s3, bucket, proxy)
        finally:
            await running.server.service.stopService()
    finally:
        proxy.cut()
        await deferToThread(s3.remove_bucket, bucket)
