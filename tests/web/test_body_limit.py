"""
Request bodies are capped while they arrive: a declared Content-Length over a
route's cap is refused before any body byte is read, a chunked body as soon as
it passes the cap; either way the route never runs and the connection closes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from revenge.metrics import Metrics
from revenge.testing import eventually
from revenge.web import (
    HealthChecks,
    RevengeApp,
    RevengeSite,
    json_body,
)
from revenge.web._app import DEFAULT_MAX_BODY_BYTES, BodyLimit

UPLOAD_CAP = 1000


@dataclass
class CappedApp:
    url: str
    port: int
    app: RevengeApp
    site: RevengeSite
    metrics: Metrics
    received: list[bytes] = field(default_factory=list)


@pytest_twisted.async_yield_fixture
async def capped_app() -> AsyncIterator[CappedApp]:
    metrics = Metrics()
    app = RevengeApp(HealthChecks(reactor), metrics)
    received: list[bytes] = []

    @app.route("/upload/<name>", methods=["PUT"], max_body=UPLOAD_CAP)
    def upload(request: Any, name: str) -> bytes:
        body = request.content.read()
        received.append(body)
        return json_body(request, 200, {"name": name, "size": len(body)})

    @app.route("/json", methods=["POST"])
    def default_capped(request: Any) -> bytes:
        body = request.content.read()
        received.append(body)
        return json_body(request, 200, {"size": len(body)})

    site = RevengeSite(app.resource(), metrics, body_limit=app.body_limit)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    number = port.getHost().port
    try:
        yield CappedApp(f"http://127.0.0.1:{number}", number, app, site, metrics, received)
    finally:
        await port.stopListening()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool


def _parse(raw: bytes, closed: bool) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body, closed)


def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> RawResponse:
    """
    Send ``request`` (maybe an incomplete body) on a fresh connection, never
    send more, and read until the server closes the connection (runs in a
    thread: the reactor serves meanwhile).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        received = b""
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
        return _parse(received, closed)


def _put_head(path: str, request_id: str, extra: str) -> bytes:
    return (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: {request_id}\r\n{extra}\r\n"
    ).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest_twisted.ensureDeferred
async def test_declared_length_over_the_cap_is_refused_before_the_body(capped_app, captured_log):
    # Headers only: the body is never sent, so the answer cannot have waited for it.
    head = _put_head("/upload/a", "too-big-1", f"Content-Length: {UPLOAD_CAP + 1}\r\n")
    response = await deferToThread(raw_exchange, capped_app.port, head)
    assert response.status == 413
    assert response.closed
    assert response.headers["x-request-id"] == "too-big-1"
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == {
        "error": {
            "code": "too_large",
            "message": f"the request body is over the {UPLOAD_CAP} bytes this route accepts",
            "request_id": "too-big-1",
        }
    }
    assert capped_app.received == []
    (line,) = captured_log.matching(namespace="revenge.access", request_id="too-big-1")
    assert line["status"] == 413
    assert line["method"] == "PUT"
    assert line["path"] == "/upload/a"
    assert line["route"] == "/upload/<name>"
    assert line["aborted"] is False
    assert line["bytes"] == len(response.body)
    sample = capped_app.metrics.registry.get_sample_value(
        "revenge_http_requests_total",
        {"method": "PUT", "route": "/upload/<name>", "status": "413"},
    )
    assert sample == 1.0
    assert not capped_app.site.in_flight


@pytest_twisted.ensureDeferred
async def test_chunked_body_is_refused_once_it_passes_the_cap(capped_app, captured_log):
    # Over the cap but never finished: only counting as bytes arrive can answer this.
    head = _put_head("/upload/b", "too-big-2", "Transfer-Encoding: chunked\r\n")
    body = _chunk(b"x" * 600) + _chunk(b"y" * 600)
    response = await deferToThread(raw_exchange, capped_app.port, head + body)
    assert response.status == 413
    assert response.closed
    assert response.headers["x-request-id"] == "too-big-2"
    assert json.loads(response.body)["error"]["code"] == "too_large"
    assert capped_app.received == []
    (line,) = captured_log.matching(namespace="revenge.access", request_id="too-big-2")
    assert line["status"] == 413
    assert line["route"] == "/upload/<name>"


@pytest_twisted.ensureDeferred
async def test_chunked_body_at_the_cap_reaches_the_route(capped_app):
    head = _put_head("/upload/c", "at-cap", "Transfer-Encoding: chunked\r\nConnection: close\r\n")
    body = _chunk(b"x" * 600) + _chunk(b"y" * (UPLOAD_CAP - 600)) + b"0\r\n\r\n"
    response = await deferToThread(raw_exchange, capped_app.port, head + body)
    assert response.status == 200
    assert json.loads(response.body) == {"name": "c", "size": UPLOAD_CAP}
    assert capped_app.received == [b"x" * 600 + b"y" * (UPLOAD_CAP - 600)]


@pytest_twisted.ensureDeferred
async def test_treq_gets_the_413_and_a_body_at_the_cap_passes(capped_app):
    response = await treq.put(capped_app.url + "/upload/d", data=b"z" * (UPLOAD_CAP + 1))
    assert response.code == 413
    assert (await response.json())["error"]["code"] == "too_large"
    response = await treq.put(capped_app.url + "/upload/d", data=b"z" * UPLOAD_CAP)
    assert response.code == 200
    assert (await response.json())["size"] == UPLOAD_CAP
    assert capped_app.received == [b"z" * UPLOAD_CAP]


@pytest_twisted.ensureDeferred
async def test_a_large_upload_still_gets_its_413(capped_app):
    # Megabytes the server never reads: the client must still see the answer.
    response = await treq.post(capped_app.url + "/json", data=b"q" * (8 * DEFAULT_MAX_BODY_BYTES))
    assert response.code == 413
    assert (await response.json())["error"]["code"] == "too_large"
    assert capped_app.received == []


@pytest_twisted.ensureDeferred
async def test_routes_without_a_cap_of_their_own_get_the_default(capped_app):
    over = f"Content-Length: {DEFAULT_MAX_BODY_BYTES + 1}\r\n"
    response = await deferToThread(
        raw_exchange,
        capped_app.port,
        f"POST /json HTTP/1.1\r\nHost: x\r\n{over}\r\n".encode(),
    )
    assert response.status == 413
    # No route at all (this would be a 404): capped just the same, unread.
    response = await deferToThread(
        raw_exchange,
        capped_app.port,
        f"POST /nowhere HTTP/1.1\r\nHost: x\r\n{over}\r\n".encode(),
    )
    assert response.status == 413
    assert capped_app.received == []


@pytest_twisted.ensureDeferred
async def test_no_100_continue_before_the_413(capped_app):
    head = _put_head(
        "/upload/e", "expecting", f"Content-Length: {UPLOAD_CAP * 10}\r\nExpect: 100-continue\r\n"
    )
    response = await deferToThread(raw_exchange, capped_app.port, head)
    # The first (and only) status line is the 413, not "100 Continue".
    assert response.status == 413
    assert b"100 Continue" not in response.body


@pytest_twisted.ensureDeferred
async def test_an_abandoned_upload_is_logged_as_aborted_and_never_routed(
    capped_app, captured_log
):
    def abandon() -> None:
        with socket.create_connection(("127.0.0.1", capped_app.port), timeout=10) as connection:
            connection.sendall(
                _put_head("/upload/f", "abandoned", f"Content-Length: {UPLOAD_CAP}\r\n")
                + b"x" * 100
            )

    await deferToThread(abandon)
    (line,) = await eventually(
        lambda: captured_log.matching(namespace="revenge.access", request_id="abandoned"),
        "the access log line of the abandoned upload",
    )
    assert line["aborted"] is True
    assert line["route"] == "/upload/<name>"
    assert capped_app.received == []
    assert not capped_app.site.in_flight
    sample = capped_app.metrics.registry.get_sample_value(
        "revenge_http_requests_total",
        {"method": "PUT", "route": "/upload/<name>", "status": "aborted"},
    )
    assert sample == 1.0


@pytest_twisted.ensureDeferred
async def test_requests_without_a_body_are_unaffected(capped_app):
    response = await treq.get(capped_app.url + "/healthz", headers={"X-Request-ID": "plain"})
    assert response.code == 200
    assert response.headers.getRawHeaders("X-Request-ID") == ["plain"]
    await treq.content(response)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (b"PUT", b"/upload/abc", BodyLimit("/upload/<name>", UPLOAD_CAP)),
        # Matched as Klein matches: percent-decoded.
        (b"PUT", b"/%75pload/abc", BodyLimit("/upload/<name>", UPLOAD_CAP)),
        (b"GET", b"/upload/abc", BodyLimit(None, DEFAULT_MAX_BODY_BYTES)),
        (b"POST", b"/json", BodyLimit("/json", DEFAULT_MAX_BODY_BYTES)),
        (b"POST", b"/nowhere", BodyLimit(None, DEFAULT_MAX_BODY_BYTES)),
        (b"PUT", b"/upload/%ff", BodyLimit(None, DEFAULT_MAX_BODY_BYTES)),
    ],
)
def test_body_limit_lookup(method, path, expected):
    app = RevengeApp(HealthChecks(reactor), Metrics())

    @app.route("/upload/<name>", methods=["PUT"], max_body=UPLOAD_CAP)
    def upload(request: Any, name: str) -> bytes:
        return b""

    @app.route("/json", methods=["POST"])
    def default_capped(request: Any) -> bytes:
        return b""

    assert app.body_limit(method, path) == expected


def test_a_negative_cap_is_refused():
    app = RevengeApp(HealthChecks(reactor), Metrics())
    with pytest.raises(ValueError):
        app.route("/x", methods=["PUT"], max_body=-1)


@pytest_twisted.ensureDeferred
async def test_a_built_server_caps_bodies_by_route(running_server):
    port = int(running_server.url.rsplit(":", 1)[1])
    # POST /api/v1/users takes the default cap; the avatar route its own.
    over_default = (
        "POST /api/v1/users HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {DEFAULT_MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    response = await deferToThread(raw_exchange, port, over_default)
    assert response.status == 413
    cap = running_server.server.config.storage.avatar_max_bytes
    assert cap > DEFAULT_MAX_BODY_BYTES
    # Over the default but under the avatar cap: read whole and routed (401
    # here, for want of a token), not refused.
    body = b"x" * (DEFAULT_MAX_BODY_BYTES + 1)
    under_avatar_cap = (
        "PUT /api/v1/users/root/avatar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    response = await deferToThread(raw_exchange, port, under_avatar_cap)
    assert response.status == 401
    over_avatar_cap = (
        "PUT /api/v1/users/root/avatar HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {cap + 1}\r\n\r\n"
    ).encode()
    response = await deferToThread(raw_exchange, port, over_avatar_cap)
    assert response.status == 413
    assert json.loads(response.body)["error"]["message"] == (
        f"the request body is over the {cap} bytes this route accepts"
    )
