"""
``IInitializableStorage``: the built-ins provide it, the metrics wrapper
shows it when its provider does, and ``revenge storage init`` uses it for
any provider (the command itself runs as a process in tests/cli).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from zope.interface import implementer
from zope.interface.verify import verifyObject

from revenge.cli import CommandError
from revenge.metrics import Metrics
from revenge.storage import (
    IInitializableStorage,
    IStorage,
    LocalStorage,
    StorageError,
    StoredObject,
)
from revenge.storage._instrumented import InstrumentedStorage
from revenge.storage._s3 import S3Storage
from revenge.testing.storage_contract import expect_failure


def local(root: Path) -> LocalStorage:
    return LocalStorage(str(root), reactor)  # type: ignore[arg-type]


def s3() -> S3Storage:
    # Nothing is sent: building the provider makes no request.
    return S3Storage(
        reactor,
        bucket="media",
        endpoint="http://127.0.0.1:9",
        access_key_id="AKID",
        secret_access_key="secret",
        use_path_style=True,
    )


class Delegating:
    """IStorage by handing every call to a local store: a third party's stand-in."""

    name = "mine"

    def __init__(self, root: Path) -> None:
        self.inner = local(root)

    def store(
        self, key: str, body: BinaryIO, content_type: str, length: int | None = None
    ) -> Deferred[StoredObject]:
        return self.inner.store(key, body, content_type, length)

    def get(self, key: str) -> Deferred[StoredObject]:
        return self.inner.get(key)

    def delete(self, key: str) -> Deferred[None]:
        return self.inner.delete(key)

    def exists(self, key: str) -> Deferred[bool]:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Deferred[list[StoredObject]]:
        return self.inner.list(prefix)

    def check(self) -> Deferred[None]:
        return self.inner.check()


@implementer(IStorage)
class Plain(Delegating):
    """A provider that knows nothing of initializing."""


@implementer(IStorage, IInitializableStorage)
class ThirdParty(Delegating):
    description = "my storage in a test"

    def __init__(self, root: Path, failure: StorageError | None = None) -> None:
        super().__init__(root)
        self.failure = failure
        self.closed = False

    def initialize(self) -> Deferred[str]:
        if self.failure is not None:
            return self.inner.check().addCallback(lambda _: self._fail())
        return self.inner.check().addCallback(lambda _: "made ready")

    def _fail(self) -> str:
        assert self.failure is not None
        raise self.failure

    def describe_error(self, error: StorageError) -> str:
        return f"{error} (in {self.description})"

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


def test_the_built_ins_provide_it(tmp_path: Path) -> None:
    storage = local(tmp_path)
    assert verifyObject(IInitializableStorage, storage)
    assert storage.description == f"local storage at {tmp_path}"
    remote = s3()
    try:
        assert verifyObject(IInitializableStorage, remote)
        assert remote.description == "S3 bucket 'media' at http://127.0.0.1:9"
    finally:
        remote.close()


def test_the_metrics_wrapper_shows_it_only_when_its_provider_does(tmp_path: Path) -> None:
    wrapped = InstrumentedStorage(local(tmp_path), Metrics())
    assert verifyObject(IStorage, wrapped)
    assert verifyObject(IInitializableStorage, wrapped)
    assert wrapped.description == f"local storage at {tmp_path}"
    plain = InstrumentedStorage(Plain(tmp_path), Metrics())
    assert verifyObject(IStorage, plain)
    assert not IInitializableStorage.providedBy(plain)


def test_s3_names_the_bucket_and_endpoint_where_a_message_does_not() -> None:
    remote = s3()
    try:
        bare = remote.describe_error(StorageError("could not store 'k'"))
        assert bare == "could not store 'k' (S3 bucket 'media' at http://127.0.0.1:9)"
        named = "S3 HeadBucket on bucket 'media' at http://127.0.0.1:9 failed: refused"
        assert remote.describe_error(StorageError(named)) == named
    finally:
        remote.close()


@pytest_twisted.ensureDeferred
async def test_local_initialize_makes_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    assert await local(root).initialize() == "ready"
    assert root.is_dir()


async def run_init(monkeypatch: pytest.MonkeyPatch, provider: Any) -> list[str]:
    from revenge.cli import _storage

    monkeypatch.setattr("revenge.providers.create_provider", lambda *args: provider)
    lines: list[str] = []
    config = SimpleNamespace(storage=SimpleNamespace(backend=provider.name))
    await _storage._initialise(reactor, config, lines)  # type: ignore[arg-type]
    return lines


@pytest_twisted.ensureDeferred
async def test_init_uses_any_provider_that_provides_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    provider = ThirdParty(tmp_path / "store")
    assert await run_init(monkeypatch, provider) == [
        "my storage in a test: made ready",
        "my storage in a test: write, read and delete work",
    ]
    assert provider.closed
    assert await provider.list("") == []  # the probe cleaned up after itself


@pytest_twisted.ensureDeferred
async def test_init_shows_a_failure_as_the_provider_describes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    provider = ThirdParty(tmp_path / "store", StorageError("no room"))
    error = await expect_failure(ensureDeferred(run_init(monkeypatch, provider)), CommandError)
    assert str(error) == "storage init failed: no room (in my storage in a test)"
    assert provider.closed


@pytest_twisted.ensureDeferred
async def test_init_checks_a_provider_that_does_not_provide_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    provider = Plain(tmp_path / "store")
    assert await run_init(monkeypatch, provider) == [
        "storage backend 'mine': ready",
        "storage backend 'mine': write, read and delete work",
    ]
    assert (tmp_path / "store").is_dir()
