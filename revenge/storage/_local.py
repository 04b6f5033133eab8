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
import re
import tempfile
from datetime import datetime, timezone
from typing import IO, BinaryIO, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IConsumer, IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from revenge.logs._context import run_in_thread
from revenge.storage._interface import (
    InvalidKey,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)

__all__ = [
    "LocalStorage",
    "create_local_storage",
    "validate_key",
    "validate_prefix",
    "MAX_KEY_LENGTH",
]

_log = Logger()

MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Characters a list prefix may hold: a key's, as the last segment may be partial.
_PREFIX_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]*")

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


def _shorten(value: str) -> str:
    # Error messages quote keys, which may be 1024 characters of garbage.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _split_key(key: object) -> builtins.list[str]:
    if not isinstance(key, str):
        raise InvalidKey(f"a key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidKey("a key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a key must be at most {MAX_KEY_LENGTH} characters long")
    segments = key.split("/")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise InvalidKey(
                f"invalid key {_shorten(key)}: keys are relative paths of "
                "[A-Za-z0-9._-] segments separated by '/', without '.' or '..'"
            )
    return segments


def validate_key(key: object) -> str:
    """
    Return ``key`` if it is a usable storage key, else raise ``InvalidKey``.

    A key is a relative path of ``[A-Za-z0-9._-]+`` segments joined by ``/``,
    with no empty, ``.`` or ``..`` segment, at most 1024 characters long. Every
    provider accepts these, so callers may check keys before any I/O.
    """
    _split_key(key)
    assert isinstance(key, str)
    return key


def _split_prefix(prefix: object) -> tuple[builtins.list[str], str]:
    """The complete directory segments of a list prefix and its partial tail."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"a prefix must be a string, not {type(prefix).__name__}")
    if len(prefix) > MAX_KEY_LENGTH or not _PREFIX_CHARACTERS.fullmatch(prefix):
        raise InvalidKey(f"invalid prefix {_shorten(prefix)}")
    *directories, partial = prefix.split("/")
    # A partial last segment is only matched as text, yet "." and ".." are
    # refused there too: no prefix should even look like a way out.
    if partial in (".", "..") or any(s in ("", ".", "..") for s in directories):
        raise InvalidKey(f"invalid prefix {_shorten(prefix)}")
    return directories, partial


def validate_prefix(prefix: object) -> str:
    """
    Return ``prefix`` if ``list`` accepts it, else raise ``InvalidKey``: the
    start of a key (its last segment may be partial), never a way out.
    """
    _split_prefix(prefix)
    assert isinstance(prefix, str)
    return prefix


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
        raise StorageError(f"object {_shorten(key)} is unreadable: {error}") from error


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


def _read_chunk(file: IO[bytes]) -> bytes:
    chunk = file.read(_CHUNK_SIZE)
    if not chunk:
        # Closing here, in the worker thread, keeps that call off the reactor too.
        file.close()
    return chunk


@implementer(IBodyProducer)
class _FileProducer:
    """
    Streams an open file to a consumer, reading each chunk in the thread pool
    (a disk or network volume may block) and writing it on the reactor thread.
    At most one read is in flight, so pause takes effect after that chunk.
    """

    def __init__(self, reactor: IReactorThreads, file: IO[bytes], length: int) -> None:
        self.length = length
        self._reactor = reactor
        self._file = file
        self._consumer: IConsumer | None = None
        self._done: Deferred[None] | None = None
        self._reading = False
        self._paused = False
        self._stopped = False
        self._finished = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        if self._consumer is not None:
            raise RuntimeError("this body has already been started")
        self._consumer = consumer
        # Cancelling stops production; the Deferred then fails with CancelledError.
        self._done = Deferred(lambda _: self.stopProducing())
        self._read_next()
        return self._done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._consumer is not None:
            self._read_next()

    def stopProducing(self) -> None:
        # IBodyProducer: after stopProducing the Deferred must never fire.
        if self._stopped or self._finished:
            return
        self._stopped = True
        if not self._reading:
            self._close()

    def _read_next(self) -> None:
        if self._reading or self._paused or self._stopped or self._finished:
            return
        self._reading = True
        run_in_thread(self._reactor, _read_chunk, self._file).addCallbacks(
            self._got_chunk, self._read_failed
        )

    def _got_chunk(self, chunk: bytes) -> None:
        self._reading = False
        if self._stopped:
            self._close()
            return
        assert self._consumer is not None and self._done is not None
        if not chunk:
            self._finished = True
            self._done.callback(None)
            return
        # write() may pause, resume or stop us synchronously; _read_next checks.
        self._consumer.write(chunk)
        self._read_next()

    def _read_failed(self, failure: Failure) -> None:
        self._reading = False
        self._close()
        if self._stopped:
            return
        self._finished = True
        assert self._done is not None
        self._done.errback(StorageError(f"reading a stored object failed: {failure.value}"))

    def _close(self) -> None:
        run_in_thread(self._reactor, self._file.close).addErrback(
            lambda failure: _log.failure("closing a stored object failed", failure)
        )


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


@implementer(IStorage)
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
            raise InvalidKey(f"key {_shorten(key)} resolves outside the storage root")

    # IStorage --------------------------------------------------------------

    def store(
        self, key: str, body: BinaryIO, content_type: str, length: int | None = None
    ) -> Deferred[StoredObject]:
        try:
            segments = _split_key(key)
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
            segments = _split_key(key)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._open, key, segments).addCallback(
            self._with_body
        )

    def delete(self, key: str) -> Deferred[None]:
        try:
            segments = _split_key(key)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._delete, key, segments)

    def exists(self, key: str) -> Deferred[bool]:
        try:
            segments = _split_key(key)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._exists, key, segments)

    def list(self, prefix: str) -> Deferred[builtins.list[StoredObject]]:
        try:
            directories, _ = _split_prefix(prefix)
        except InvalidKey:
            return fail()
        return run_in_thread(self._reactor, self._list, prefix, directories)

    def check(self) -> Deferred[None]:
        return run_in_thread(self._reactor, self._check)

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
            raise StorageError(f"could not store {_shorten(key)}: {error}") from error

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
                            f"body of {_shorten(key)} is longer than the declared {length} bytes"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                if length is not None and size != length:
                    raise StorageError(
                        f"body of {_shorten(key)} has {size} bytes, not the declared {length}"
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
                raise StorageError(f"could not store {_shorten(key)}: {error}") from error
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
            raise StorageError(f"could not open {_shorten(key)}: {error}") from error
        try:
            return file, _read_metadata(key, file)
        except BaseException:
            file.close()
            raise

    def _with_body(self, opened: tuple[IO[bytes], StoredObject]) -> StoredObject:
        # Runs on the reactor thread, where the producer must be created.
        # Until a consumer starts (or stops) the producer, the file stays open.
        file, meta = opened
        producer = _FileProducer(self._reactor, file, meta.length)
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
            raise StorageError(f"could not delete {_shorten(key)}: {error}") from error
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
                if _SEGMENT.fullmatch(name)
                and name not in (".", "..")
                and ((base + name + "/").startswith(prefix) or prefix.startswith(base + name + "/"))
            ]
            for filename in filenames:
                if not filename.endswith(OBJECT_SUFFIX):
                    continue  # temporary files, probes, strangers
                segment = filename[: -len(OBJECT_SUFFIX)]
                key = base + segment
                if (
                    not key.startswith(prefix)
                    or not _SEGMENT.fullmatch(segment)
                    or segment in (".", "..")
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
