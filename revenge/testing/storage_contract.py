"""
The ``IStorage`` contract kit: the tests every storage provider passes, the
built-ins (``local``, ``s3``) and third-party ones alike.

Use it from a provider's own test suite (pytest with pytest-twisted, both in
Revenge's ``test`` extra)::

    import pytest
    from revenge.storage import IStorage
    from revenge.testing.storage_contract import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self, tmp_path) -> IStorage:
            return MyStorage(...)          # a fresh, empty store for every test

        @pytest.fixture
        def broken_storage(self) -> IStorage:
            return MyStorage(...)          # optional: one whose check() must fail

Fixtures may also be ``async`` (``pytest_twisted.async_yield_fixture``) to
close the store after the test. Without ``broken_storage`` that one test is
skipped. Only public behaviour is tested (streaming bodies, atomic
overwrites, key validation, listing, ``check()``); layout details belong to
each provider's own tests, which may reuse the helpers below (``pattern``,
``read_body``, ``store_bytes``, ``expect_failure``, ``Collector`` ...).

This module imports pytest: import it from tests only, never from code the
server runs (``import revenge.testing`` alone does not import it).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from revenge.storage import (
    MAX_KEY_LENGTH,
    InvalidKey,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from revenge.testing._pytest_twisted import twisted_test

__all__ = [
    "BIG",
    "INVALID_KEYS",
    "INVALID_PREFIXES",
    "Boom",
    "Collector",
    "FailingBody",
    "GatedBody",
    "PausingCollector",
    "StorageContract",
    "all_keys",
    "expect_failure",
    "pattern",
    "read_body",
    "same_metadata",
    "store_bytes",
]

# Large enough for many chunks, and not a multiple of any plausible chunk size.
BIG = 5 * 1024 * 1024 + 12345

INVALID_KEYS = [
    pytest.param("../x", id="dotdot-first"),
    pytest.param("a/../b", id="dotdot-inner"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("a/./b", id="dot-inner"),
    pytest.param("/abs", id="absolute"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param("a/", id="trailing-slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("", id="empty"),
    pytest.param("a" * (MAX_KEY_LENGTH + 1), id="too-long"),
    pytest.param("a b", id="space"),
    pytest.param("caf\u00e9", id="non-ascii"),
    pytest.param(b"bytes", id="not-a-string"),
]

INVALID_PREFIXES = [
    pytest.param("../", id="dotdot"),
    pytest.param("..", id="dotdot-partial"),
    pytest.param("a/../", id="dotdot-inner"),
    pytest.param("./", id="dot"),
    pytest.param("/abs", id="absolute"),
    pytest.param("a//", id="empty-segment"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a\x00", id="nul"),
    pytest.param("a" * (MAX_KEY_LENGTH + 1), id="too-long"),
]


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes in which every 64 KiB block differs from its neighbours."""
    block = bytes((i * 7 + seed) % 251 for i in range(65521))
    repeats = size // len(block) + 1
    return (block * repeats)[:size]


@implementer(IConsumer)
class Collector:
    """Gathers what a body producer writes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class PausingCollector(Collector):
    """Pauses the producer after every write and resumes it on the next turn."""

    def __init__(self, producer: IBodyProducer) -> None:
        super().__init__()
        self.producer = producer
        self.paused = False
        self.writes_while_paused = 0
        self.pauses = 0

    def write(self, data: bytes) -> None:
        if self.paused:
            self.writes_while_paused += 1
        super().write(data)
        if not self.paused:
            self.paused = True
            self.pauses += 1
            self.producer.pauseProducing()
            reactor.callLater(0, self._resume)

    def _resume(self) -> None:
        self.paused = False
        self.producer.resumeProducing()


async def read_body(stored: StoredObject) -> bytes:
    assert stored.body is not None
    collector = Collector()
    await stored.body.startProducing(collector)
    return collector.data


class Boom(Exception):
    """Raised by a test body; must reach the caller unchanged."""


class FailingBody(io.BytesIO):
    """Yields some bytes, then fails as a dropped upload would."""

    def __init__(self, data: bytes, error: BaseException) -> None:
        super().__init__(data)
        self.error = error
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise self.error
        return super().read(size if size is None or size < 0 else min(size, 1000))


class GatedBody(io.BytesIO):
    """
    Hands out its first chunk, tells the reactor (``started``), then blocks its
    reading thread until ``release`` is set, so a test can look at the store
    while an overwrite is half done.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.started: Deferred[None] = Deferred()
        self.release = threading.Event()
        self._first = True

    def read(self, size: int | None = -1) -> bytes:
        if self._first:
            self._first = False
            reactor.callFromThread(self.started.callback, None)  # type: ignore[attr-defined]
            return super().read(1000)
        # A bound, so a broken provider fails the test instead of hanging it.
        if not self.release.wait(timeout=30):
            raise Boom("the test never released the body")
        return super().read(size)


async def store_bytes(
    storage: IStorage, key: str, data: bytes, content_type: str = "application/octet-stream"
) -> StoredObject:
    stored: StoredObject = await storage.store(key, io.BytesIO(data), content_type, len(data))
    return stored


def same_metadata(a: StoredObject, b: StoredObject) -> bool:
    return (a.key, a.length, a.content_type, a.etag) == (b.key, b.length, b.content_type, b.etag)


async def all_keys(storage: IStorage) -> list[str]:
    return [stored.key for stored in await storage.list("")]


async def expect_failure(d: Deferred[Any], error_type: type[BaseException]) -> BaseException:
    with pytest.raises(error_type) as raised:
        await d
    return raised.value


class StorageContract:
    """Every IStorage provider passes these; subclass and provide the fixtures."""

    @pytest.fixture
    def storage(self) -> IStorage:
        raise NotImplementedError("a provider's test class overrides the storage fixture")

    @pytest.fixture
    def broken_storage(self) -> IStorage:
        pytest.skip("this provider's tests cannot break the backend on purpose")

    def test_provides_interface(self, storage: IStorage) -> None:
        assert verifyObject(IStorage, storage)
        assert isinstance(storage.name, str) and storage.name

    @twisted_test
    async def test_round_trip_streams_a_large_body(self, storage: IStorage) -> None:
        data = pattern(BIG)
        stored = await storage.store("media/big.bin", io.BytesIO(data), "video/mp4", len(data))
        assert stored.key == "media/big.bin"
        assert stored.length == len(data)
        assert stored.content_type == "video/mp4"
        assert isinstance(stored.etag, str) and stored.etag
        assert stored.last_modified.utcoffset() == timedelta(0)
        assert stored.body is None

        fetched = await storage.get("media/big.bin")
        assert same_metadata(fetched, stored)
        assert fetched.last_modified == stored.last_modified
        assert fetched.body is not None
        assert fetched.body.length == len(data)
        collector = Collector()
        await fetched.body.startProducing(collector)
        assert collector.data == data
        # Streamed in pieces, not handed over whole.
        assert len(collector.chunks) > 1

    @twisted_test
    async def test_store_without_declared_length(self, storage: IStorage) -> None:
        data = pattern(200_000, seed=3)
        stored = await storage.store("k", io.BytesIO(data), "text/plain")
        assert stored.length == len(data)
        assert await read_body(await storage.get("k")) == data

    @twisted_test
    async def test_empty_object(self, storage: IStorage) -> None:
        stored = await store_bytes(storage, "empty", b"", "text/plain")
        assert stored.length == 0
        fetched = await storage.get("empty")
        assert fetched.length == 0
        assert await read_body(fetched) == b""

    @twisted_test
    async def test_body_pauses_and_resumes(self, storage: IStorage) -> None:
        data = pattern(1024 * 1024, seed=5)
        await store_bytes(storage, "paused", data)
        fetched = await storage.get("paused")
        assert fetched.body is not None
        collector = PausingCollector(fetched.body)
        await fetched.body.startProducing(collector)
        assert collector.data == data
        assert collector.pauses > 1

    @twisted_test
    async def test_overwrite_replaces_data_and_metadata(self, storage: IStorage) -> None:
        first = await store_bytes(storage, "doc", b"first version", "text/plain")
        second = await store_bytes(storage, "doc", b"second, longer version", "image/png")
        assert first.etag != second.etag
        fetched = await storage.get("doc")
        assert same_metadata(fetched, second)
        assert await read_body(fetched) == b"second, longer version"
        listed = await storage.list("")
        assert len(listed) == 1 and same_metadata(listed[0], second)

    @twisted_test
    async def test_readers_see_the_old_object_during_an_overwrite(
        self, storage: IStorage
    ) -> None:
        old = pattern(300_000, seed=1)
        new = pattern(400_000, seed=2)
        first = await store_bytes(storage, "swap/me", old, "text/plain")
        body = GatedBody(new)
        storing = storage.store("swap/me", body, "image/png", len(new))
        try:
            await body.started
            # Half of the new object has been read; readers still see the old one.
            during = await storage.get("swap/me")
            assert same_metadata(during, first)
            assert await read_body(during) == old
            assert await storage.exists("swap/me")
            listed = await storage.list("swap/")
            assert [same_metadata(item, first) for item in listed] == [True]
        finally:
            body.release.set()
        second = await storing
        after = await storage.get("swap/me")
        assert same_metadata(after, second)
        assert await read_body(after) == new

    @pytest.mark.parametrize("delta", [-1, 1], ids=["shorter", "longer"])
    @twisted_test
    async def test_length_mismatch_stores_nothing(self, storage: IStorage, delta: int) -> None:
        first = await store_bytes(storage, "avatar", b"the original", "image/gif")
        data = pattern(150_000, seed=4)
        await expect_failure(
            storage.store("avatar", io.BytesIO(data), "image/png", len(data) + delta),
            StorageError,
        )
        await expect_failure(
            storage.store("fresh", io.BytesIO(data), "image/png", len(data) + delta),
            StorageError,
        )
        fetched = await storage.get("avatar")
        assert same_metadata(fetched, first)
        assert await read_body(fetched) == b"the original"
        assert not await storage.exists("fresh")
        assert await all_keys(storage) == ["avatar"]

    @twisted_test
    async def test_body_failing_mid_read_stores_nothing(self, storage: IStorage) -> None:
        first = await store_bytes(storage, "avatar", b"the original", "image/gif")
        error = Boom("client went away")
        raised = await expect_failure(
            storage.store("avatar", FailingBody(pattern(5000), error), "image/png"), Boom
        )
        # The body's own exception reaches the caller unchanged (e.g. an
        # upload cap the web layer turns into 413).
        assert raised is error
        await expect_failure(
            storage.store("fresh", FailingBody(pattern(5000), Boom()), "image/png"), Boom
        )
        fetched = await storage.get("avatar")
        assert same_metadata(fetched, first)
        assert await read_body(fetched) == b"the original"
        assert not await storage.exists("fresh")
        assert await all_keys(storage) == ["avatar"]

    @twisted_test
    async def test_get_missing_object(self, storage: IStorage) -> None:
        error = await expect_failure(storage.get("no/such/object"), ObjectNotFound)
        assert isinstance(error, ObjectNotFound) and error.key == "no/such/object"

    @twisted_test
    async def test_delete_is_idempotent(self, storage: IStorage) -> None:
        await storage.delete("never/stored")
        await store_bytes(storage, "users/ann/avatar", b"x")
        await store_bytes(storage, "users/bob/avatar", b"y")
        await storage.delete("users/ann/avatar")
        assert not await storage.exists("users/ann/avatar")
        await expect_failure(storage.get("users/ann/avatar"), ObjectNotFound)
        await storage.delete("users/ann/avatar")
        assert await all_keys(storage) == ["users/bob/avatar"]

    @twisted_test
    async def test_exists(self, storage: IStorage) -> None:
        assert not await storage.exists("a/b")
        await store_bytes(storage, "a/b", b"x")
        assert await storage.exists("a/b")
        # A key's "directories" are not objects.
        assert not await storage.exists("a")

    @twisted_test
    async def test_a_key_and_keys_below_it_coexist(self, storage: IStorage) -> None:
        await store_bytes(storage, "a", b"parent")
        await store_bytes(storage, "a/b", b"child")
        assert await read_body(await storage.get("a")) == b"parent"
        assert await read_body(await storage.get("a/b")) == b"child"
        await storage.delete("a")
        assert await all_keys(storage) == ["a/b"]

    @twisted_test
    async def test_list_by_prefix(self, storage: IStorage) -> None:
        keys = [
            "avatars/bob",
            "avatars/alice",
            "avatars/al-x",
            "avatars/sub/deep.png",
            "avatarsX",
            "other/thing",
        ]
        stored = {}
        for number, key in enumerate(keys):
            stored[key] = await store_bytes(
                storage, key, pattern(100 + number, seed=number), f"image/x-{number}"
            )

        listed = await storage.list("avatars/")
        assert [item.key for item in listed] == [
            "avatars/al-x",
            "avatars/alice",
            "avatars/bob",
            "avatars/sub/deep.png",
        ]
        for item in listed:
            assert same_metadata(item, stored[item.key])
            assert item.body is None
            assert item.last_modified.utcoffset() == timedelta(0)

        # A prefix may end in the middle of a segment.
        assert [item.key for item in await storage.list("avatars/al")] == [
            "avatars/al-x",
            "avatars/alice",
        ]
        assert [item.key for item in await storage.list("avatars")] == [
            "avatars/al-x",
            "avatars/alice",
            "avatars/bob",
            "avatars/sub/deep.png",
            "avatarsX",
        ]
        assert await all_keys(storage) == sorted(keys)
        assert await storage.list("nothing/") == []
        assert await storage.list("avatars/bob/") == []

    @pytest.mark.parametrize("key", INVALID_KEYS)
    @twisted_test
    async def test_invalid_keys_are_refused(self, storage: IStorage, key: Any) -> None:
        operations: list[Callable[[], Deferred[Any]]] = [
            lambda: storage.store(key, io.BytesIO(b"data"), "text/plain", 4),
            lambda: storage.store(key, io.BytesIO(b"data"), "text/plain"),
            lambda: storage.get(key),
            lambda: storage.delete(key),
            lambda: storage.exists(key),
        ]
        for operation in operations:
            # Always as a failed Deferred, never raised synchronously.
            d = operation()
            assert isinstance(d, Deferred)
            await expect_failure(d, InvalidKey)
        assert await all_keys(storage) == []

    @pytest.mark.parametrize("prefix", INVALID_PREFIXES)
    @twisted_test
    async def test_invalid_prefixes_are_refused(self, storage: IStorage, prefix: str) -> None:
        await store_bytes(storage, "x", b"x")
        await expect_failure(storage.list(prefix), InvalidKey)

    @twisted_test
    async def test_check_succeeds(self, storage: IStorage) -> None:
        await storage.check()

    @twisted_test
    async def test_check_fails_when_the_backend_is_unusable(
        self, broken_storage: IStorage
    ) -> None:
        await expect_failure(broken_storage.check(), StorageError)
