"""``GET``/``HEAD /media/...`` against a running node: ranges, validators, HEAD, auth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest_twisted

from revenge.media._http import http_date
from revenge.testing import eventually

from .helpers import DEADLINE_S, SAMPLE, SAMPLE_SIZE, Answer, MediaNode

FILE = "/media/movies/sample.bin"


def assert_file_headers(answer: Answer) -> None:
    assert answer.header("Accept-Ranges") == "bytes"
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert (answer.header("ETag") or "").startswith('"')
    assert answer.header("Last-Modified") is not None
    assert answer.header("X-Request-ID")


@pytest_twisted.ensureDeferred
async def test_whole_file(media_node: MediaNode) -> None:
    answer = await media_node.get(FILE)
    assert answer.status == 200
    assert answer.body == SAMPLE
    assert answer.header("Content-Length") == str(SAMPLE_SIZE)
    assert answer.header("Content-Range") is None
    assert_file_headers(answer)


@pytest_twisted.ensureDeferred
async def test_nested_file_with_an_encoded_space(media_node: MediaNode) -> None:
    answer = await media_node.get("/media/movies/Film%20(2001)/film.mkv")
    assert answer.status == 200
    assert answer.body == SAMPLE
    assert answer.header("Content-Type") == "video/x-matroska"


@pytest_twisted.ensureDeferred
async def test_range_edge_cases(media_node: MediaNode) -> None:
    last = SAMPLE_SIZE - 1
    cases = [
        ("bytes=0-0", 0, 0),  # the first byte
        (f"bytes={last}-{last}", last, last),  # the last byte
        ("bytes=-1", last, last),  # suffix: the last byte
        ("bytes=-500", SAMPLE_SIZE - 500, last),
        (f"bytes=-{SAMPLE_SIZE * 3}", 0, last),  # suffix longer than the file
        ("bytes=9000-", 9000, last),  # open-ended
        (f"bytes=100-{SAMPLE_SIZE * 5}", 100, last),  # last past the end: clipped
        ("bytes=10-19,30-39", 10, 39),  # several: one part spanning them
    ]
    for header, first, final in cases:
        answer = await media_node.get(FILE, headers={"Range": header})
        assert answer.status == 206, header
        assert answer.header("Content-Range") == f"bytes {first}-{final}/{SAMPLE_SIZE}", header
        assert answer.header("Content-Length") == str(final - first + 1), header
        assert answer.body == SAMPLE[first : final + 1], header
        assert_file_headers(answer)


@pytest_twisted.ensureDeferred
async def test_ranges_past_the_end_are_416(media_node: MediaNode) -> None:
    for header in [f"bytes={SAMPLE_SIZE}-", f"bytes={SAMPLE_SIZE + 10}-{SAMPLE_SIZE + 20}", "bytes=-0"]:
        answer = await media_node.get(FILE, headers={"Range": header})
        assert answer.status == 416, header
        assert answer.header("Content-Range") == f"bytes */{SAMPLE_SIZE}"
        assert answer.json()["error"]["code"] == "range_not_satisfiable"


@pytest_twisted.ensureDeferred
async def test_malformed_ranges_get_the_whole_file(media_node: MediaNode) -> None:
    for header in ["bytes=abc", "bytes=20-10", "bytes=", "pages=1-2", "bytes=1-2-3"]:
        answer = await media_node.get(FILE, headers={"Range": header})
        assert answer.status == 200, header
        assert answer.body == SAMPLE, header


@pytest_twisted.ensureDeferred
async def test_an_empty_file(media_node: MediaNode) -> None:
    plain = await media_node.get("/media/movies/empty.mp4")
    assert (plain.status, plain.body, plain.header("Content-Length")) == (200, b"", "0")
    ranged = await media_node.get("/media/movies/empty.mp4", headers={"Range": "bytes=0-"})
    assert (ranged.status, ranged.body) == (200, b"")


@pytest_twisted.ensureDeferred
async def test_head_has_the_headers_and_no_body(media_node: MediaNode) -> None:
    get = await media_node.get(FILE)
    head = await media_node.request("HEAD", FILE)
    assert head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == str(SAMPLE_SIZE)
    for name in ("ETag", "Last-Modified", "Content-Type", "Accept-Ranges"):
        assert head.header(name) == get.header(name), name
    # Range is defined for GET only: HEAD describes the whole file.
    ranged = await media_node.request("HEAD", FILE, headers={"Range": "bytes=0-9"})
    assert ranged.status == 200
    assert ranged.header("Content-Length") == str(SAMPLE_SIZE)


@pytest_twisted.ensureDeferred
async def test_not_modified_by_etag(media_node: MediaNode) -> None:
    etag = (await media_node.get(FILE)).header("ETag")
    assert etag is not None
    for header in [etag, f'"nope", {etag}', f"W/{etag}", "*"]:
        answer = await media_node.get(FILE, headers={"If-None-Match": header})
        assert answer.status == 304, header
        assert answer.body == b""
        assert answer.header("ETag") == etag
    changed = await media_node.get(FILE, headers={"If-None-Match": '"something-else"'})
    assert changed.status == 200 and changed.body == SAMPLE
    head = await media_node.request("HEAD", FILE, headers={"If-None-Match": etag})
    assert head.status == 304


@pytest_twisted.ensureDeferred
async def test_not_modified_by_date(media_node: MediaNode) -> None:
    answer = await media_node.get(FILE)
    last_modified = answer.header("Last-Modified")
    assert last_modified is not None
    unchanged = await media_node.get(FILE, headers={"If-Modified-Since": last_modified})
    assert unchanged.status == 304 and unchanged.body == b""
    mtime = int(os.stat(media_node.roots["movies"] / "sample.bin").st_mtime)
    older = await media_node.get(FILE, headers={"If-Modified-Since": http_date(mtime - 60)})
    assert older.status == 200 and older.body == SAMPLE
    # If-None-Match decides when both are sent.
    both = await media_node.get(
        FILE, headers={"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    )
    assert both.status == 200


@pytest_twisted.ensureDeferred
async def test_a_rewritten_file_has_a_new_etag(media_node: MediaNode) -> None:
    path: Path = media_node.roots["movies"] / "sample.bin"
    before = (await media_node.get(FILE)).header("ETag")
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 1_000_000_000))
    after = await media_node.get(FILE, headers={"If-None-Match": before or ""})
    assert after.status == 200
    assert after.header("ETag") != before


@pytest_twisted.ensureDeferred
async def test_if_range(media_node: MediaNode) -> None:
    first = await media_node.get(FILE)
    etag, last_modified = first.header("ETag"), first.header("Last-Modified")
    assert etag and last_modified
    matching = await media_node.get(FILE, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert matching.status == 206 and matching.body == SAMPLE[:10]
    by_date = await media_node.get(FILE, headers={"Range": "bytes=0-9", "If-Range": last_modified})
    assert by_date.status == 206
    for stale in ['"stale"', f"W/{etag}", http_date(0)]:
        answer = await media_node.get(FILE, headers={"Range": "bytes=0-9", "If-Range": stale})
        assert answer.status == 200, stale
        assert answer.body == SAMPLE, stale


@pytest_twisted.ensureDeferred
async def test_precondition_failed(media_node: MediaNode) -> None:
    answer = await media_node.get(FILE, headers={"If-Match": '"not-it"'})
    assert answer.status == 412
    etag = (await media_node.get(FILE)).header("ETag") or ""
    assert (await media_node.get(FILE, headers={"If-Match": etag})).status == 200


@pytest_twisted.ensureDeferred
async def test_content_types(media_node: MediaNode) -> None:
    root = media_node.roots["movies"]
    expected = {
        "a.mkv": "video/x-matroska",
        "a.mp4": "video/mp4",
        "a.webm": "video/webm",
        "a.mp3": "audio/mpeg",
        "a.flac": "audio/flac",
        "a.srt": "application/x-subrip",
        "a.vtt": "text/vtt; charset=utf-8",
        "a.JPG": "image/jpeg",
        "a.png": "image/png",
        "a.nfo": "text/plain",
        "a.html": "application/octet-stream",
        "noextension": "application/octet-stream",
    }
    for name in expected:
        (root / name).write_bytes(b"x")
    for name, content_type in expected.items():
        answer = await media_node.get(f"/media/movies/{name}")
        assert answer.status == 200, name
        assert answer.header("Content-Type") == content_type, name
        assert answer.header("X-Content-Type-Options") == "nosniff"


@pytest_twisted.ensureDeferred
async def test_authentication_is_required(media_node: MediaNode) -> None:
    anonymous = await media_node.get(FILE, token=None)
    assert anonymous.status == 401
    assert (anonymous.header("WWW-Authenticate") or "").startswith("Bearer")
    wrong = await media_node.get(FILE, token="rvg_not_a_real_token")
    assert wrong.status == 401
    # Unauthenticated callers learn nothing about what exists.
    missing = await media_node.get("/media/movies/no-such-file.mkv", token=None)
    assert missing.status == 401
    assert (await media_node.get("/media/nope/x", token=None)).status == 401


@pytest_twisted.ensureDeferred
async def test_a_token_in_the_query_for_players(media_node: MediaNode, captured_log: Any) -> None:
    token = media_node.token
    answer = await media_node.get(f"{FILE}?token={token}", token=None)
    assert answer.status == 200 and answer.body == SAMPLE
    ranged = await media_node.get(f"{FILE}?token={token}", token=None, headers={"Range": "bytes=-2"})
    assert ranged.status == 206 and ranged.body == SAMPLE[-2:]
    bad = await media_node.get(f"{FILE}?token=rvg_forged", token=None)
    assert bad.status == 401
    twice = await media_node.get(f"{FILE}?token={token}&token={token}", token=None)
    assert twice.status == 401
    # The query token works for /media only, not for the API.
    api = await media_node.get(f"/api/v1/libraries?token={token}", token=None)
    assert api.status == 401
    access = captured_log.matching(namespace="revenge.access")
    assert access, "no access log lines were captured"
    assert token not in repr(captured_log.records)
    assert any(record.get("path") == FILE for record in access)


@pytest_twisted.ensureDeferred
async def test_the_other_libraries(media_node: MediaNode) -> None:
    second = await media_node.get("/media/movies-2/other.mp4")
    assert (second.status, second.body) == (200, b"second root")
    tv = await media_node.get("/media/tv/show.webm")
    assert (tv.status, tv.body, tv.header("Content-Type")) == (200, b"tv", "video/webm")
    # Each library only sees its own root.
    assert (await media_node.get("/media/movies/other.mp4")).status == 404


@pytest_twisted.ensureDeferred
async def test_a_file_larger_than_a_chunk_streams_whole(media_node: MediaNode) -> None:
    # Random, so that chunks sent out of order or twice cannot go unnoticed.
    data = os.urandom(5 * 1024 * 1024 + 123)
    (media_node.roots["movies"] / "large.mp4").write_bytes(data)
    whole = await media_node.get("/media/movies/large.mp4")
    assert whole.status == 200 and whole.body == data
    middle = await media_node.get(
        "/media/movies/large.mp4", headers={"Range": "bytes=1048570-3145740"}
    )
    assert middle.status == 206 and middle.body == data[1048570:3145741]


def open_descriptors_of(path: Path) -> int:
    """How many descriptors this process (the in-process server) has open on ``path``."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                count += 1
        except OSError:
            continue
    return count


def stream_partially(port: int, token: str, path: str, then: Any) -> tuple[int, int]:
    """
    GET ``path``, read the headers and 64 KiB, call ``then()``, read on
    until the server closes (or resets) the connection; returns
    (Content-Length, body bytes received).
    """
    import socket

    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.settimeout(30)
    client.connect(("127.0.0.1", port))
    try:
        client.sendall(
            f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += client.recv(4096)
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        got = len(body)
        while got < 64 * 1024:
            got += len(client.recv(65536))
        if then() == "close":
            return length, got
        try:
            while chunk := client.recv(65536):
                got += len(chunk)
        except ConnectionResetError:
            pass  # an aborted connection ends like this
        return length, got
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_a_client_that_goes_away_releases_the_file(media_node: MediaNode) -> None:
    from twisted.internet.threads import deferToThread

    path = media_node.roots["movies"] / "long.mkv"
    with path.open("wb") as file:
        file.truncate(64 * 1024 * 1024)
    length, got = await deferToThread(
        stream_partially, media_node.port, media_node.token, "/media/movies/long.mkv", lambda: "close"
    )
    assert length == 64 * 1024 * 1024 and got < length
    await eventually(
        lambda: open_descriptors_of(path) == 0, "the file to be closed", timeout=DEADLINE_S
    )
    # The node is fine afterwards.
    assert (await media_node.get("/media/movies/sample.bin")).body == SAMPLE


@pytest_twisted.ensureDeferred
async def test_a_file_that_shrinks_mid_stream_cuts_the_response_short(
    media_node: MediaNode, captured_log: Any
) -> None:
    from twisted.internet.threads import deferToThread

    path = media_node.roots["movies"] / "shrinking.mkv"
    with path.open("wb") as file:
        file.truncate(64 * 1024 * 1024)

    def shrink() -> None:
        with path.open("r+b") as file:
            file.truncate(1024 * 1024)

    length, got = await deferToThread(
        stream_partially, media_node.port, media_node.token, "/media/movies/shrinking.mkv", shrink
    )
    # Fewer bytes than promised, then the connection closed: the client knows.
    assert length == 64 * 1024 * 1024 and got < length
    warnings = await eventually(
        lambda: [r for r in captured_log.matching(namespace="revenge.media") if "cut short" in r["message"]],
        "the cut-short warning",
        timeout=DEADLINE_S,
    )
    assert "movies/shrinking.mkv" in warnings[0]["message"]
    await eventually(
        lambda: open_descriptors_of(path) == 0, "the file to be closed", timeout=DEADLINE_S
    )


@pytest_twisted.ensureDeferred
async def test_files_are_closed_after_whole_and_partial_answers(media_node: MediaNode) -> None:
    path = media_node.roots["movies"] / "sample.bin"
    await media_node.get(FILE)
    await media_node.get(FILE, headers={"Range": "bytes=0-0"})
    await media_node.request("HEAD", FILE)
    await media_node.get(FILE, headers={"Range": "bytes=999999-"})
    etag = (await media_node.get(FILE)).header("ETag") or ""
    await media_node.get(FILE, headers={"If-None-Match": etag})
    await eventually(
        lambda: open_descriptors_of(path) == 0,
        "every descriptor to be closed",
        timeout=DEADLINE_S,
    )


@pytest_twisted.ensureDeferred
async def test_what_is_streamed_is_counted_by_library(media_node: MediaNode) -> None:
    metrics = media_node.server.metrics

    def sample(name: str) -> float | None:
        value: float | None = metrics.registry.get_sample_value(name, {"library": "movies"})
        return value

    before = sample("revenge_media_bytes_sent_total") or 0.0
    whole = await media_node.get(FILE)
    part = await media_node.get(FILE, headers={"Range": "bytes=100-199"})
    head = await media_node.request("HEAD", FILE)
    assert (whole.status, part.status, head.status) == (200, 206, 200)
    # A HEAD sends no body, so it adds nothing.
    assert sample("revenge_media_bytes_sent_total") == before + SAMPLE_SIZE + 100
    assert sample("revenge_media_streams_active") == 0
