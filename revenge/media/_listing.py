"""
One directory of a library, a page at a time.

Entries are sorted directories first, then files, each by case-folded name
(then by exact name, so the order is total). A page is the entries after the
cursor's position in that order, so a cursor stays meaningful when entries
are added or removed between two pages: nothing is skipped or repeated that
was there for both.

Not listed: names starting with ``.`` (hidden files, NFS ``.snapshot``
directories), names that are not valid UTF-8 (no URL or JSON could carry
them back), symlinks that lead outside the library root or nowhere, and
anything that is neither a regular file nor a directory.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from revenge.media._paths import MediaNotFound, directory_inside, is_hidden_name, is_inside
from revenge.web import loads_client_json

DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 1000

DIRECTORY = "dir"
FILE = "file"

# (0 for directories, 1 for files; case-folded name; exact name)
SortKey = tuple[int, str, str]


class InvalidCursor(Exception):
    """A cursor this server did not hand out."""


def sort_key(kind: str, name: str) -> SortKey:
    return (0 if kind == DIRECTORY else 1, name.casefold(), name)


def encode_cursor(kind: str, name: str) -> str:
    """An opaque cursor meaning "after this entry"."""
    raw = json.dumps([kind, name], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        decoded: Any = loads_client_json(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidCursor() from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or decoded[0] not in (DIRECTORY, FILE)
        or not isinstance(decoded[1], str)
    ):
        raise InvalidCursor()
    return sort_key(decoded[0], decoded[1])


@dataclass(frozen=True)
class ListedEntry:
    name: str
    kind: str
    # Bytes for files, None for directories.
    size: int | None
    mtime: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "size": self.size, "mtime": self.mtime}


@dataclass(frozen=True)
class DirectoryPage:
    entries: list[ListedEntry]
    total: int
    next_cursor: str | None


def iso_time(seconds: float) -> str:
    """``2024-05-01T12:00:00Z``"""
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_listable_name(name: str) -> bool:
    if is_hidden_name(name):
        return False
    try:
        # os.scandir hands undecodable bytes back as lone surrogates.
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind_of(entry: os.DirEntry[str], real_root: str) -> str | None:
    try:
        if entry.is_symlink():
            # Listed as what it points to, and only when that is inside the root.
            target = os.path.realpath(entry.path)
            if not is_inside(real_root, target):
                return None
            mode = os.stat(target).st_mode
        elif entry.is_dir(follow_symlinks=False):
            return DIRECTORY
        elif entry.is_file(follow_symlinks=False):
            return FILE
        else:
            return None
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISREG(mode):
        return FILE
    return None


def list_directory(
    root: str, segments: Sequence[str], limit: int, after: SortKey | None
) -> DirectoryPage:
    """
    Up to ``limit`` entries of the directory at ``segments`` below ``root``
    that sort after ``after``. Blocking: call it in a worker thread.
    """
    directory = directory_inside(root, segments)
    real_root = os.path.realpath(root)
    found: list[tuple[SortKey, str, str]] = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if not _is_listable_name(entry.name):
                    continue
                kind = _kind_of(entry, real_root)
                if kind is not None:
                    found.append((sort_key(kind, entry.name), entry.name, kind))
    except PermissionError:
        raise MediaNotFound() from None
    found.sort()
    start = 0 if after is None else bisect.bisect_right(found, after, key=lambda item: item[0])
    chosen = found[start : start + limit]
    entries = []
    for _, name, kind in chosen:
        try:
            # Follows symlinks: a listed symlink shows its target's size and time.
            info = os.stat(os.path.join(directory, name))
        except OSError:
            continue  # removed since the scan
        size = info.st_size if kind == FILE else None
        entries.append(ListedEntry(name, kind, size, iso_time(info.st_mtime)))
    more = start + limit < len(found)
    next_cursor = encode_cursor(chosen[-1][2], chosen[-1][1]) if more and chosen else None
    return DirectoryPage(entries, len(found), next_cursor)
