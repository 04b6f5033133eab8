"""
``revenge storage init``: make the configured storage ready, then prove that
it takes a write, a read and a delete.

A provider that provides ``IInitializableStorage`` makes its backend ready
itself: with ``s3`` the bucket is created unless it exists (safe to run
again, and from several replicas at once), with ``local`` the directory is.
Any other backend is checked and probed the same way. Runs its own reactor.
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

from revenge.cli._common import CommandError, config_from_args
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
    from revenge.storage import IInitializableStorage

    if IInitializableStorage.providedBy(storage):
        description: str = storage.description
        return description
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
    from revenge.storage import IInitializableStorage, IStorage, StorageError

    try:
        storage = create_provider(STORAGE_GROUP, config.storage.backend, IStorage, config, reactor)
    except (ProviderError, ValueError) as error:
        raise CommandError(str(error)) from None
    # Asked of the provider, not of its class: any provider may declare it.
    initializable = IInitializableStorage.providedBy(storage)
    where = _describe(storage)
    try:
        if initializable:
            outcome = await storage.initialize()
            lines.append(f"{where}: {outcome}")
        else:
            await storage.check()
            lines.append(f"{where}: ready")
        await _prove(storage)
        lines.append(f"{where}: write, read and delete work")
    except StorageError as error:
        message = storage.describe_error(error) if initializable else str(error)
        raise CommandError(f"storage init failed: {message}") from None
    finally:
        if initializable:
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
