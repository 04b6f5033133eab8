"""
From what a client sent to a file inside a library root, and nowhere else.

Two steps. On the reactor thread, the raw path is split and each segment
percent-decoded once and checked (:func:`split_media_path`,
:func:`split_relative_path`): no hidden name (``.``, ``..``, ``.snapshot``,
any name starting with a dot: :func:`is_hidden_name`), no empty segment, no
separator that was encoded (``%2F``, ``%5C``), no backslash, no NUL. In a
worker thread, the joined path is resolved with symlinks followed and must
still be inside the root's own resolved path (:func:`open_inside`,
:func:`directory_inside`). Every refusal is :class:`MediaNotFound`, which
routes answer with the same 404 as a path that does not exist.

The volume is mounted read-only, so the short window between resolving a
path and opening it cannot be used to swap a component for a symlink by
anyone but the volume's operators.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from revenge.media._http import FileValidators

# Characters no segment may contain once decoded: a separator that came in
# encoded, the Windows separator, and NUL (which ends a C string early).
_FORBIDDEN_CHARACTERS = ("/", "\\", "\x00")

# Errors that mean "there is nothing servable there" as far as a client may know.
_ABSENT_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENAMETOOLONG}
)


class MediaNotFound(Exception):
    """Nothing may be served for this path; answered exactly like any other 404."""


def is_hidden_name(name: str) -> bool:
    """
    Names starting with ``.`` are neither listed nor served, nor walked
    through: dot-files, editors' and sync tools' litter, and the
    ``.snapshot`` directory NFS servers show in every directory (a copy of
    the whole volume, including what was deleted on purpose). One rule for
    listings and paths, so a name a listing hides cannot be fetched by
    guessing it. ``.`` and ``..`` are hidden names too.
    """
    return name.startswith(".")


def _checked_segment(segment: str) -> str | None:
    if not segment or is_hidden_name(segment):
        return None
    if any(character in segment for character in _FORBIDDEN_CHARACTERS):
        return None
    return segment


def split_media_path(raw_path: bytes, prefix: bytes) -> tuple[str, tuple[str, ...]] | None:
    """
    The library name and file path segments of a raw request path (as sent,
    still percent-encoded, without the query) that starts with ``prefix``;
    None for anything that is not a plain path to a file below a library.
    """
    if not raw_path.startswith(prefix):
        return None
    decoded: list[str] = []
    for raw in raw_path[len(prefix) :].split(b"/"):
        try:
            text = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
        segment = _checked_segment(text)
        if segment is None:
            return None
        decoded.append(segment)
    if len(decoded) < 2:
        return None
    return decoded[0], tuple(decoded[1:])


def split_relative_path(text: str) -> tuple[str, ...] | None:
    """
    The segments of a directory path given in a query parameter (already
    decoded): ``""`` and ``"/"`` are the root, one leading and one trailing
    slash are allowed; None when a segment is refused.
    """
    trimmed = text.removeprefix("/").removesuffix("/")
    if not trimmed:
        return ()
    segments: list[str] = []
    for part in trimmed.split("/"):
        segment = _checked_segment(part)
        if segment is None:
            return None
        segments.append(segment)
    return tuple(segments)


def _absent(error: OSError) -> bool:
    return error.errno in _ABSENT_ERRNOS


def real_path_inside(root: str, segments: Sequence[str]) -> str:
    """
    The real path (symlinks resolved) of ``segments`` below ``root``,
    provided it is inside the root's real path; else :class:`MediaNotFound`.
    Blocking: call it in a worker thread.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *segments))
    if not is_inside(real_root, real):
        raise MediaNotFound()
    return real


def is_inside(real_root: str, real: str) -> bool:
    """Whether the resolved path ``real`` is ``real_root`` or below it."""
    try:
        return os.path.commonpath([real_root, real]) == real_root
    except ValueError:
        return False


@dataclass
class OpenedFile:
    """An open regular file inside a library; the caller closes ``fd``."""

    fd: int
    name: str
    validators: FileValidators
    # Set once a stream owns the descriptor (and will close it).
    handed_over: bool = False

    @property
    def size(self) -> int:
        return self.validators.size


def open_inside(root: str, segments: Sequence[str]) -> OpenedFile:
    """
    Open the regular file at ``segments`` below ``root`` for reading.
    Directories, devices, FIFOs and sockets are :class:`MediaNotFound`, like
    paths outside the root. Blocking: call it in a worker thread.
    """
    real = real_path_inside(root, segments)
    try:
        before = os.stat(real)
    except OSError as error:
        if _absent(error):
            raise MediaNotFound() from None
        raise
    if not stat.S_ISREG(before.st_mode):
        raise MediaNotFound()
    # O_NONBLOCK: had the file just been replaced by a FIFO, opening it
    # would otherwise wait for a writer forever. O_NOFOLLOW: the last
    # component was resolved above and must not have become a symlink.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(real, flags)
    except OSError as error:
        if _absent(error):
            raise MediaNotFound() from None
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_ino, opened.st_dev) != (
            before.st_ino,
            before.st_dev,
        ):
            raise MediaNotFound()
        # The kernel then reads ahead more aggressively (a larger window on NFS too).
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except BaseException:
        os.close(fd)
        raise
    validators = FileValidators.from_stat(opened.st_size, opened.st_mtime_ns, opened.st_ino)
    return OpenedFile(fd, segments[-1], validators)


def directory_inside(root: str, segments: Sequence[str]) -> str:
    """The real path of the directory at ``segments`` below ``root``; else :class:`MediaNotFound`."""
    real = real_path_inside(root, segments)
    try:
        info = os.stat(real)
    except OSError as error:
        if _absent(error):
            raise MediaNotFound() from None
        raise
    if not stat.S_ISDIR(info.st_mode):
        raise MediaNotFound()
    return real


def read_chunk(fd: int, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (blocking: a worker thread's job)."""
    return os.pread(fd, size, offset)
