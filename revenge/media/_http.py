"""
What a request for a file asks for: conditional headers (RFC 9110 §13) and
byte ranges (RFC 9110 §14), decided from the file's validators alone.

Pure functions over header values, so every rule is tested without a server.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz
from enum import Enum

# More ranges than this in one header is not a player seeking; the header
# is ignored (RFC 9110 §14.2 lets a server ignore Range).
MAX_RANGES = 64

# ASCII digits only: \d would also take other scripts' digits.
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
# A position of more digits than this is past the end of any file (10**18
# bytes); read as that, a client's 5000-digit number costs nothing and means
# what it says (Python refuses to parse more than 4300 digits at all).
_MAX_POSITION_DIGITS = 18
_BEYOND_ANY_FILE = int("1" + "0" * _MAX_POSITION_DIGITS)


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    if len(significant) > _MAX_POSITION_DIGITS:
        return _BEYOND_ANY_FILE
    return int(significant or "0")
_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')
_LIST_GAP = re.compile(r"[\s,]*")
_OPTIONAL_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class FileValidators:
    """What identifies one version of a file: its ETag and modification time."""

    size: int
    # Whole seconds, as HTTP dates have no finer resolution.
    modified: int
    etag: str

    @classmethod
    def from_stat(cls, size: int, mtime_ns: int, inode: int, now: float | None = None) -> FileValidators:
        # Size, modification time and inode change together on any rewrite,
        # and NFS gives every client the same inode number (the file id), so
        # every replica computes the same tag for the same file. The device
        # number is left out: it differs between hosts.
        etag = f'"{size:x}-{mtime_ns:x}-{inode:x}"'
        modified = mtime_ns // 1_000_000_000
        # A Last-Modified in the future would defeat If-Modified-Since.
        current = int(time.time() if now is None else now)
        return cls(size=size, modified=min(modified, current), etag=etag)

    @property
    def last_modified(self) -> str:
        return http_date(self.modified)


def file_headers(validators: FileValidators) -> dict[bytes, bytes]:
    """The headers of every answer about a file (200, 206, 304, 412, 416)."""
    return {
        b"ETag": validators.etag.encode("ascii"),
        b"Last-Modified": validators.last_modified.encode("ascii"),
        b"Accept-Ranges": b"bytes",
        # Answers to authenticated requests: browsers may keep them, shared caches may not.
        b"Cache-Control": b"private, no-cache",
        b"X-Content-Type-Options": b"nosniff",
        # Should a file ever be opened as a page, it runs nothing on this origin.
        b"Content-Security-Policy": b"default-src 'none'; sandbox",
    }


def http_date(seconds: float) -> str:
    """IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP date in any of its three formats; None if invalid."""
    parsed = parsedate_tz(value.strip())
    if parsed is None:
        return None
    try:
        return int(mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def _skip(pattern: re.Pattern[str], text: str, position: int) -> int:
    match = pattern.match(text, position)
    return position if match is None else match.end()


def entity_tags(value: str) -> list[tuple[bool, str]] | None:
    """
    The ``(weak, opaque-tag)`` pairs of an If-Match / If-None-Match list;
    an empty list for ``*`` (matches anything); None when malformed.
    """
    text = value.strip()
    if text == "*":
        return []
    tags: list[tuple[bool, str]] = []
    position = 0
    while True:
        # The list rule allows empty elements: '"a", , "b"'.
        position = _skip(_LIST_GAP, text, position)
        if position >= len(text):
            return tags or None
        match = _ENTITY_TAG.match(text, position)
        if match is None:
            return None
        tags.append((match.group(1) is not None, match.group(2)))
        position = _skip(_OPTIONAL_SPACE, text, match.end())
        if position < len(text) and text[position] != ",":
            return None


def _weak_match(header: str, etag: str) -> bool:
    tags = entity_tags(header)
    if tags is None:
        return False
    return not tags or any(tag == etag for _, tag in tags)


def _strong_match(header: str, etag: str) -> bool:
    tags = entity_tags(header)
    if tags is None:
        return False
    return not tags or any(tag == etag and not weak for weak, tag in tags)


class Precondition(Enum):
    """The outcome of the conditional headers (RFC 9110 §13.2.2, in its order)."""

    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"
    FAILED = "failed"


def evaluate_preconditions(
    validators: FileValidators,
    if_match: str | None,
    if_unmodified_since: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> Precondition:
    """What to answer a GET or HEAD with these conditional headers: 412, 304 or go on."""
    if if_match is not None:
        if not _strong_match(if_match, validators.etag):
            return Precondition.FAILED
    elif if_unmodified_since is not None:
        since = parse_http_date(if_unmodified_since)
        if since is not None and validators.modified > since:
            return Precondition.FAILED
    if if_none_match is not None:
        # Weak comparison, and it takes precedence over If-Modified-Since.
        if _weak_match(if_none_match, validators.etag):
            return Precondition.NOT_MODIFIED
        return Precondition.PROCEED
    if if_modified_since is not None:
        since = parse_http_date(if_modified_since)
        if since is not None and validators.modified <= since:
            return Precondition.NOT_MODIFIED
    return Precondition.PROCEED


def if_range_allows(value: str, validators: FileValidators) -> bool:
    """
    Whether an ``If-Range`` lets the Range apply: a strong ETag equal to
    ours, or an HTTP date exactly equal to Last-Modified. Otherwise the whole
    file is sent (the client's partial copy is stale).
    """
    text = value.strip()
    if text.startswith('"') or text.startswith("W/"):
        # Weak tags never match here (RFC 9110 §13.1.5).
        return text == validators.etag
    since = parse_http_date(text)
    return since is not None and since == validators.modified


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``first`` to ``last`` inclusive of a file of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


class Unsatisfiable:
    """A well-formed Range none of whose ranges overlaps the file: answer 416."""

    def __init__(self, size: int) -> None:
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"



def parse_range(value: str, size: int) -> ByteRange | Unsatisfiable | None:
    """
    What to send for ``Range: value`` on a file of ``size`` bytes.

    - None: serve the whole file with 200. That is the answer for a header
      that is malformed (any range-spec that does not parse, ``last`` below
      ``first``), in another unit, with more than :data:`MAX_RANGES` ranges,
      or on an empty file (no byte range of it can be written down).
    - :class:`Unsatisfiable`: well-formed, but every range starts at or past
      the end (or is the suffix ``-0``): 416 with ``Content-Range: bytes */size``.
    - :class:`ByteRange`: 206 with that one range. Several ranges are sent
      as the single range from the lowest first byte to the highest last
      byte of the satisfiable ones: every byte asked for is in it, and the
      Content-Range says what it is (no multipart/byteranges bodies).
    """
    unit, separator, range_set = value.partition("=")
    if not separator or unit.strip().lower() != "bytes" or size <= 0:
        return None
    specs = [spec.strip() for spec in range_set.split(",")]
    # The list rule allows empty elements ("0-1,,2-3"), but not only those.
    specs = [spec for spec in specs if spec]
    if not specs or len(specs) > MAX_RANGES:
        return None
    satisfiable: list[tuple[int, int]] = []
    for spec in specs:
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return None
        first_text, last_text = match.groups()
        if first_text:
            first = _position(first_text)
            if last_text:
                last = _position(last_text)
                if last < first:
                    return None
            else:
                last = size - 1
            if first >= size:
                continue
            satisfiable.append((first, min(last, size - 1)))
        elif last_text:
            suffix = _position(last_text)
            if suffix == 0:
                continue
            satisfiable.append((max(size - suffix, 0), size - 1))
        else:
            return None  # a lone "-"
    if not satisfiable:
        return Unsatisfiable(size)
    first = min(first for first, _ in satisfiable)
    last = max(last for _, last in satisfiable)
    return ByteRange(first, last, size)
