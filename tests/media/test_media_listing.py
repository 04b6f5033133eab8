"""``GET /api/v1/libraries`` and ``GET /api/v1/libraries/<name>/items``."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest_twisted

from .helpers import SAMPLE, MediaNode


@pytest_twisted.ensureDeferred
async def test_libraries(media_node: MediaNode) -> None:
    answer = await media_node.get("/api/v1/libraries")
    assert answer.status == 200
    assert answer.json() == {
        "libraries": [
            {"name": "movies", "kind": "movies", "available": True, "problem": None},
            {"name": "movies-2", "kind": "movies", "available": True, "problem": None},
            {"name": "tv", "kind": "tv", "available": True, "problem": None},
        ]
    }
    # Host paths are not shown.
    assert str(media_node.roots["movies"]).encode() not in answer.body


@pytest_twisted.ensureDeferred
async def test_an_unavailable_library_is_listed_as_such(media_node: MediaNode) -> None:
    for child in media_node.roots["tv"].iterdir():
        child.unlink()
    answer = await media_node.get("/api/v1/libraries")
    tv = [library for library in answer.json()["libraries"] if library["name"] == "tv"]
    assert tv == [{"name": "tv", "kind": "tv", "available": False, "problem": "empty"}]


@pytest_twisted.ensureDeferred
async def test_listing_needs_a_user(media_node: MediaNode) -> None:
    assert (await media_node.get("/api/v1/libraries", token=None)).status == 401
    assert (await media_node.get("/api/v1/libraries/movies/items", token=None)).status == 401
    assert (await media_node.get("/api/v1/libraries/nope/items", token=None)).status == 401
    user = await media_node.add_user("viewer")
    assert (await media_node.get("/api/v1/libraries", token=user)).status == 200
    assert (await media_node.get("/api/v1/libraries/movies/items", token=user)).status == 200
    assert (await media_node.get("/media/movies/sample.bin", token=user)).status == 200


@pytest_twisted.ensureDeferred
async def test_one_directory_sorted_directories_first(media_node: MediaNode) -> None:
    root = media_node.roots["movies"]
    (root / "b-dir").mkdir()
    (root / "A-dir").mkdir()
    (root / "Zebra.mkv").write_bytes(b"z")
    (root / "apple.mkv").write_bytes(b"apple")
    (root / ".hidden").write_bytes(b"h")
    (root / ".snapshot").mkdir()
    os.utime(root / "apple.mkv", (1_700_000_000, 1_700_000_000))
    answer = await media_node.get("/api/v1/libraries/movies/items")
    assert answer.status == 200
    body = answer.json()
    assert body["library"] == "movies"
    assert body["path"] == ""
    assert body["next_cursor"] is None
    names = [(item["name"], item["type"]) for item in body["items"]]
    assert names == [
        ("A-dir", "dir"),
        ("b-dir", "dir"),
        ("Film (2001)", "dir"),
        ("apple.mkv", "file"),
        ("empty.mp4", "file"),
        ("sample.bin", "file"),
        ("Zebra.mkv", "file"),
    ]
    assert body["total"] == len(names)
    apple = next(item for item in body["items"] if item["name"] == "apple.mkv")
    assert apple == {
        "name": "apple.mkv",
        "type": "file",
        "size": 5,
        "mtime": "2023-11-14T22:13:20Z",
    }
    directory = next(item for item in body["items"] if item["name"] == "A-dir")
    assert directory["size"] is None


@pytest_twisted.ensureDeferred
async def test_a_subdirectory(media_node: MediaNode) -> None:
    for path in ["Film (2001)", "/Film (2001)/", "Film (2001)/"]:
        answer = await media_node.get(f"/api/v1/libraries/movies/items?path={quote(path)}")
        assert answer.status == 200, path
        body = answer.json()
        assert body["path"] == "Film (2001)"
        assert [item["name"] for item in body["items"]] == ["film.mkv"]
        assert body["items"][0]["size"] == len(SAMPLE)


@pytest_twisted.ensureDeferred
async def test_not_found_and_bad_parameters(media_node: MediaNode) -> None:
    for path in [
        "/api/v1/libraries/nope/items",
        "/api/v1/libraries/movies/items?path=no-such-dir",
        "/api/v1/libraries/movies/items?path=sample.bin",  # a file, not a directory
    ]:
        answer = await media_node.get(path)
        assert answer.status == 404, path
        assert answer.json()["error"]["code"] == "not_found"
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=10&limit=20",
        "cursor=not-a-cursor",
        "cursor=%21%21",
        "path=a&path=b",
    ]:
        answer = await media_node.get(f"/api/v1/libraries/movies/items?{query}")
        assert answer.status == 400, query
        assert answer.json()["error"]["code"] == "bad_request", query


@pytest_twisted.ensureDeferred
async def test_pagination_of_a_huge_directory(media_node: MediaNode) -> None:
    big = media_node.roots["tv"] / "Huge"
    big.mkdir()
    count = 2500
    for index in range(count):
        (big / f"episode-{index:05d}.mkv").touch()
    for index in range(5):
        (big / f"season-{index}").mkdir()

    async def page(query: str) -> dict:
        answer = await media_node.get(f"/api/v1/libraries/tv/items?path=Huge{query}")
        assert answer.status == 200, answer.body[:300]
        return answer.json()

    first = await page("")
    assert len(first["items"]) == 200  # the default page size
    assert first["total"] == count + 5
    assert [item["name"] for item in first["items"][:5]] == [f"season-{i}" for i in range(5)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        body = await page(query)
        pages += 1
        assert len(body["items"]) <= 1000
        seen += [item["name"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "the cursor does not advance"
    assert pages == 3
    assert len(seen) == count + 5 and len(set(seen)) == count + 5
    assert seen[5:] == [f"episode-{index:05d}.mkv" for index in range(count)]


@pytest_twisted.ensureDeferred
async def test_a_cursor_survives_changes_between_pages(media_node: MediaNode) -> None:
    root = media_node.roots["tv"] / "Changing"
    root.mkdir()
    for name in ["a", "b", "c", "d", "e", "f"]:
        (root / f"{name}.mkv").touch()
    first = (await media_node.get("/api/v1/libraries/tv/items?path=Changing&limit=3")).json()
    assert [item["name"] for item in first["items"]] == ["a.mkv", "b.mkv", "c.mkv"]
    # An entry before the cursor goes, one after it arrives.
    (root / "a.mkv").unlink()
    (root / "cc.mkv").touch()
    cursor = first["next_cursor"]
    second = (
        await media_node.get(f"/api/v1/libraries/tv/items?path=Changing&limit=3&cursor={cursor}")
    ).json()
    assert [item["name"] for item in second["items"]] == ["cc.mkv", "d.mkv", "e.mkv"]
    assert second["next_cursor"] is not None


@pytest_twisted.ensureDeferred
async def test_names_that_are_not_utf8_are_left_out(media_node: MediaNode) -> None:
    root = media_node.roots["movies"]
    os.close(os.open(os.fsencode(root) + b"/bad-\xff-name.mkv", os.O_CREAT | os.O_WRONLY))
    answer = await media_node.get("/api/v1/libraries/movies/items")
    assert answer.status == 200
    assert all("bad-" not in item["name"] for item in answer.json()["items"])
