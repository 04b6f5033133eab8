"""
What the avatar tests share (conftest.py has the fixtures): images of each
type, and an :class:`AvatarNode`, a whole node (build_server, in this
process) plus direct access to where its avatars are stored: the files under
the local root, or the bucket through botocore.

Tests import from here, never from conftest.py: pytest imports conftest
files itself, and a second import of one by name may pick another folder's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from twisted.internet.threads import deferToThread

from revenge.db import users
from revenge.testing import InProcessNode, TcpProxy
from revenge.testing.s3 import S3Server

# Small, so that "over the cap" tests move little data.
AVATAR_CAP = 64 * 1024
# How long an avatar test waits for what a node does in its own time (an
# access log line, a paused body); generous, it only bounds a failing test.
DEADLINE_S = 15.0

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(255, -1, -1)) * 8
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"gif" * 500
WEBP = b"RIFF" + (4000).to_bytes(4, "little") + b"WEBPVP8 " + b"w" * 3990


@dataclass
class AvatarNode:
    """A running node plus direct access to where its avatars are stored."""

    running: InProcessNode
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
