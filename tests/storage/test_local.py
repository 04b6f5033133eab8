"""The ``local`` provider: the IStorage contract, plus what only files can show."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred

from revenge.providers import STORAGE_GROUP, create_provider
from revenge.storage import (
    InvalidKey,
    IStorage,
    LocalStorage,
    ObjectNotFound,
    StorageError,
    validate_key,
)
from revenge.testing import eventually
from revenge.testing.storage_contract import (
    INVALID_KEYS,
    Boom,
    Collector,
    FailingBody,
    PausingCollector,
    StorageContract,
    expect_failure,
    pattern,
    read_body,
    store_bytes,
)


def make_storage(root: Path) -> LocalStorage:
    return LocalStorage(str(root), reactor)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


class TestLocalStorageContract(StorageContract):
    @pytest.fixture
    def storage(self, root: Path) -> IStorage:
        return make_storage(root)

    @pytest.fixture
    def broken_storage(self, tmp_path: Path) -> IStorage:
        # The root is a file: nothing can ever be stored below it.
        path = tmp_path / "a-file"
        path.write_bytes(b"not a directory")
        return make_storage(path)


def snapshot(base: Path) -> dict[str, bytes | None]:
    """Every path below ``base`` with its contents (None for directories and links)."""
    return {
        path.relative_to(base).as_posix(): (
            path.read_bytes() if path.is_file() and not path.is_symlink() else None
        )
        for path in base.rglob("*")
    }


def files_below(base: Path) -> set[str]:
    return {name for name, content in snapshot(base).items() if content is not None}


@pytest_twisted.ensureDeferred
async def test_etag_is_the_sha256_of_the_body(root: Path) -> None:
    storage = make_storage(root)
    data = pattern(300_000)
    stored = await store_bytes(storage, "k", data)
    assert stored.etag == hashlib.sha256(data).hexdigest()
    assert (await storage.get("k")).etag == stored.etag


@pytest_twisted.ensureDeferred
async def test_one_file_per_object_with_the_metadata_in_its_header(root: Path) -> None:
    storage = make_storage(root)
    stored = await store_bytes(storage, "a/b.png", b"PNG bytes", "image/png")
    # No sidecar, no leftovers: one file, and the key's directory.
    assert snapshot(root).keys() == {"a", "a/b.png~obj"}
    raw = (root / "a" / "b.png~obj").read_bytes()
    magic, meta, body = raw.split(b"\n", 2)
    assert magic == b"revenge-object/1"
    assert json.loads(meta) == {"content_type": "image/png", "sha256": stored.etag}
    assert body == b"PNG bytes"
    assert stored.last_modified == datetime.fromtimestamp(
        os.stat(root / "a" / "b.png~obj").st_mtime, tz=timezone.utc
    )


@pytest.mark.parametrize("key", INVALID_KEYS)
@pytest_twisted.ensureDeferred
async def test_invalid_keys_write_nothing_anywhere(tmp_path: Path, root: Path, key: Any) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "existing", b"x")
    before = snapshot(tmp_path)
    await expect_failure(storage.store(key, io.BytesIO(b"data"), "text/plain"), InvalidKey)
    await expect_failure(storage.delete(key), InvalidKey)
    await expect_failure(storage.get(key), InvalidKey)
    await expect_failure(storage.exists(key), InvalidKey)
    assert snapshot(tmp_path) == before


@pytest_twisted.ensureDeferred
async def test_failed_stores_leave_no_temporary_files(root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "d/obj", b"original")
    data = pattern(200_000)
    for key in ("d/obj", "d/new", "elsewhere/new"):
        await expect_failure(storage.store(key, FailingBody(data, Boom()), "x/y"), Boom)
        await expect_failure(storage.store(key, io.BytesIO(data), "x/y", 10), StorageError)
        await expect_failure(
            storage.store(key, io.BytesIO(data), "x/y", len(data) + 1), StorageError
        )
    assert files_below(root) == {"d/obj~obj"}


@pytest_twisted.ensureDeferred
async def test_the_body_is_read_off_the_reactor_thread(root: Path) -> None:
    threads: list[threading.Thread] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            threads.append(threading.current_thread())
            return super().read(size)

    await make_storage(root).store("k", Recording(b"abc"), "text/plain")
    assert threads and threading.main_thread() not in threads


@pytest_twisted.ensureDeferred
async def test_a_symlinked_directory_cannot_lead_outside(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "link").symlink_to(outside)
    storage = make_storage(root)
    await expect_failure(storage.store("link/x", io.BytesIO(b"data"), "text/plain"), InvalidKey)
    await expect_failure(storage.get("link/x"), InvalidKey)
    await expect_failure(storage.exists("link/x"), InvalidKey)
    await expect_failure(storage.delete("link/x"), InvalidKey)
    await expect_failure(storage.list("link/"), InvalidKey)
    assert await storage.list("") == []
    assert list(outside.iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_a_symlinked_object_file_is_refused(tmp_path: Path, root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "real", b"inside")
    stranger = tmp_path / "outside~obj"
    stranger.write_bytes((root / "real~obj").read_bytes())
    (root / "evil~obj").symlink_to(stranger)
    await expect_failure(storage.get("evil"), InvalidKey)
    await expect_failure(storage.exists("evil"), InvalidKey)
    await expect_failure(storage.delete("evil"), InvalidKey)
    assert [item.key for item in await storage.list("")] == ["real"]
    assert stranger.exists()


@pytest_twisted.ensureDeferred
async def test_list_ignores_what_is_not_an_object(root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "good", b"x")
    (root / "~tmp-abandoned").write_bytes(b"half an upload")
    (root / "plain").write_bytes(b"no suffix")
    (root / "dir").mkdir()
    (root / "dir" / "notes.json").write_bytes(b"{}")
    (root / "bad name~obj").write_bytes((root / "good~obj").read_bytes())
    (root / "corrupt~obj").write_bytes(b"garbage")
    assert [item.key for item in await storage.list("")] == ["good"]
    # An unreadable object is a storage fault, not a missing object.
    error = await expect_failure(storage.get("corrupt"), StorageError)
    assert not isinstance(error, ObjectNotFound)


@pytest_twisted.ensureDeferred
async def test_delete_prunes_empty_directories_but_never_the_root(root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "a/b/c", b"1")
    await store_bytes(storage, "a/keep", b"2")
    await storage.delete("a/b/c")
    assert snapshot(root).keys() == {"a", "a/keep~obj"}
    await storage.delete("a/keep")
    assert root.is_dir() and list(root.iterdir()) == []
    await storage.delete("top")
    assert root.is_dir()


@pytest_twisted.ensureDeferred
async def test_the_root_is_created_on_demand(tmp_path: Path) -> None:
    checked = tmp_path / "deep" / "checked"
    await make_storage(checked).check()
    # The readiness probe leaves nothing behind.
    assert checked.is_dir() and list(checked.iterdir()) == []
    stored_into = tmp_path / "other" / "root"
    await store_bytes(make_storage(stored_into), "k", b"x")
    assert (stored_into / "k~obj").is_file()


@pytest_twisted.ensureDeferred
async def test_check_failure_names_the_root(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_bytes(b"x")
    error = await expect_failure(make_storage(path).check(), StorageError)
    assert str(path) in str(error)


@pytest_twisted.ensureDeferred
async def test_an_open_reader_keeps_the_old_bytes_after_an_overwrite(root: Path) -> None:
    storage = make_storage(root)
    old = pattern(500_000, seed=1)
    await store_bytes(storage, "k", old)
    reader = await storage.get("k")
    await store_bytes(storage, "k", b"new")
    assert await read_body(reader) == old
    assert await read_body(await storage.get("k")) == b"new"


@pytest_twisted.ensureDeferred
async def test_nothing_is_written_while_paused(root: Path) -> None:
    storage = make_storage(root)
    data = pattern(1024 * 1024)
    await store_bytes(storage, "k", data)
    fetched = await storage.get("k")
    assert fetched.body is not None
    collector = PausingCollector(fetched.body)
    await fetched.body.startProducing(collector)
    assert collector.data == data
    assert collector.writes_while_paused == 0
    assert max(len(chunk) for chunk in collector.chunks) <= 64 * 1024


@pytest_twisted.ensureDeferred
async def test_stop_producing_closes_the_file_and_never_fires(root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "k", pattern(1024 * 1024))
    fetched = await storage.get("k")
    producer = fetched.body
    assert producer is not None
    first_write: Deferred[None] = Deferred()

    class StopAfterOne(Collector):
        def write(self, data: bytes) -> None:
            super().write(data)
            assert producer is not None
            producer.stopProducing()
            if not first_write.called:
                first_write.callback(None)

    collector = StopAfterOne()
    done = producer.startProducing(collector)
    await first_write
    file = producer._file  # type: ignore[attr-defined]
    await eventually(lambda: bool(file.closed), "the file to be closed", interval=0.001)
    assert not done.called
    assert len(collector.chunks) == 1


@pytest_twisted.ensureDeferred
async def test_cancelling_stops_production(root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "k", pattern(1024 * 1024))
    fetched = await storage.get("k")
    assert fetched.body is not None
    done = fetched.body.startProducing(Collector())
    done.cancel()
    await expect_failure(done, CancelledError)
    file = fetched.body._file  # type: ignore[attr-defined]
    await eventually(lambda: bool(file.closed), "the file to be closed", interval=0.001)


@pytest_twisted.ensureDeferred
async def test_the_file_is_closed_after_a_full_read(root: Path) -> None:
    storage = make_storage(root)
    await store_bytes(storage, "k", b"abc")
    fetched = await storage.get("k")
    assert await read_body(fetched) == b"abc"
    assert fetched.body._file.closed  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_content_type_is_kept_verbatim(root: Path) -> None:
    storage = make_storage(root)
    odd = 'text/plain; charset="utf-8"\n\tx=\u00e9'
    await store_bytes(storage, "k", b"x", odd)
    assert (await storage.get("k")).content_type == odd
    assert [item.content_type for item in await storage.list("")] == [odd]


@pytest_twisted.ensureDeferred
async def test_an_overlong_content_type_is_refused(tmp_path: Path, root: Path) -> None:
    storage = make_storage(root)
    before = snapshot(tmp_path)
    await expect_failure(storage.store("k", io.BytesIO(b"x"), "x" * 1025), StorageError)
    assert snapshot(tmp_path) == before


@pytest_twisted.ensureDeferred
async def test_the_longest_key(root: Path) -> None:
    storage = make_storage(root)
    key = "/".join(["s" * 200] * 5) + "/" + "t" * 19
    assert len(key) == 1024
    await store_bytes(storage, key, b"deep")
    assert await read_body(await storage.get(key)) == b"deep"
    assert [item.key for item in await storage.list("s")] == [key]


def test_factory_through_the_entry_point(tmp_path: Path) -> None:
    config = SimpleNamespace(
        storage=SimpleNamespace(local=SimpleNamespace(path=str(tmp_path / "store")))
    )
    provider = create_provider(STORAGE_GROUP, "local", IStorage, config, reactor)  # type: ignore[arg-type]
    assert isinstance(provider, LocalStorage)
    assert provider.name == "local"
    assert provider.root == str(tmp_path / "store")


def test_a_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert make_storage(Path("data/storage")).root == str(tmp_path / "data" / "storage")


@pytest.mark.parametrize("key", ["a", "a/b", "users/ann/avatar-1.png", ".hidden", "a/..b", "_-."])
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_validate_key_refuses(key: Any) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_invalid_key_is_both_a_storage_error_and_a_value_error() -> None:
    assert issubclass(InvalidKey, StorageError)
    assert issubclass(InvalidKey, ValueError)
