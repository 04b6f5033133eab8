"""
Nothing outside a library root can be read or probed: every attempt is the
same 404 as a file that does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest_twisted

from .helpers import SAMPLE, Answer, MediaNode, start_media_node

SECRET = b"outside the library root"


def plant_secret(node: MediaNode) -> Path:
    """A readable file beside the roots (tmp_path/media/secret.txt) and one in tmp_path."""
    movies = node.roots["movies"]
    secret = movies.parent / "secret.txt"
    secret.write_bytes(SECRET)
    (movies.parent.parent / "secret.txt").write_bytes(SECRET)
    return secret


def assert_plain_404(answer: Answer, reference: Answer, attempt: str) -> None:
    assert answer.status == 404, (attempt, answer.status, answer.body[:200])
    assert SECRET not in answer.body, attempt
    error = answer.json()["error"]
    expected = reference.json()["error"]
    assert (error["code"], error["message"]) == (expected["code"], expected["message"]), attempt


async def reference_404(node: MediaNode) -> Answer:
    answer = await node.get("/media/movies/there-is-no-such-file.mkv")
    assert answer.status == 404
    return answer


@pytest_twisted.ensureDeferred
async def test_dot_segments_and_encoded_separators(media_node: MediaNode) -> None:
    plant_secret(media_node)
    reference = await reference_404(media_node)
    attempts = [
        "/media/movies/../secret.txt",
        "/media/movies/../../secret.txt",
        "/media/movies/Film%20(2001)/../../secret.txt",
        "/media/movies/%2e%2e/secret.txt",
        "/media/movies/%2E%2E/secret.txt",
        "/media/movies/.%2e/secret.txt",
        "/media/movies/%2e%2e%2fsecret.txt",
        "/media/movies/..%2Fsecret.txt",
        "/media/movies/..%2F..%2Fsecret.txt",
        "/media/movies/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/media/movies/..%5Csecret.txt",
        "/media/movies/..%5csecret.txt",
        "/media/movies/..\\secret.txt",
        "/media/movies/Film%20(2001)%2Ffilm.mkv",  # even a real file, if the / was encoded
        "/media/movies/./sample.bin",
        "/media/movies/%2e/sample.bin",
        "/media/movies/sample.bin%00.mkv",
        "/media/movies/sample.bin%00",
        "/media/movies/%00",
        "/media/movies/%252e%252e/secret.txt",  # double encoding is a literal name
    ]
    for attempt in attempts:
        assert_plain_404(await media_node.get(attempt), reference, attempt)
    # The same checks hold for HEAD.
    head = await media_node.request("HEAD", "/media/movies/../secret.txt")
    assert head.status == 404


@pytest_twisted.ensureDeferred
async def test_absolute_paths(media_node: MediaNode) -> None:
    secret = plant_secret(media_node)
    reference = await reference_404(media_node)
    attempts = [
        f"/media/movies/{secret}",  # /media/movies//tmp/.../secret.txt
        f"/media/movies/%2F{str(secret).lstrip('/')}",
        "/media/movies//etc/passwd",
        "/media/movies/%2Fetc%2Fpasswd",
        "/media//etc/passwd",
        "/media/etc/passwd",
    ]
    for attempt in attempts:
        assert_plain_404(await media_node.get(attempt), reference, attempt)


@pytest_twisted.ensureDeferred
async def test_library_names_cannot_traverse(media_node: MediaNode) -> None:
    plant_secret(media_node)
    reference = await reference_404(media_node)
    attempts = [
        "/media/../media/movies/sample.bin",
        "/media/%2e%2e/secret.txt",
        "/media/movies%2F..%2Fsecret.txt/x",
        "/media/movies%2F..%2F/secret.txt",
        "/media/..%2Fmedia%2Fmovies/sample.bin",
        "/media/MOVIES/sample.bin",
        "/media/movies-9/sample.bin",
        "/media/more-movies/other.mp4",  # a directory's name is not a library's name
    ]
    for attempt in attempts:
        assert_plain_404(await media_node.get(attempt), reference, attempt)
    for attempt in ["/api/v1/libraries/../items", "/api/v1/libraries/..%2Fmovies/items"]:
        assert (await media_node.get(attempt)).status == 404, attempt


@pytest_twisted.ensureDeferred
async def test_symlinks_out_of_the_root_are_refused(media_node: MediaNode) -> None:
    secret = plant_secret(media_node)
    movies = media_node.roots["movies"]
    outside_directory = movies.parent / "elsewhere"
    outside_directory.mkdir()
    (outside_directory / "inside-elsewhere.mkv").write_bytes(SECRET)
    os.symlink(secret, movies / "escape.mkv")
    os.symlink("../secret.txt", movies / "relative-escape.mkv")
    os.symlink(outside_directory, movies / "escape-dir")
    os.symlink("/etc/passwd", movies / "passwd.txt")
    # A root-prefixed sibling: /x/movies-evil is not inside /x/movies.
    sibling = movies.parent / (movies.name + "-evil")
    sibling.mkdir()
    (sibling / "x.mkv").write_bytes(SECRET)
    os.symlink(sibling / "x.mkv", movies / "prefix-trick.mkv")
    reference = await reference_404(media_node)
    for attempt in [
        "/media/movies/escape.mkv",
        "/media/movies/relative-escape.mkv",
        "/media/movies/escape-dir/inside-elsewhere.mkv",
        "/media/movies/passwd.txt",
        "/media/movies/prefix-trick.mkv",
    ]:
        assert_plain_404(await media_node.get(attempt), reference, attempt)
    # Nor are they listed, or listable.
    listing = await media_node.get("/api/v1/libraries/movies/items")
    names = {item["name"] for item in listing.json()["items"]}
    assert not names & {"escape.mkv", "relative-escape.mkv", "escape-dir", "passwd.txt"}
    assert (await media_node.get("/api/v1/libraries/movies/items?path=escape-dir")).status == 404


@pytest_twisted.ensureDeferred
async def test_symlinks_that_stay_inside_are_served(media_node: MediaNode) -> None:
    movies = media_node.roots["movies"]
    os.symlink("sample.bin", movies / "alias.bin")
    os.symlink(movies / "Film (2001)", movies / "Same Film")
    answer = await media_node.get("/media/movies/alias.bin")
    assert (answer.status, answer.body) == (200, SAMPLE)
    through_directory = await media_node.get("/media/movies/Same%20Film/film.mkv")
    assert (through_directory.status, through_directory.body) == (200, SAMPLE)
    listing = await media_node.get("/api/v1/libraries/movies/items")
    items = {item["name"]: item for item in listing.json()["items"]}
    assert items["alias.bin"]["type"] == "file"
    assert items["alias.bin"]["size"] == len(SAMPLE)
    assert items["Same Film"]["type"] == "dir"


@pytest_twisted.ensureDeferred
async def test_a_root_that_is_itself_a_symlink(tmp_path: Path, media_roots: dict[str, Path]) -> None:
    linked = tmp_path / "linked-music"
    os.symlink(media_roots["movies"], linked)
    node, server = await start_media_node(tmp_path, media_roots, extra_music=[linked])
    try:
        answer = await node.get("/media/music/sample.bin")
        assert (answer.status, answer.body) == (200, SAMPLE)
        assert (await node.get("/media/music/../secret.txt")).status == 404
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_directories_and_special_files_are_not_served(media_node: MediaNode) -> None:
    movies = media_node.roots["movies"]
    os.mkfifo(movies / "pipe.mkv")
    os.symlink("/dev/zero", movies / "zero.mkv")  # outside anyway, but a device too
    reference = await reference_404(media_node)
    for attempt in [
        "/media/movies/pipe.mkv",  # opening a FIFO would wait for a writer forever
        "/media/movies/zero.mkv",
        "/media/movies/Film%20(2001)",
        "/media/movies/Film%20(2001)/",
    ]:
        assert_plain_404(await media_node.get(attempt), reference, attempt)
    listing = await media_node.get("/api/v1/libraries/movies/items")
    assert "pipe.mkv" not in {item["name"] for item in listing.json()["items"]}


@pytest_twisted.ensureDeferred
async def test_the_listing_refuses_traversal_too(media_node: MediaNode) -> None:
    plant_secret(media_node)
    for path in ["..", "../..", "a/../..", "/..", "Film (2001)/../..", "%2e%2e", "..%2F"]:
        from urllib.parse import quote

        answer = await media_node.get(f"/api/v1/libraries/movies/items?path={quote(path)}")
        assert answer.status == 404, path
    # Absolute-looking paths are relative to the root.
    etc = await media_node.get("/api/v1/libraries/movies/items?path=/etc")
    assert etc.status == 404
