"""
What a client sends to the media routes that they must not take at face
value (issue 14 findings): hidden names, positions of thousands of digits,
cursors nested thousands deep, and a token smuggled after a ``;``.
"""

from __future__ import annotations

import base64

import pytest_twisted

from .helpers import MediaNode


HIDDEN_PATHS = [
    "/media/movies/.hidden.mkv",
    "/media/movies/.snapshot/hourly.0/old.mkv",
    "/media/movies/%2esnapshot/hourly.0/old.mkv",
    "/api/v1/libraries/movies/items?path=.snapshot",
    "/api/v1/libraries/movies/items?path=.snapshot/hourly.0",
]


@pytest_twisted.ensureDeferred
async def test_hidden_names_are_not_served_though_they_exist(media_node: MediaNode) -> None:
    root = media_node.roots["movies"]
    (root / ".hidden.mkv").write_bytes(b"secret")
    (root / ".snapshot" / "hourly.0").mkdir(parents=True)
    (root / ".snapshot" / "hourly.0" / "old.mkv").write_bytes(b"deleted on purpose")
    for path in HIDDEN_PATHS:
        present = await media_node.get(path)
        absent = await media_node.get(
            path.replace("hidden", "nothing").replace("snapshot", "nosuch")
        )
        assert present.status == absent.status == 404, path
        assert present.json()["error"]["message"] == absent.json()["error"]["message"], path
        assert b"secret" not in present.body and b"deleted" not in present.body


HUGE_POSITIONS = [
    ("bytes=" + "9" * 5000 + "-", 416, "bytes */{size}"),
    ("bytes=" + "0" * 5000 + "1-", 206, "bytes 1-{last}/{size}"),
    ("bytes=0-" + "9" * 5000, 206, "bytes 0-{last}/{size}"),
    ("bytes=-" + "9" * 5000, 206, "bytes 0-{last}/{size}"),
]


@pytest_twisted.ensureDeferred
async def test_positions_of_thousands_of_digits(media_node: MediaNode) -> None:
    size = (media_node.roots["movies"] / "sample.bin").stat().st_size
    for header, status, content_range in HUGE_POSITIONS * 3:  # every time, not only once
        answer = await media_node.get("/media/movies/sample.bin", headers={"Range": header})
        assert answer.status == status, header[:20]
        assert answer.header("Content-Range") == content_range.format(size=size, last=size - 1)


@pytest_twisted.ensureDeferred
async def test_a_cursor_nested_thousands_deep_is_a_400(media_node: MediaNode) -> None:
    cursor = base64.urlsafe_b64encode(b"[" * 5000).decode("ascii").rstrip("=")
    answer = await media_node.get(f"/api/v1/libraries/movies/items?cursor={cursor}")
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "bad_request"


@pytest_twisted.ensureDeferred
async def test_a_token_after_a_semicolon_is_not_a_parameter(media_node: MediaNode) -> None:
    user = await media_node.add_user("player")
    good = await media_node.get(f"/media/movies/sample.bin?token={user}", token=None)
    assert good.status == 200
    smuggled = await media_node.get(f"/media/movies/sample.bin?a=1;token={user}", token=None)
    assert smuggled.status == 401
