"""
The ``local`` storage provider: objects as files under one directory.

On-disk layout
--------------

A key ``a/b/c`` is the file ``<root>/a/b/c~obj``: the key's segments become
directories and the last one gets the suffix ``~obj``. ``~`` is outside the key
alphabet, so object files, directories, temporary files (``~tmp-*``) and the
readiness probe (``~probe-*``) can never collide, and the keys ``a`` and
``a/b`` can both exist, as they can in S3.

Each object file starts with a small header and then holds the body's bytes::

    revenge-object/1\\n
    {"content_type": "image/png", "sha256": "<64 hex digits>"}\\n
    <body>

Keeping the metadata inside the data file (rather than in a sidecar) makes an
object one file and its replacement one ``os.replace``: after a crash at any
point a reader finds either the complete old object or the complete new one,
never new metadata over old bytes. The header is written with a placeholder
digest of the same width first and rewritten in place once the body has been
streamed, so nothing is buffered. The ETag is that sha256, the length is the
file size minus the header, and ``last_modified`` is the file's mtime.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from typing import IO, BinaryIO, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from zope.interface import implementer

from revenge.logs._context import run_in_thread
from revenge.storage._file_producer import ThreadedFileProducer
from revenge.storage._interface import (
    IInitializableStorage,
    InvalidKey,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from revenge.storage._keys import (
    MAX_KEY_LENGTH,
    is_key_segment,
    shorten,
    split_key,
    split_prefix,
)

__all__ = [
    "LocalStorage",
    "create_local_storage",
]

_log = Logger()

_CHUNK_SIZE = 64 * 1024
OBJECT_SUFFIX = "~obj"
_TEMP_PREFIX = "~tmp-"
_PROBE_PREFIX = "~probe-"

_MAGIC = b"revenge-object/1\n"
_PLACEHOLDER_DIGEST = "0" * 64
# Bounds what a header read may consume, so a foreign file cannot make us read
# it whole: 1024 characters escaped as \uXXXX fit easily.
_MAX_CONTENT_TYPE = 1024
_MAX_HEADER_LINE = 8 * 1024


def _header(content_type: str, digest: str) -> bytes:
    # ensure_ascii escapes newlines and control characters, keeping the
    # metadata on one line whatever the content type holds.
    meta = json.dumps({"content_type": content_type, "sha256": digest}, ensure_ascii=True)
    return _MAGIC + meta.encode("ascii") + b"\n"


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)


def _read_metadata(key: str, file: IO[bytes]) -> StoredObject:
    """Parse the header of an open object file, leaving it positioned at the body."""
    try:
        if file.readline(len(_MAGIC)) != _MAGIC:
            raise ValueError("not a revenge object file")
        line = file.readline(_MAX_HEADER_LINE)
        if not line.endswith(b"\n"):
            raise ValueError("truncated header")
        meta = json.loads(line)
        content_type = meta["content_type"]
        digest = meta["sha256"]
        if not isinstance(content_type, str) or not isinstance(digest, str):
            raise ValueError("malformed header")
        stat = os.fstat(file.fileno())
        return StoredObject(
            key=key,
            length=stat.st_size - file.tell(),
            content_type=content_type,
            etag=digest,
            last_modified=_mtime(stat),
        )
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise StorageError(f"object {shorten(key)} is unreadable: {error}") from error


def _reading_failed(error: BaseException) -> StorageError:
    return StorageError(f"reading a stored object failed: {error}")


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable. Best effort: some filesystems refuse
    # fsync on a directory, and the object is already in place either way.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        _log.warn("could not remove temporary file {path}: {error}", path=path, error=error)


class _LocalConfig(Protocol):
    """The part of the configuration this provider reads."""

    @property
    def storage(self) -> _StorageSection: ...


class _StorageSection(Protocol):
    @property
    def local(self) -> _LocalSection: ...


class _LocalSection(Protocol):
    @property
    def path(self) -> str: ...


@implementer(IStorage, IInitializableStorage)
class LocalStorage:
    """
    Objects as files under ``root`` (see the module docstring for the layout).

    All filesystem work runs in the reactor's thread pool. The root is created
    on the first ``store`` or ``check``. Keys are validated on the reactor
    thread before any I/O; failures of every method come as a failed Deferred.
    """

    name = "local"

    def __init__(self, root: str, reactor: IReactorThreads) -> None:
        # Absolute now, so that a later chdir (twistd may change directory)
        # does not move the store.
        self.root = os.path.abspath(root)
        self._reactor = reactor

    # Paths -----------------------------------------------------------------

    def _path(self, segments: builtins.list[str]) -> str:
        return os.path.join(self.root, *segments[:-1], segments[-1] + OBJECT_SUFFIX)

    def _confine(self, key: str, path: str) -> None:
        """
        Refuse a path that resolves outside the root, e.g. through a symlink
        someone placed inside it. Key validation already rules out ``..``; this
        is the second line of defence, and it touches the disk (thread only).
        """
        real_root = os.path.realpath(self.root)
        real_path = os.path.realpath(path)
        if real_path == real_root or os.path.commonpath([real_root, real_path]) != real_root:
            raise InvalidKey(f"key {shorten(key)} resolves outside the storage root")

    # IStorage --------------------------------------------------------------

    def store(
        self, key: str, body: BinaryIO, content_type: str, length: int | None = None
    ) -> Deferred[StoredObject]:
        try:
            segments = split_key(key)
            if not isinstance(content_type, str) or len(content_type) > _MAX_CONTENT_TYPE:
                raise StorageError(
                    f"a content type must be a string of at most {_MAX_CONTENT_TYPE} characters"
                )
        except StorageError:
            return fail()
        return run_in_thread(
            self._reactor, self._store, key, segments, body, content_type, length
        )

    def get(self, key: str) -> Deferred[StoredObject]:
        try:
            segments = split_key(key)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._open, key, segments).addCallback(
            self._with_body
        )

    def delete(self, key: str) -> Deferred[None]:
        try:
            segments = split_key(key)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._delete, key, segments)

    def exists(self, key: str) -> Deferred[bool]:
        try:
            segments = split_key(key)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._exists, key, segments)

    def list(self, prefix: str) -> Deferred[builtins.list[StoredObject]]:
        try:
            directories, _ = split_prefix(prefix)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._list, prefix, directories)

    def check(self) -> Deferred[None]:
        return run_in_thread(self._reactor, self._check)

    # IInitializableStorage -----------------------------------------------------

    @property
    def description(self) -> str:
        return f"local storage at {self.root}"

    def initialize(self) -> Deferred[str]:
        # check() creates the root and proves it writable: all there is to do.
        return self.check().addCallback(lambda _: "ready")

    def describe_error(self, error: StorageError) -> str:
        # The root's messages name the root, the others the key concerned;
        # shown as they are, as revenge storage init always has.
        return str(error)

    def close(self) -> Deferred[None]:
        return succeed(None)  # nothing is held between calls

    # Blocking halves (worker threads only) ------------------------------------

    def _make_temp(self, directory: str) -> tuple[int, str]:
        # A concurrent delete may prune the directory between makedirs and
        # mkstemp; once the temp file exists the directory is not empty and
        # pruning leaves it alone, so a couple of attempts always suffice.
        for attempt in range(3):
            os.makedirs(directory, exist_ok=True)
            try:
                return tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _store(
        self,
        key: str,
        segments: builtins.list[str],
        body: BinaryIO,
        content_type: str,
        length: int | None,
    ) -> StoredObject:
        path = self._path(segments)
        self._confine(key, path)
        directory = os.path.dirname(path)
        try:
            fd, temp = self._make_temp(directory)
        except OSError as error:
            raise StorageError(f"could not store {shorten(key)}: {error}") from error

        # Set while body.read runs: the body's own errors (a client that went
        # away, an upload cap) reach the caller unchanged, ours become StorageError.
        in_body = False
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_header(content_type, _PLACEHOLDER_DIGEST))
                digest = hashlib.sha256()
                size = 0
                while True:
                    in_body = True
                    chunk = body.read(_CHUNK_SIZE)
                    in_body = False
                    if not chunk:
                        break
                    size += len(chunk)
                    if length is not None and size > length:
                        # Stop reading at once: the body may be endless.
                        raise StorageError(
                            f"body of {shorten(key)} is longer than the declared {length} bytes"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                if length is not None and size != length:
                    raise StorageError(
                        f"body of {shorten(key)} has {size} bytes, not the declared {length}"
                    )
                etag = digest.hexdigest()
                # Same width as the placeholder, so this overwrites it exactly.
                out.seek(0)
                out.write(_header(content_type, etag))
                out.flush()
                os.fsync(out.fileno())
                stat = os.fstat(out.fileno())
            os.replace(temp, path)
        except BaseException as error:
            _discard(temp)
            if isinstance(error, OSError) and not in_body:
                raise StorageError(f"could not store {shorten(key)}: {error}") from error
            raise
        _fsync_directory(directory)
        return StoredObject(
            key=key,
            length=size,
            content_type=content_type,
            etag=etag,
            last_modified=_mtime(stat),
        )

    def _open(self, key: str, segments: builtins.list[str]) -> tuple[IO[bytes], StoredObject]:
        path = self._path(segments)
        self._confine(key, path)
        try:
            file = open(path, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as error:
            raise StorageError(f"could not open {shorten(key)}: {error}") from error
        try:
            return file, _read_metadata(key, file)
        except BaseException:
            file.close()
            raise

    def _with_body(self, opened: tuple[IO[bytes], StoredObject]) -> StoredObject:
        # Runs on the reactor thread, where the producer must be created.
        # Until a consumer starts (or stops) the producer, the file stays open.
        file, meta = opened
        producer = ThreadedFileProducer(
            self._reactor,
            file,
            meta.length,
            chunk_size=_CHUNK_SIZE,
            owns_file=True,
            wrap_error=_reading_failed,
        )
        return StoredObject(
            key=meta.key,
            length=meta.length,
            content_type=meta.content_type,
            etag=meta.etag,
            last_modified=meta.last_modified,
            body=producer,
        )

    def _delete(self, key: str, segments: builtins.list[str]) -> None:
        path = self._path(segments)
        self._confine(key, path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise StorageError(f"could not delete {shorten(key)}: {error}") from error
        # Prune directories left empty, deepest first, never the root itself;
        # rmdir refuses a non-empty directory, which ends the walk.
        for depth in range(len(segments) - 1, 0, -1):
            try:
                os.rmdir(os.path.join(self.root, *segments[:depth]))
            except OSError:
                break

    def _exists(self, key: str, segments: builtins.list[str]) -> bool:
        path = self._path(segments)
        self._confine(key, path)
        return os.path.isfile(path)

    def _list(self, prefix: str, directories: builtins.list[str]) -> builtins.list[StoredObject]:
        # Walk only below the deepest directory the prefix names completely.
        start = os.path.join(self.root, *directories)
        if directories:
            self._confine(prefix, start)
        if not os.path.isdir(start):
            return []
        found: builtins.list[StoredObject] = []
        for dirpath, dirnames, filenames in os.walk(start):
            relative = os.path.relpath(dirpath, self.root)
            base = "" if relative == "." else relative.replace(os.sep, "/") + "/"
            # os.walk does not descend into symlinked directories; also skip
            # what no key can name and subtrees the prefix rules out.
            dirnames[:] = [
                name
                for name in dirnames
                if is_key_segment(name)
                and (
                    (base + name + "/").startswith(prefix)
                    or prefix.startswith(base + name + "/")
                )
            ]
            for filename in filenames:
                if not filename.endswith(OBJECT_SUFFIX):
                    continue  # temporary files, probes, strangers
                segment = filename[: -len(OBJECT_SUFFIX)]
                key = base + segment
                if (
                    not key.startswith(prefix)
                    or not is_key_segment(segment)
                    or len(key) > MAX_KEY_LENGTH
                ):
                    continue
                path = os.path.join(dirpath, filename)
                if os.path.islink(path):
                    continue  # a link could point anywhere; objects are never links
                try:
                    with open(path, "rb") as file:
                        found.append(_read_metadata(key, file))
                except FileNotFoundError:
                    continue  # deleted while we walked
                except (OSError, StorageError) as error:
                    _log.warn("skipping unreadable object {key}: {error}", key=key, error=error)
        found.sort(key=lambda stored: stored.key)
        return found

    def _check(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            if not os.path.isdir(self.root):
                raise NotADirectoryError("not a directory")
            fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=self.root)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as error:
            reason = error.strerror or str(error)
            raise StorageError(
                f"local storage root {self.root!r} is not a writable directory: {reason}"
            ) from error


def create_local_storage(config: _LocalConfig, reactor: IReactorThreads) -> LocalStorage:
    """Entry point ``revenge.storage: local``: storage under ``storage.local.path``."""
    return LocalStorage(config.storage.local.path, reactor)
