"""The type of an avatar comes from its bytes; the declared type must name an accepted one."""

from __future__ import annotations

import pytest

from revenge.avatars import AVATAR_KEY_PREFIX
from revenge.avatars._images import (
    AVATAR_CONTENT_TYPES,
    SNIFF_BYTES,
    declared_image_type,
    image_type_of,
)
from revenge.avatars._pointer import entity_tag, new_avatar_key
from revenge.avatars._routes import _matches_if_none_match
from revenge.storage import validate_key


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", "image/jpeg"),
        (b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00\x00\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        # Near misses.
        (b"\x89PNG\r\n\x1a", None),  # signature cut short
        (b"\x89PNG\n\r\x1a\n....", None),  # line endings mangled in transit
        (b"\xff\xd8\x00\xe0", None),
        (b"GIF88a......", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # a RIFF, but audio
        (b"RIFF\x24\x00\x00\x00WEB", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
        (b"<html><script>alert(1)</script>", None),
        (b"", None),
    ],
)
def test_image_type_of(head, expected):
    assert image_type_of(head[:SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"image/png", "image/png"),
        (b"IMAGE/JPEG", "image/jpeg"),
        (b"image/gif; charset=binary", "image/gif"),
        (b" image/webp ", "image/webp"),
        (b"image/jpg", None),
        (b"image/svg+xml", None),
        (b"application/octet-stream", None),
        (b"", None),
        (b"image/png\xff", None),
        (None, None),
    ],
)
def test_declared_image_type(header, expected):
    assert declared_image_type(header) == expected


def test_the_accepted_types():
    assert AVATAR_CONTENT_TYPES == {"image/png", "image/jpeg", "image/gif", "image/webp"}


def test_keys_are_new_each_time_and_valid_storage_keys():
    first, second = new_avatar_key("alice"), new_avatar_key("alice")
    assert first != second
    assert first.startswith(AVATAR_KEY_PREFIX + "alice/")
    assert validate_key(first) == first
    assert entity_tag(first) == '"' + first.rsplit("/", 1)[1] + '"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        (b'"abc"', True),
        (b'W/"abc"', True),
        (b'"x", "abc"', True),
        (b'"x","abc"', True),
        (b"*", True),
        (b'"abcd"', False),
        (b"abc", False),
        (b'"ABC"', False),
    ],
)
def test_if_none_match(header, matches):
    assert _matches_if_none_match(header, '"abc"') is matches
