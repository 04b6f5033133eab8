"""
Limits against abusive clients (docs/operations.md, "Limits"): the size and
number of request headers, slow headers and slow bodies, idle connections,
body caps on every route of a node, and concurrent uploads per user.

Every refusal is the usual JSON error with an X-Request-ID, the connection
then closes, and the server goes on serving.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from revenge.avatars._uploads import MAX_UPLOADS_PER_USER, UPLOAD_RETRY_AFTER_SECONDS
from revenge.metrics import Metrics
from revenge.testing import (
    CONTINUE_LINE,
    RawAnswer,
    RawConnection,
    connect_raw,
    has_full_response,
    parse_response,
)
from revenge.web import (
    HealthChecks,
    RevengeApp,
    RevengeSite,
    json_body,
)
from revenge.web._app import DEFAULT_MAX_BODY_BYTES
from revenge.web._request import MAX_HEADER_BYTES, MAX_HEADERS

# Every wait below is for something to happen, with this as its deadline.
DEADLINE = 15.0
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


def is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False


# -- a small app behind a RevengeSite with short timeouts ---------------------------


@dataclass
class LimitedSite:
    port: int
    site: RevengeSite
    metrics: Metrics
    routed: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refusals(self, status: int) -> float:
        value = self.metrics.registry.get_sample_value(
            "revenge_http_requests_total",
            {"method": "GET", "route": "unmatched", "status": str(status)},
        )
        return value or 0.0


async def start_site(**site_options: Any) -> tuple[LimitedSite, Any]:
    metrics = Metrics()
    app = RevengeApp(HealthChecks(reactor), metrics)
    routed: list[str] = []

    @app.route("/echo", methods=["GET", "PUT"])
    def echo(request: Any) -> bytes:
        body = request.content.read()
        routed.append(request.method.decode())
        return json_body(request, 200, {"size": len(body)})

    site = RevengeSite(app.resource(), metrics, body_limit=app.body_limit, **site_options)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    return LimitedSite(port.getHost().port, site, metrics, routed), port


@pytest_twisted.async_yield_fixture
async def limited() -> AsyncIterator[LimitedSite]:
    """Short slow-client limits (fractions of a second) so tests end quickly."""
    running, port = await start_site(timeout=0.5, headers_timeout=0.4, min_body_rate=1000.0)
    try:
        yield running
    finally:
        await port.stopListening()


async def still_serves(running: LimitedSite) -> None:
    response = await treq.get(running.url + "/echo", headers={"X-Request-ID": "after"})
    assert response.code == 200
    assert response.headers.getRawHeaders("X-Request-ID") == ["after"]
    await treq.content(response)


async def refused(running: LimitedSite, request: bytes) -> RawAnswer:
    connection = await connect_raw(running.port)
    connection.send(request)
    raw = await connection.wait_closed()
    answer = parse_response(raw)
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.error["request_id"] == answer.headers["x-request-id"]
    return answer


# -- header size and count ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_headers_over_the_total_size_get_431(limited: LimitedSite, captured_log: Any) -> None:
    padding = "".join(f"X-Pad-{n}: {'p' * 1000}\r\n" for n in range(MAX_HEADER_BYTES // 1000 + 1))
    request = f"GET /echo HTTP/1.1\r\nHost: x\r\nX-Request-ID: big-headers\r\n{padding}\r\n"
    answer = await refused(limited, request.encode())
    assert answer.status == 431
    assert answer.error["code"] == "headers_too_large"
    # Sent before the limit was reached, so the answer carries it.
    assert answer.headers["x-request-id"] == "big-headers"
    assert limited.routed == []
    (line,) = captured_log.matching(namespace="revenge.access", request_id="big-headers")
    assert (line["status"], line["method"], line["route"]) == (431, "GET", "unmatched")
    assert limited.refusals(431) == 1
    await still_serves(limited)


@pytest_twisted.ensureDeferred
async def test_one_endless_header_line_gets_431_without_waiting_for_its_end(
    limited: LimitedSite,
) -> None:
    connection = await connect_raw(limited.port)
    connection.send(b"GET /echo HTTP/1.1\r\nX-Endless: " + b"e" * (MAX_HEADER_BYTES + 10))
    answer = parse_response(await connection.wait_closed())
    assert answer.status == 431
    assert is_uuid4(answer.headers["x-request-id"])
    await still_serves(limited)


@pytest_twisted.ensureDeferred
async def test_a_request_line_over_the_size_gets_414(limited: LimitedSite) -> None:
    answer = await refused(limited, b"GET /" + b"u" * MAX_HEADER_BYTES + b" HTTP/1.1\r\n\r\n")
    assert answer.status == 414
    assert answer.error["code"] == "uri_too_long"
    await still_serves(limited)


@pytest_twisted.ensureDeferred
async def test_more_headers_than_allowed_get_431(limited: LimitedSite) -> None:
    many = "".join(f"X-H{n}: v\r\n" for n in range(MAX_HEADERS + 1))
    answer = await refused(limited, f"GET /echo HTTP/1.1\r\n{many}\r\n".encode())
    assert answer.status == 431
    assert answer.error["code"] == "too_many_headers"
    # Exactly as many is fine (with Host and Connection).
    fewer = "".join(f"X-H{n}: v\r\n" for n in range(MAX_HEADERS - 2))
    connection = await connect_raw(limited.port)
    connection.send(f"GET /echo HTTP/1.1\r\nHost: x\r\n{fewer}Connection: close\r\n\r\n".encode())
    assert parse_response(await connection.wait_closed()).status == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NONSENSE\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nContent-Length: twelve\r\n\r\n",
        b"PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request line", "header line", "content length", "chunk size"],
)
@pytest_twisted.ensureDeferred
async def test_malformed_requests_get_a_json_400(
    limited: LimitedSite, request_bytes: bytes
) -> None:
    # Twisted's own answer would be a bare "400 Bad Request" without an id.
    answer = await refused(limited, request_bytes)
    assert answer.status == 400
    assert answer.error["code"] == "bad_request"
    assert limited.routed == []
    await still_serves(limited)


# -- slow clients -------------------------------------------------------------------


async def trickle(connection: RawConnection, data: bytes, interval: float = 0.02) -> LoopingCall:
    """Send ``data`` one byte every ``interval`` seconds (a slowloris client)."""
    remaining = [data]

    def send_one() -> None:
        if not remaining[0] or connection.closed.called:
            sender.stop()
            return
        connection.send(remaining[0][:1])
        remaining[0] = remaining[0][1:]

    sender = LoopingCall(send_one)
    sender.start(interval)
    return sender


@pytest_twisted.ensureDeferred
async def test_headers_sent_byte_by_byte_are_cut_off(limited: LimitedSite) -> None:
    # Each byte resets the idle timeout (0.5 s), so only the deadline for the
    # whole header block (0.4 s) can end this; the client would take 40 s.
    headers = b"GET /echo HTTP/1.1\r\nX-Slow: " + b"s" * 2000 + b"\r\n\r\n"
    connection = await connect_raw(limited.port)
    sender = await trickle(connection, headers)
    answer = parse_response(await connection.wait_closed("the slow client to be cut off"))
    if sender.running:
        sender.stop()
    assert answer.status == 408
    assert answer.error["code"] == "request_timeout"
    assert len(connection.received) > 0
    assert limited.routed == []
    await still_serves(limited)


@pytest_twisted.ensureDeferred
async def test_a_body_sent_byte_by_byte_is_cut_off(limited: LimitedSite) -> None:
    # 1000 bytes/s after a 0.4 s grace; this client sends 50 bytes/s.
    connection = await connect_raw(limited.port)
    connection.send(
        b"PUT /echo HTTP/1.1\r\nX-Request-ID: slow-body\r\nContent-Length: 5000\r\n\r\n"
    )
    sender = await trickle(connection, b"b" * 5000)
    answer = parse_response(await connection.wait_closed("the slow upload to be cut off"))
    if sender.running:
        sender.stop()
    assert answer.status == 408
    assert answer.headers["x-request-id"] == "slow-body"
    assert "bytes/s" in answer.error["message"]
    assert limited.routed == []
    await still_serves(limited)


@pytest_twisted.ensureDeferred
async def test_idle_connections_are_closed(limited: LimitedSite) -> None:
    silent = await connect_raw(limited.port)
    # A connection that said nothing is closed without an answer (there was no request).
    assert await silent.wait_closed("the idle connection to be closed") == b""
    kept_alive = await connect_raw(limited.port)
    kept_alive.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    await kept_alive.wait_for(has_full_response, "the response")
    # The same connection, idle after its response, is closed in turn.
    raw = await kept_alive.wait_closed("the idle keep-alive connection to be closed")
    assert parse_response(raw).status == 200


@pytest_twisted.ensureDeferred
async def test_the_default_limits() -> None:
    running, port = await start_site()
    try:
        connection = await connect_raw(running.port)
        connection.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert parse_response(await connection.wait_closed()).status == 200
        assert running.site.headers_timeout == 20.0
        assert running.site.min_body_rate == 1024.0
        protocol = running.site.buildProtocol(None)
        assert (protocol.maxHeaders, protocol.totalHeadersSize) == (100, 16 * 1024)
        assert protocol.headers_timeout == 20.0
    finally:
        await port.stopListening()


def test_the_idle_timeout_is_configured(tmp_path: Any) -> None:
    from revenge.config import load_config
    from revenge.server._server import build_server

    environ = {
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_NODE_ID": "limits",
        "REVENGE_SERVER_IDLE_TIMEOUT": "90s",
    }
    server = build_server(load_config(None, environ, cwd=str(tmp_path)), reactor)
    site = server.service.getServiceNamed("http").site
    assert site.timeOut == 90.0
    assert load_config(None, {}, cwd=str(tmp_path)).server.idle_timeout == 75.0


# -- body caps on every route of a node ------------------------------------------------


def concrete(template: str) -> str:
    return (
        template.replace("<path:path>", "some/file.mkv")
        .replace("<library>", "movies")
        .replace("<name>", "someone")
    )


@pytest_twisted.ensureDeferred
async def test_every_route_refuses_a_body_over_its_cap_unread(running_server: Any) -> None:
    app = running_server.server.app
    port = int(running_server.url.rsplit(":", 1)[1])
    avatar_cap = running_server.server.config.storage.avatar_max_bytes
    checked = []
    for template, methods in app.templates:
        for method in methods:
            path = concrete(template)
            limit = app.body_limit(method.encode(), path.encode())
            assert limit.route == template
            if (template, method) == ("/api/v1/users/<name>/avatar", "PUT"):
                assert limit.max_bytes == avatar_cap
            else:
                assert limit.max_bytes <= DEFAULT_MAX_BODY_BYTES, (method, template)
            connection = await connect_raw(port)
            # Headers only: a 413 that comes back cannot have read the body.
            connection.send(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {limit.max_bytes + 1}\r\n\r\n".encode()
            )
            closed = await connection.wait_closed(f"the 413 of {method} {template}")
            answer = parse_response(closed)
            assert answer.status == 413, (method, template)
            if method != "HEAD":  # whose answers have no body
                assert answer.error["code"] == "too_large"
            checked.append((method, template))
    assert len(checked) >= 16


# -- concurrent uploads per user ---------------------------------------------------------


async def start_upload(port: int, name: str, token: str, request_id: str) -> RawConnection:
    """An avatar upload whose headers are sent and whose body is held back."""
    connection = await connect_raw(port)
    connection.send(
        (
            f"PUT /api/v1/users/{name}/avatar HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(PNG)}\r\nExpect: 100-continue\r\n"
            f"X-Request-ID: {request_id}\r\n\r\n"
        ).encode()
    )
    return connection


async def admitted(connection: RawConnection) -> None:
    """The server says "100 Continue" only once the upload is admitted."""
    await connection.wait_for(lambda raw: raw.startswith(CONTINUE_LINE), "100 Continue")


async def finish_upload(connection: RawConnection) -> RawAnswer:
    connection.send(PNG)
    raw = await connection.wait_for(has_full_response, "the upload's answer")
    connection.close()
    return parse_response(raw)


@pytest_twisted.ensureDeferred
async def test_at_most_two_uploads_per_user_at_a_time(running_server: Any) -> None:
    port = int(running_server.url.rsplit(":", 1)[1])
    alice = await running_server.add_user("alice")
    bob = await running_server.add_user("bob")
    assert MAX_UPLOADS_PER_USER == 2

    held = [await start_upload(port, "alice", alice, f"held-{n}") for n in range(2)]
    for connection in held:
        await admitted(connection)

    # A third, while both are held open: refused before its body is read.
    third = await start_upload(port, "alice", alice, "third")
    answer = parse_response(await third.wait_closed("the third upload to be refused"))
    assert answer.status == 429
    assert answer.headers["retry-after"] == str(UPLOAD_RETRY_AFTER_SECONDS)
    assert answer.error == {
        "code": "too_many_uploads",
        "message": "at most 2 uploads at a time per user; retry once one of them has finished",
        "request_id": "third",
    }
    assert not third.received.startswith(CONTINUE_LINE)

    # Another user is not held up by Alice's uploads.
    reply = await running_server.call(
        "PUT",
        "/api/v1/users/bob/avatar",
        token=bob,
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert reply.status == 201

    # One held upload completes; its slot is free again.
    assert (await finish_upload(held[0])).status == 201
    reply = await running_server.call(
        "PUT",
        "/api/v1/users/alice/avatar",
        token=alice,
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert reply.status == 201

    # The other is abandoned halfway: its slot comes back too.
    held[1].send(PNG[:100])
    held[1].close()
    await held[1].wait_closed()
    again = [await start_upload(port, "alice", alice, f"again-{n}") for n in range(2)]
    for connection in again:
        await admitted(connection)
    for connection in again:
        assert (await finish_upload(connection)).status == 201


@pytest_twisted.ensureDeferred
async def test_an_upload_without_a_valid_token_is_refused_before_its_body(
    running_server: Any,
) -> None:
    port = int(running_server.url.rsplit(":", 1)[1])
    await running_server.add_user("carol")
    other = await running_server.add_user("dave")
    for token, status in [("rvg_0000000000000000_" + "x" * 43, 401), (other, 403)]:
        connection = await start_upload(port, "carol", token, "unwelcome")
        answer = parse_response(await connection.wait_closed("the upload to be refused"))
        assert answer.status == status
        assert answer.error["request_id"] == "unwelcome"
        assert not connection.received.startswith(CONTINUE_LINE)


@pytest_twisted.ensureDeferred
async def test_an_upload_sent_without_waiting_is_admitted_too(running_server: Any) -> None:
    # Most clients send the body at once; the route runs once it is admitted.
    eve = await running_server.add_user("eve")
    replies = [
        running_server.call(
            "PUT",
        "/api/v1/users/eve/avatar",
        token=eve,
        data=PNG,
        headers={"Content-Type": "image/png"},
        )
        for _ in range(2)
    ]
    for reply in replies:
        assert (await reply).status == 201
