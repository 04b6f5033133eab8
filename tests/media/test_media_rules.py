"""The pure rules of the media routes: ranges, validators, paths, names, cursors."""

from __future__ import annotations

import pytest

from revenge.config import load_config
from revenge.media._http import (
    ByteRange,
    FileValidators,
    Precondition,
    Unsatisfiable,
    evaluate_preconditions,
    http_date,
    if_range_allows,
    parse_http_date,
    parse_range,
)
from revenge.media._libraries import libraries_from_config
from revenge.media._listing import InvalidCursor, decode_cursor, encode_cursor
from revenge.media._paths import split_media_path, split_relative_path
from revenge.media._types import content_type_for

SIZE = 1000


def byte_range(first: int, last: int) -> ByteRange:
    return ByteRange(first, last, SIZE)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", byte_range(0, 0)),
        ("bytes=999-999", byte_range(999, 999)),
        ("bytes=0-999", byte_range(0, 999)),
        ("bytes=0-5000", byte_range(0, 999)),  # last clipped to the end
        ("bytes=500-", byte_range(500, 999)),
        ("bytes=999-", byte_range(999, 999)),
        ("bytes=-1", byte_range(999, 999)),
        ("bytes=-500", byte_range(500, 999)),
        ("bytes=-1000", byte_range(0, 999)),
        ("bytes=-5000", byte_range(0, 999)),  # suffix longer than the file: all of it
        ("Bytes=10-19", byte_range(10, 19)),  # the unit is case-insensitive
        ("bytes= 10-19 ", byte_range(10, 19)),
        # Several ranges: one part spanning them all.
        ("bytes=0-9,20-29", byte_range(0, 29)),
        ("bytes=-10,0-0", byte_range(0, 999)),
        ("bytes=0-9,,20-29", byte_range(0, 29)),
        ("bytes=5000-6000,0-9", byte_range(0, 9)),  # unsatisfiable ones are dropped
    ],
)
def test_satisfiable_ranges(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=1000-2000", "bytes=5000-", "bytes=-0", "bytes=1000-1000,2000-"]
)
def test_unsatisfiable_ranges(header: str) -> None:
    result = parse_range(header, SIZE)
    assert isinstance(result, Unsatisfiable)
    assert result.content_range == "bytes */1000"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=10-5",  # last before first
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=1_0-20",
        "bytes=0x10-20",
        "bytes 0-10",
        "items=0-10",  # another unit
        "bytes=0-9,foo",  # one bad spec spoils the header
        "bytes=" + ",".join(f"{i}-{i}" for i in range(100)),  # too many ranges
        "",
    ],
)
def test_malformed_or_foreign_ranges_are_ignored(header: str) -> None:
    assert parse_range(header, SIZE) is None


def test_ranges_on_an_empty_file_are_ignored() -> None:
    assert parse_range("bytes=0-0", 0) is None
    assert parse_range("bytes=-5", 0) is None


def test_byte_range_headers() -> None:
    chosen = byte_range(10, 19)
    assert chosen.length == 10
    assert chosen.content_range == "bytes 10-19/1000"


VALIDATORS = FileValidators(size=SIZE, modified=1_700_000_000, etag='"3e8-1-2"')
LAST_MODIFIED = http_date(1_700_000_000)
EARLIER = http_date(1_699_999_999)
LATER = http_date(1_700_000_001)


def preconditions(**headers: str) -> Precondition:
    return evaluate_preconditions(
        VALIDATORS,
        if_match=headers.get("if_match"),
        if_unmodified_since=headers.get("if_unmodified_since"),
        if_none_match=headers.get("if_none_match"),
        if_modified_since=headers.get("if_modified_since"),
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, Precondition.PROCEED),
        ({"if_none_match": '"3e8-1-2"'}, Precondition.NOT_MODIFIED),
        ({"if_none_match": 'W/"3e8-1-2"'}, Precondition.NOT_MODIFIED),  # weak comparison
        ({"if_none_match": '"other", "3e8-1-2"'}, Precondition.NOT_MODIFIED),
        ({"if_none_match": "*"}, Precondition.NOT_MODIFIED),
        ({"if_none_match": '"other"'}, Precondition.PROCEED),
        ({"if_none_match": "garbage"}, Precondition.PROCEED),
        ({"if_modified_since": LAST_MODIFIED}, Precondition.NOT_MODIFIED),
        ({"if_modified_since": LATER}, Precondition.NOT_MODIFIED),
        ({"if_modified_since": EARLIER}, Precondition.PROCEED),
        ({"if_modified_since": "not a date"}, Precondition.PROCEED),
        # If-None-Match wins over If-Modified-Since.
        ({"if_none_match": '"other"', "if_modified_since": LATER}, Precondition.PROCEED),
        ({"if_match": '"3e8-1-2"'}, Precondition.PROCEED),
        ({"if_match": 'W/"3e8-1-2"'}, Precondition.FAILED),  # strong comparison
        ({"if_match": '"other"'}, Precondition.FAILED),
        ({"if_unmodified_since": EARLIER}, Precondition.FAILED),
        ({"if_unmodified_since": LAST_MODIFIED}, Precondition.PROCEED),
    ],
)
def test_preconditions(headers: dict[str, str], expected: Precondition) -> None:
    assert preconditions(**headers) is expected


def test_http_dates_in_all_three_formats() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert parse_http_date("yesterday") is None
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_if_range() -> None:
    assert if_range_allows('"3e8-1-2"', VALIDATORS)
    assert not if_range_allows('W/"3e8-1-2"', VALIDATORS)
    assert not if_range_allows('"other"', VALIDATORS)
    assert if_range_allows(LAST_MODIFIED, VALIDATORS)
    assert not if_range_allows(EARLIER, VALIDATORS)
    assert not if_range_allows(LATER, VALIDATORS)
    assert not if_range_allows("nonsense", VALIDATORS)


def test_validators_from_stat() -> None:
    validators = FileValidators.from_stat(1000, 1_700_000_000_123_456_789, 42, now=1_800_000_000)
    assert validators.etag == '"3e8-17979cfe3d85cd15-2a"'
    assert validators.modified == 1_700_000_000
    assert validators.last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    # Another size, time or inode is another tag.
    assert FileValidators.from_stat(1001, 1_700_000_000_123_456_789, 42).etag != validators.etag
    assert FileValidators.from_stat(1000, 1_700_000_000_123_456_790, 42).etag != validators.etag
    assert FileValidators.from_stat(1000, 1_700_000_000_123_456_789, 43).etag != validators.etag


def test_a_future_modification_time_is_clamped_to_now() -> None:
    validators = FileValidators.from_stat(1, 2_000_000_000 * 10**9, 1, now=1_900_000_000)
    assert validators.modified == 1_900_000_000


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("film.mkv", "video/x-matroska"),
        ("FILM.MKV", "video/x-matroska"),
        ("a.mp4", "video/mp4"),
        ("a.webm", "video/webm"),
        ("a.m4v", "video/x-m4v"),
        ("a.avi", "video/x-msvideo"),
        ("a.mov", "video/quicktime"),
        ("a.mp3", "audio/mpeg"),
        ("a.flac", "audio/flac"),
        ("a.ogg", "audio/ogg"),
        ("a.opus", "audio/opus"),
        ("a.m4a", "audio/mp4"),
        ("a.aac", "audio/aac"),
        ("a.wav", "audio/wav"),
        ("a.srt", "application/x-subrip"),
        ("a.vtt", "text/vtt; charset=utf-8"),
        ("a.ass", "text/x-ssa"),
        ("a.ssa", "text/x-ssa"),
        ("cover.jpg", "image/jpeg"),
        ("cover.jpeg", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.webp", "image/webp"),
        ("a.gif", "image/gif"),
        ("movie.nfo", "text/plain"),
        ("page.html", "application/octet-stream"),
        ("image.svg", "application/octet-stream"),
        ("README", "application/octet-stream"),
        (".mkv", "application/octet-stream"),  # a hidden file named ".mkv" has no extension
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type_for(name) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/media/movies/a.mkv", ("movies", ("a.mkv",))),
        (b"/media/movies/Film%20(2001)/film.mkv", ("movies", ("Film (2001)", "film.mkv"))),
        (b"/media/movies/caf%C3%A9.mkv", ("movies", ("café.mkv",))),
        (b"/media/movies/%252e%252e", ("movies", ("%2e%2e",))),  # decoded once only
        (b"/media/movies/a..", ("movies", ("a..",))),
        (b"/media/movies-2/x", ("movies-2", ("x",))),
    ],
)
def test_media_paths_accepted(raw: bytes, expected: tuple[str, tuple[str, ...]]) -> None:
    assert split_media_path(raw, b"/media/") == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"/media/movies/../etc/passwd",
        b"/media/movies/%2e%2e/etc/passwd",
        b"/media/movies/%2E%2E/etc/passwd",
        b"/media/movies/.%2e/x",
        b"/media/movies/a/./b",
        b"/media/movies/a%2Fb",
        b"/media/movies/a%2fb",
        b"/media/movies/..%2Fetc%2Fpasswd",
        b"/media/movies/a%5Cb",
        b"/media/movies/a\\b",
        b"/media/movies/..\\etc",
        b"/media/movies/a%00.mkv",
        b"/media/movies//etc/passwd",
        b"/media/movies/",
        b"/media/movies",
        b"/media/%2e%2e/etc/passwd",
        b"/media/movies%2F..%2F..%2Fetc/passwd",
        b"/media/movies/%ff.mkv",  # not UTF-8
        # Hidden names are refused like a missing file (docs/media.md, "Hidden names").
        b"/media/movies/..a",
        b"/media/movies/.hidden.mkv",
        b"/media/movies/.snapshot/hourly.0/a.mkv",
        b"/media/movies/%2esnapshot/a.mkv",
        b"/media/movies/a/.git/config",
        b"/other/movies/a.mkv",
    ],
)
def test_media_paths_refused(raw: bytes) -> None:
    assert split_media_path(raw, b"/media/") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("/", ()),
        ("a/b", ("a", "b")),
        ("/a/b/", ("a", "b")),
        ("Film (2001)", ("Film (2001)",)),
    ],
)
def test_directory_paths_accepted(text: str, expected: tuple[str, ...]) -> None:
    assert split_relative_path(text) == expected


@pytest.mark.parametrize(
    "text", ["..", "a/../b", "./a", "a//b", "///", "a\\b", "a\x00b", "../../etc"]
)
def test_directory_paths_refused(text: str) -> None:
    assert split_relative_path(text) is None


def test_library_names(tmp_path: object) -> None:
    config = load_config(
        None,
        {
            "REVENGE_MEDIA_MOVIE_PATHS": "/m/a,/m/b,/m/c",
            "REVENGE_MEDIA_TV_PATHS": "/t",
            "REVENGE_MEDIA_MUSIC_PATHS": "/x,/y",
        },
        cwd=str(tmp_path),
    )
    named = [(library.name, library.kind, library.root) for library in libraries_from_config(config)]
    assert named == [
        ("movies", "movies", "/m/a"),
        ("movies-2", "movies", "/m/b"),
        ("movies-3", "movies", "/m/c"),
        ("tv", "tv", "/t"),
        ("music", "music", "/x"),
        ("music-2", "music", "/y"),
    ]


def test_no_libraries_by_default(tmp_path: object) -> None:
    assert libraries_from_config(load_config(None, {}, cwd=str(tmp_path))) == ()


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    cursor = encode_cursor("file", "Ünïcode name.mkv")
    assert decode_cursor(cursor) == (1, "ünïcode name.mkv", "Ünïcode name.mkv")
    assert decode_cursor(encode_cursor("dir", "A"))[0] == 0
    for forged in ["", "!!!", "bm90IGpzb24", encode_cursor("dir", "x")[:-3] + "@@@", "WzEsMl0"]:
        with pytest.raises(InvalidCursor):
            decode_cursor(forged)
