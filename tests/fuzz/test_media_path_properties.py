"""
Media paths: whatever a client sends, nothing outside a library root is
ever resolved, opened or listed, symlinks included (docs/design.md, "Security").

Symlink farms are built by hypothesis in fresh temporary directories: links
inside the root that point inside, outside (absolute and relative), to the
root's parent, to themselves, to each other, and nowhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

from hypothesis import example, given, settings
from hypothesis import strategies as st

from revenge.media._listing import list_directory
from revenge.media._paths import (
    MediaNotFound,
    directory_inside,
    open_inside,
    real_path_inside,
    split_media_path,
    split_relative_path,
)

from .tally import count_input, examples

PREFIX = b"/media/"
FORBIDDEN = ("/", "\\", "\x00")

NAMES = ["a", "b", "c", "film.mkv", "..", ".", "", "a b", "%2F", "é"]


def segment_ok(segment: str) -> bool:
    return segment not in ("", ".", "..") and not any(c in segment for c in FORBIDDEN)


# -- splitting what the client sent ------------------------------------------------

raw_segments = st.one_of(
    st.sampled_from([b"..", b".", b"", b"%2e%2e", b"%2E.", b"%2F", b"%5c", b"%00", b"a%2Fb",
                     b"..%2F..", b"%c0%ae", b"%ff", b"film.mkv", b"a"]),
    st.binary(max_size=12),
    st.text(max_size=8).map(
        lambda text: quote_from_bytes(text.encode("utf-8", "surrogatepass"), safe=b"").encode()
    ),
)
raw_paths = st.one_of(
    st.binary(max_size=80),
    st.lists(raw_segments, max_size=6).map(lambda parts: PREFIX + b"/".join(parts)),
)


@settings(max_examples=examples(500))
@given(raw_paths)
@example(b"/media/movies/../secret")
@example(b"/media/movies/%2e%2e/secret")
@example(b"/media/movies/a%2Fb")
@example(b"/media/movies/a%00b")
@example(b"/media//movies/a")
@example(b"/media/movies/a\\..\\b")
def test_split_media_path_returns_only_plain_segments(raw: bytes) -> None:
    count_input("media: split_media_path")
    parsed = split_media_path(raw, PREFIX)
    if parsed is None:
        return
    library, segments = parsed
    assert raw.startswith(PREFIX)
    assert segments, "a file path has at least one segment"
    for segment in (library, *segments):
        assert segment_ok(segment), segment


@settings(max_examples=examples(500))
@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(NAMES), max_size=6).map("/".join)))
def test_split_relative_path_returns_only_plain_segments(text: str) -> None:
    count_input("media: split_relative_path")
    segments = split_relative_path(text)
    if segments is not None:
        assert all(segment_ok(segment) for segment in segments)


# -- resolving in a symlink farm ------------------------------------------------------

FARM_NAMES = ["a", "b", "c", "d"]


@dataclass(frozen=True)
class Entry:
    path: tuple[str, ...]
    kind: str  # "dir", "file", "link"
    # For links: where to, relative to the link's directory, or from "@root",
    # "@outside" or "@top" (the directory holding both), or absolute.
    target: str = ""


link_targets = st.one_of(
    st.lists(st.sampled_from(FARM_NAMES + ["..", "."]), min_size=1, max_size=5).map("/".join),
    st.sampled_from(["@root", "@outside", "@outside/secret.txt", "@top", "@root/..", "/", "/etc"]),
)
entries = st.builds(
    Entry,
    path=st.lists(st.sampled_from(FARM_NAMES), min_size=1, max_size=3).map(tuple),
    kind=st.sampled_from(["dir", "file", "link", "link"]),
    target=link_targets,
)
queries = st.lists(st.sampled_from(FARM_NAMES + ["..", ".", "secret.txt"]), max_size=6).map(tuple)


@dataclass
class Farm:
    top: str
    root: str
    outside: str


@contextmanager
def built_farm(layout: list[Entry]) -> Iterator[Farm]:
    top = tempfile.mkdtemp(prefix="revenge-farm-")
    try:
        root = os.path.join(top, "library")
        outside = os.path.join(top, "outside")
        os.makedirs(root)
        os.makedirs(outside)
        with open(os.path.join(outside, "secret.txt"), "w") as file:
            file.write("not for clients")
        named = {"@root": root, "@outside": outside, "@top": top}
        for entry in layout:
            where = os.path.join(root, *entry.path)
            try:
                os.makedirs(os.path.dirname(where), exist_ok=True)
                if entry.kind == "dir":
                    os.makedirs(where, exist_ok=True)
                elif entry.kind == "file":
                    with open(where, "w") as file:
                        file.write("inside")
                else:
                    head, _, rest = entry.target.partition("/")
                    target = os.path.join(named[head], rest) if head in named else entry.target
                    os.symlink(target, where)
            except OSError:
                continue  # the place is taken (or is a dangling link): skip it
        yield Farm(top, root, outside)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def assert_inside(farm: Farm, resolved: str) -> None:
    real_root = os.path.realpath(farm.root)
    assert os.path.commonpath([real_root, resolved]) == real_root, resolved
    assert not resolved.startswith(os.path.realpath(farm.outside))


@settings(max_examples=examples(150))
@given(st.lists(entries, max_size=10), st.lists(queries, min_size=1, max_size=8))
@example(
    [
        Entry(("a",), "link", "@outside"),
        Entry(("b",), "link", "../outside"),
        Entry(("c",), "link", "c"),
    ],
    [("a", "secret.txt"), ("b", "secret.txt"), ("c",), ("..", "outside", "secret.txt")],
)
@example([Entry(("a",), "link", "b"), Entry(("b",), "link", "a")], [("a",), ("b", "x")])
@example(
    [Entry(("a",), "link", "@top"), Entry(("b",), "link", "/")], [("a", "outside"), ("b", "etc")]
)
def test_nothing_outside_the_root_is_resolved_opened_or_listed(
    layout: list[Entry], tries: list[tuple[str, ...]]
) -> None:
    with built_farm(layout) as farm:
        for segments in tries:
            count_input("media: paths in symlink farms")
            try:
                resolved = real_path_inside(farm.root, segments)
            except MediaNotFound:
                pass
            else:
                assert_inside(farm, resolved)
            try:
                opened = open_inside(farm.root, segments)
            except MediaNotFound:
                pass
            else:
                try:
                    info = os.fstat(opened.fd)
                    secret = os.stat(os.path.join(farm.outside, "secret.txt"))
                    assert (info.st_ino, info.st_dev) != (secret.st_ino, secret.st_dev)
                    assert os.read(opened.fd, 100) == b"inside"
                finally:
                    os.close(opened.fd)
            try:
                directory = directory_inside(farm.root, segments)
            except MediaNotFound:
                continue
            assert_inside(farm, directory)
            page = list_directory(farm.root, segments, 1000, None)
            for entry in page.entries:
                # Every listed entry resolves inside the root too.
                assert_inside(farm, os.path.realpath(os.path.join(directory, entry.name)))
