"""
``revenge storage init``: make the configured storage ready, then prove that
it takes a write, a read and a delete.

With ``s3`` the bucket is created unless it exists (safe to run again, and
from several replicas at once); with ``local`` the directory is. Any other
backend is checked and probed the same way. Runs its own reactor.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import uuid
from typing import Any

from twisted.internet.interfaces import IConsumer, IProducer
from zope.interface import implementer

from revenge.cli._main import CommandError, config_from_args
from revenge.config import Config

# Probe objects live under their own prefix, so a leftover is easy to spot.
PROBE_PREFIX = "revenge-storage-init/"


@implementer(IConsumer)
class _Collector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


def _describe(storage: Any) -> str:
    from revenge.storage import LocalStorage
    from revenge.storage._s3 import S3Storage

    if isinstance(storage, S3Storage):
        return f"S3 bucket {storage.bucket!r} at {storage.endpoint}"
    if isinstance(storage, LocalStorage):
        return f"local storage at {storage.root}"
    return f"storage backend {storage.name!r}"


async def _prove(storage: Any) -> None:
    """Write, read back and delete a probe object."""
    key = f"{PROBE_PREFIX}probe-{uuid.uuid4().hex}"
    data = os.urandom(64)
    await storage.store(key, io.BytesIO(data), "application/octet-stream", len(data))
    try:
        fetched = await storage.get(key)
        collector = _Collector()
        await fetched.body.startProducing(collector)
        if b"".join(collector.chunks) != data:
            raise CommandError("the probe object read back differs from what was written")
    finally:
        await storage.delete(key)
    if await storage.exists(key):
        raise CommandError("the probe object is still there after being deleted")


async def _initialise(reactor: Any, config: Config, lines: list[str]) -> None:
    from revenge.providers import STORAGE_GROUP, ProviderError, create_provider
    from revenge.storage import IStorage, StorageError
    from revenge.storage._s3 import S3Storage

    try:
        storage = create_provider(STORAGE_GROUP, config.storage.backend, IStorage, config, reactor)
    except (ProviderError, ValueError) as error:
        raise CommandError(str(error)) from None
    where = _describe(storage)
    try:
        if isinstance(storage, S3Storage):
            created = await storage.ensure_bucket()
            lines.append(f"{where}: {'created' if created else 'already exists'}")
        else:
            # The local provider creates its directory here.
            await storage.check()
            lines.append(f"{where}: ready")
        await _prove(storage)
        lines.append(f"{where}: write, read and delete work")
    except StorageError as error:
        message = str(error)
        if isinstance(storage, S3Storage) and (
            storage.endpoint not in message or repr(storage.bucket) not in message
        ):
            message += f" ({where})"
        raise CommandError(f"storage init failed: {message}") from None
    finally:
        if isinstance(storage, S3Storage):
            await storage.close()


def storage_init(args: argparse.Namespace) -> int:
    from twisted.internet.defer import Deferred, ensureDeferred
    from twisted.internet.task import react

    config = config_from_args(args)
    lines: list[str] = []
    failures: list[BaseException] = []

    def main(reactor: Any) -> Deferred[None]:
        async def run() -> None:
            try:
                await _initialise(reactor, config, lines)
            except BaseException as error:  # reported below, after the reactor stops
                failures.append(error)

        return ensureDeferred(run())

    try:
        react(main)
    except SystemExit:
        pass  # react always exits; our outcome is in lines and failures
    for line in lines:
        sys.stdout.write(line + "\n")
    if failures:
        error = failures[0]
        if isinstance(error, CommandError):
            raise error
        raise CommandError(f"storage init failed: {type(error).__name__}: {error}")
    return 0
