"""
Avatar tests run a whole node (build_server, in this process) whose storage is
``local`` or ``s3`` (moto on loopback, reached through a TcpProxy that a test
can cut), over SQLite or PostgreSQL, and look at what is stored directly: the
files under the local root, or the bucket through botocore (helpers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from revenge.testing import TcpProxy, start_in_process_node
from revenge.testing.s3 import S3Server, moto_server

from .helpers import AVATAR_CAP, AvatarNode, s3_settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "avatar_cap(bytes): storage.avatar_max_bytes for the avatar_node fixture"
    )


@pytest.fixture(scope="session")
def avatar_moto() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


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
        running = await start_in_process_node(tmp_path, database_url, settings)
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
        running = await start_in_process_node(tmp_path, database_url, settings)
        try:
            yield AvatarNode(running, "s3", storage_root, s3, bucket, proxy)
        finally:
            await running.server.service.stopService()
    finally:
        proxy.cut()
        await deferToThread(s3.remove_bucket, bucket)
