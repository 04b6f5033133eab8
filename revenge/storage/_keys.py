"""
The key rules every storage provider applies, in one place.

A key is a relative path of ``[A-Za-z0-9._-]+`` segments joined by ``/``,
with no empty, ``.`` or ``..`` segment, at most :data:`MAX_KEY_LENGTH`
characters long. The alphabet is small on purpose: such a key is a safe
file name on any filesystem and needs no escaping in an S3 URL, and no key
can climb out of a provider's namespace. Providers validate keys on the
reactor thread before any I/O, so a bad key fails the same way everywhere.
"""

from __future__ import annotations

import re

from revenge.storage._interface import InvalidKey

__all__ = [
    "MAX_KEY_LENGTH",
    "is_key_segment",
    "shorten",
    "split_key",
    "split_prefix",
    "validate_key",
    "validate_prefix",
]

MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Characters a list prefix may hold: a key's, as the last segment may be partial.
_PREFIX_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]*")


def shorten(value: str) -> str:
    """``repr(value)`` cut to 80 characters: messages quote keys, which may be garbage."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_key_segment(segment: str) -> bool:
    """
    Whether ``segment`` may be one segment of a key: a provider that maps
    keys onto names it finds later (files in a directory walk, say) skips
    the names no key could have produced.
    """
    return _SEGMENT.fullmatch(segment) is not None and segment not in (".", "..")


def split_key(key: object) -> list[str]:
    """The segments of ``key``, or ``InvalidKey`` when it breaks the rules above."""
    if not isinstance(key, str):
        raise InvalidKey(f"a key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidKey("a key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a key must be at most {MAX_KEY_LENGTH} characters long")
    segments = key.split("/")
    for segment in segments:
        if not is_key_segment(segment):
            raise InvalidKey(
                f"invalid key {shorten(key)}: keys are relative paths of "
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
    split_key(key)
    assert isinstance(key, str)
    return key


def split_prefix(prefix: object) -> tuple[list[str], str]:
    """
    The complete directory segments of a list prefix and its partial tail,
    or ``InvalidKey`` when ``list`` must refuse the prefix.
    """
    if not isinstance(prefix, str):
        raise InvalidKey(f"a prefix must be a string, not {type(prefix).__name__}")
    if len(prefix) > MAX_KEY_LENGTH or not _PREFIX_CHARACTERS.fullmatch(prefix):
        raise InvalidKey(f"invalid prefix {shorten(prefix)}")
    *directories, partial = prefix.split("/")
    # A partial last segment is only matched as text, yet "." and ".." are
    # refused there too: no prefix should even look like a way out.
    if partial in (".", "..") or any(s in ("", ".", "..") for s in directories):
        raise InvalidKey(f"invalid prefix {shorten(prefix)}")
    return directories, partial


def validate_prefix(prefix: object) -> str:
    """
    Return ``prefix`` if ``list`` accepts it, else raise ``InvalidKey``: the
    start of a key (its last segment may be partial), never a way out.
    """
    split_prefix(prefix)
    assert isinstance(prefix, str)
    return prefix
