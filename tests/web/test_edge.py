"""
What reaches a route (docs/api.md, "What reaches a route"): an origin-form
target starting with ``/``, printable ASCII and valid UTF-8 once decoded, one
ASCII ``Host``, a ``Content-Length`` of at most 18 digits, ``chunked`` alone
as a transfer coding. Anything else is refused in the channel, before a
route, an admission or a body cap sees it: the JSON error with an
X-Request-ID, one access line, never a ``critical`` line.

Also here: the reason phrase of codes Twisted does not know, the Server
header, and query parameters split on ``&`` only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from revenge.metrics import Metrics
from revenge.testing import RawAnswer, connect_raw, has_full_response, parse_response
from revenge.web import ApiError, HealthChecks, RevengeApp, RevengeSite, json_body
from revenge.web._request import SERVER_HEADER


@dataclass
class EdgeSite:
    port: int
    # What ran: route handlers and admissions, by name.
    ran: list[str] = field(default_factory=list)
    args_seen: list[dict[bytes, list[bytes]]] = field(default_factory=list)


@pytest_twisted.async_yield_fixture
async def edge() -> AsyncIterator[EdgeSite]:
    metrics = Metrics()
    app = RevengeApp(HealthChecks(reactor), metrics)
    running = EdgeSite(0)

    async def admit(request: Any, url_args: Mapping[str, Any]) -> None:
        running.ran.append("admission")

    @app.route("/upload/<name>", methods=["PUT"], admit=admit)
    def upload(request: Any, name: str) -> bytes:
        running.ran.append("upload")
        return json_body(request, 201, {"size": len(request.content.read())})

    @app.route("/echo", methods=["GET", "POST"])
    def echo(request: Any) -> bytes:
        running.ran.append("echo")
        running.args_seen.append(dict(request.args))
        return json_body(request, 200, {"path": request.path.decode()})

    @app.route("/busy")
    def busy(request: Any) -> bytes:
        raise ApiError(429, "too_many", "slow down", {b"Retry-After": b"1"})

    site = RevengeSite(app.resource(), metrics, body_limit=app.body_limit)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    running.port = port.getHost().port
    try:
        yield running
    finally:
        await port.stopListening()


async def exchange(edge: EdgeSite, raw: bytes) -> tuple[RawAnswer, bytes]:
    """Send ``raw``; the answer once it is complete (or the connection closed)."""
    connection = await connect_raw(edge.port)
    connection.send(raw)
    received = await connection.wait_for(has_full_response, "a complete response")
    connection.close()
    return parse_response(received), received


def assert_json_error(answer: RawAnswer, status: int, code: str = "bad_request") -> None:
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    body = json.loads(answer.body)
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == answer.headers["x-request-id"]
    assert body["error"]["message"]


def no_critical_lines(captured_log: Any) -> None:
    levels = {record.get("level") for record in captured_log.records}
    assert "critical" not in levels and "error" not in levels, captured_log.records


REFUSED_REQUEST_LINES = [
    # Finding 1: routed without a leading slash.
    b"GET Xecho HTTP/1.1",
    b"GET echo HTTP/1.1",
    b"GET Xapi/v1/openapi.json HTTP/1.1",
    # Finding 8: asterisk-form.
    b"GET * HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    # Finding 5: not UTF-8 once decoded, or not ASCII at all.
    b"GET /%ff HTTP/1.1",
    b"GET /echo?q=%c3%28 HTTP/1.1",
    b"GET /\x80 HTTP/1.1",
    b"GET /caf\xc3\xa9 HTTP/1.1",
    b"GET https://:/ HTTP/1.1" + b"\x7f",
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("request_line", REFUSED_REQUEST_LINES)
async def test_a_target_that_is_not_an_ascii_path_is_refused(
    edge: EdgeSite, captured_log: Any, request_line: bytes
) -> None:
    answer, _ = await exchange(edge, request_line + b"\r\nHost: x\r\n\r\n")
    assert_json_error(answer, 400)
    assert edge.ran == []
    access = captured_log.matching(namespace="revenge.access")
    assert [line["status"] for line in access] == [400]
    no_critical_lines(captured_log)


@pytest_twisted.ensureDeferred
async def test_an_upload_without_a_leading_slash_is_neither_admitted_nor_read(
    edge: EdgeSite,
) -> None:
    connection = await connect_raw(edge.port)
    connection.send(
        b"PUT Xupload/alice HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    received = await connection.wait_closed()
    assert b"100 Continue" not in received
    assert_json_error(parse_response(received), 400)
    assert edge.ran == []


@pytest_twisted.ensureDeferred
async def test_absolute_form_is_served_as_its_path(edge: EdgeSite) -> None:
    answer, _ = await exchange(
        edge, b"GET http://example.com/echo?a=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    )
    assert answer.status == 200
    assert json.loads(answer.body) == {"path": "/echo"}
    assert edge.args_seen == [{b"a": [b"1"]}]


REFUSED_HEADERS = [
    # Finding 2: Python would refuse to int() this; Twisted let it raise.
    b"Content-Length: " + b"9" * 5000,
    b"Content-Length: 1" + b"0" * 18,
    b"Content-Length: " + b"0" * 5000,  # no significant digit, still 5000 for int()
    b"Content-Length: 0000000000000000007",
    b"Content-Length: \xd9\xa3",  # an Arabic-Indic 3: a digit to str.isdigit
    # Finding 5: the Host header is decoded by Klein.
    b"Host: \xff",
    b"Host: a b",
    # The router IDNA-encodes the host: a label over 63 characters was a 500.
    b"Host: " + b"a" * 64,
    b"Host: a..b:80",
    b"Host: x\r\nHost: y",
    # Finding 8: identity after chunked was taken as chunked.
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
    b"Transfer-Encoding: identity",
    b"Transfer-Encoding: gzip, chunked",
    # Two framings: which one a proxy in front believes is anyone's guess.
    b"Content-Length: 5\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5",
    b"Content-Length: 5\r\nContent-Length: 5",
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("header", REFUSED_HEADERS)
async def test_framing_headers_out_of_bounds_are_refused(
    edge: EdgeSite, captured_log: Any, header: bytes
) -> None:
    host = b"" if header.startswith(b"Host") else b"Host: x\r\n"
    answer, _ = await exchange(edge, b"POST /echo HTTP/1.1\r\n" + host + header + b"\r\n\r\n")
    assert_json_error(answer, 400)
    assert edge.ran == []
    assert [line["status"] for line in captured_log.matching(namespace="revenge.access")] == [400]
    no_critical_lines(captured_log)


@pytest_twisted.ensureDeferred
async def test_eighteen_digits_of_content_length_are_a_length(edge: EdgeSite) -> None:
    # Well-formed, over the route's cap: the cap's 413, not a 400.
    answer, _ = await exchange(
        edge, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999\r\n\r\n"
    )
    assert_json_error(answer, 413, "too_large")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("method", [b"get", b"Delete", b"FOO", b"TRACE", b"CONNECT"])
async def test_a_method_no_route_is_written_for_is_501(
    edge: EdgeSite, captured_log: Any, method: bytes
) -> None:
    # Methods are case-sensitive; the router would take "get" for GET.
    answer, received = await exchange(edge, method + b" /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert_json_error(answer, 501, "not_implemented")
    assert edge.ran == []
    no_critical_lines(captured_log)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"HEAD Xecho HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"HEAD /\xff\xff HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"HEAD /echo HTTP/1.1\r\nHost: \xff\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        # Refused before the line has even ended.
        (b"HEAD /" + b"a" * 20000, b"HTTP/1.1 414 Request-URI Too Long"),
    ],
)
async def test_a_refused_head_has_no_body(
    edge: EdgeSite, request_bytes: bytes, status_line: bytes
) -> None:
    connection = await connect_raw(edge.port)
    connection.send(request_bytes)
    received = await connection.wait_closed()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(status_line + b"\r\n")
    assert b"Content-Length: " in head
    assert body == b""


@pytest_twisted.ensureDeferred
async def test_a_code_twisted_does_not_know_gets_its_reason_phrase(edge: EdgeSite) -> None:
    answer, received = await exchange(edge, b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert_json_error(answer, 429, "too_many")


@pytest_twisted.ensureDeferred
async def test_the_server_header_names_no_version(edge: EdgeSite) -> None:
    served, _ = await exchange(edge, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    refused, _ = await exchange(edge, b"GET echo HTTP/1.1\r\nHost: x\r\n\r\n")
    missing, _ = await exchange(edge, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    for answer in (served, refused, missing):
        assert answer.headers["server"] == SERVER_HEADER.decode()


@pytest_twisted.ensureDeferred
async def test_only_ampersands_separate_query_parameters(edge: EdgeSite) -> None:
    answer, _ = await exchange(
        edge,
        b"GET /echo?a=1;token=secret&b=%3B&c=&d&%C2%80=x+y HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert answer.status == 200
    assert edge.args_seen == [
        {b"a": [b"1;token=secret"], b"b": [b";"], b"c": [b""], b"\xc2\x80": [b"x y"]}
    ]
