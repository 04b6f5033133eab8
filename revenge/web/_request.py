"""
The wrapper every response goes through, below Klein.

Klein has no middleware, so the request id, the access log, the HTTP metrics
and the JSON 500 live in a ``Request`` subclass that ``RevengeSite`` builds for
every request. That covers 404s, 405s, unhandled exceptions and resources that
are not Klein's alike.

Request bodies are capped here too. Twisted reads a whole body (into memory or
a temporary file) before any resource runs, so a route cannot refuse one that
is too large: by then it is on disk. Instead the request looks up its route's
cap when its headers are complete (``gotLength``) and counts body bytes as
they arrive (``handleContentChunk``); past the cap it answers 413 at once and
closes the connection, so nothing more is read and the route never runs. A
route may also ask to admit a body before it is read (``RevengeApp.route(...,
admit=...)``): the token check and the per-user upload slots of avatars.

What a client may send before any of that is bounded by ``RevengeChannel``
(docs/operations.md, "Limits"): the size of the request line and headers,
their number, the time they take to arrive, and the rate of a body.
"""

from __future__ import annotations

import contextvars
import io
import json
import time
from http import HTTPStatus
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from revenge.logs import current_request_id
from revenge.web._app import NO_ROUTE_BODY_LIMIT, BodyLimit, Release
from revenge.web._errors import api_error_for, error_body
from revenge.web._request_id import REQUEST_ID_HEADER, choose_request_id
from revenge.web._target import (
    FRAMING_HEADERS,
    KNOWN_METHODS,
    BadRequestLine,
    check_framing_header,
    origin_form,
    query_arguments,
)

if TYPE_CHECKING:
    from revenge.metrics import Metrics

_access_log = Logger(namespace="revenge.access")
_log = Logger(namespace="revenge.web")

# Metric labels; anything else (refused with 501 before it is a request) is
# counted as "other", so a client cannot mint label values.
_METHOD_LABELS = frozenset(method.decode("ascii") for method in KNOWN_METHODS)

UNMATCHED_ROUTE = "unmatched"

# What of Twisted's private HTTP/1.1 parsing state this module uses (it has
# no public hooks for any of it). setup.cfg pins Twisted to the series these
# were checked against; tests/web/test_twisted_internals.py fails, naming the
# member, when an upgrade drops one.
TWISTED_INTERNALS = {
    # Set from the request line until the body is in, then deleted.
    "HTTPChannel (request line state)": ("_command", "_path", "_version"),
    "HTTPChannel": (
        "_handlingRequest",
        "_receivedHeaderSize",
        "_receivedHeaderCount",
        "_abortingCall",
        "_respondToBadRequestAndDisconnect",
        "line_mode",
        "abortTimeout",
        "forceAbortClient",
    ),
    "Request": ("_disconnected",),
}

# Limits on what a client may send (docs/operations.md, "Limits").
# The request line and all header lines together, in bytes; one line alone
# may not be longer either. Twisted's default too; far above what browsers,
# players and proxies send (a long media path with a token is ~1 KiB).
MAX_HEADER_BYTES = 16 * 1024
# Browsers send about 20 headers and proxies add a few; Twisted allows 500.
MAX_HEADERS = 100
# The request line and headers must all be in this many seconds after their
# first byte. The idle timeout alone does not bound them: every byte resets
# it, so a client trickling a byte at a time would hold the connection forever.
HEADERS_TIMEOUT = 20.0
# A body, after the same grace, must keep up this average rate: 1 KiB/s lets a
# phone on a poor link send a 5 MiB avatar (in 85 minutes) and cuts off a
# client that sends a byte now and then to keep its connection.
MIN_BODY_BYTES_PER_SECOND = 1024.0

# What the Server header of every response says: the software, not its version.
SERVER_HEADER = b"Revenge"


def _reason_phrase(code: int) -> bytes:
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return RESPONSES.get(code, b"Unknown Status")


class RevengeRequest(Request):
    """A request that knows its id and route template, and logs itself once."""

    request_id: str = ""
    # Set by the route that handles the request (RevengeApp.route); a label
    # for metrics and logs that never contains client-chosen path segments.
    route_template: str | None = None
    _revenge_site: RevengeSite | None = None
    _recorded = False
    _max_body_bytes = NO_ROUTE_BODY_LIMIT.max_bytes
    _body_received = 0
    # Set once the body was refused (413, an admission's answer, 408): the
    # answer is sent, the connection is closing, whatever still arrives is ignored.
    body_refused = False
    _headers_done = 0.0
    _admission_pending = False
    _send_continue_when_admitted = False
    # The request line Twisted handed over while the admission was pending.
    _waiting_request_line: tuple[bytes, bytes, bytes] | None = None
    _release: Release | None = None

    def _start(self) -> None:
        """Give the request its id and count it in flight: once, as early as possible."""
        self.request_id = choose_request_id(
            self.requestHeaders.getRawHeaders(REQUEST_ID_HEADER)
        )
        self.responseHeaders.setRawHeaders(
            REQUEST_ID_HEADER, [self.request_id.encode("ascii")]
        )
        self._arrived = time.monotonic()
        site = self.channel.site  # type: ignore[attr-defined]
        # Kept here: Twisted drops the request's channel once it finishes.
        self._revenge_site = site if isinstance(site, RevengeSite) else None
        if isinstance(site, RevengeSite):
            site.request_started(self)

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (Twisted's name)
        """
        The headers are in (``length`` is the Content-Length, None for a
        chunked body). Called before any body byte is read: the request starts
        here, so that an upload the client abandons is logged and counted,
        and a declared length over the route's cap is refused unread.
        """
        # The request line is parsed but only handed to the request with the
        # complete body; the channel holds it until then.
        method = getattr(self.channel, "_command", None)
        uri = getattr(self.channel, "_path", None)
        version = getattr(self.channel, "_version", None)
        if not (
            isinstance(method, bytes) and isinstance(uri, bytes) and isinstance(version, bytes)
        ):
            # Not HTTP/1.x's channel (HTTP/2, unused here): no early start, no cap.
            super().gotLength(length)
            return
        self.method, self.uri, self.clientproto = method, uri, version
        self.path = uri.split(b"?", 1)[0]
        self._start()
        self._headers_done = time.monotonic()
        admission = None
        if length != 0 and isinstance(self._revenge_site, RevengeSite):
            # Only requests with a body pay for the route lookup.
            limit = self._revenge_site.body_limit(self.method, self.path)
            self._max_body_bytes = limit.max_bytes
            admission = limit.admission
            if limit.route is not None:
                self.route_template = limit.route
        if length is not None and length > self._max_body_bytes:
            self.content = io.BytesIO()
            self._refuse_too_large()
            return
        super().gotLength(length)
        if admission is not None:
            self._admit(admission)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self.body_refused:
            return
        # A Content-Length body cannot exceed its declared length (Twisted
        # stops there); a chunked one can, and is counted as it comes.
        self._body_received += len(data)
        if self._body_received > self._max_body_bytes:
            self._refuse_too_large()
            return
        site = self._revenge_site
        if site is not None and self._headers_done:
            # Checked as data arrives; a client that sends nothing at all is
            # cut by the idle timeout instead.
            allowed = site.headers_timeout + self._body_received / site.min_body_rate
            if time.monotonic() - self._headers_done > allowed:
                self.refuse(
                    408,
                    "request_timeout",
                    f"the request body arrives slower than {site.min_body_rate:g} bytes/s",
                )
                return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if self.body_refused:
            return  # answered already; the route must not run
        if self._admission_pending:
            # The whole body is in, but it is not admitted yet: wait.
            self._waiting_request_line = (command, path, version)
            return
        super().requestReceived(command, path, version)

    # Admission: a route's decision, before the body is read.

    def _admit(self, admission: Callable[[Any], Awaitable[Release | None]]) -> None:
        self._admission_pending = True
        expect = self.requestHeaders.getRawHeaders(b"Expect") or [b""]
        if expect[0].lower() == b"100-continue":
            # Twisted would answer "100 Continue" as soon as this returns,
            # inviting the body before it is admitted; we say it later.
            self.requestHeaders.removeHeader(b"Expect")
            self._send_continue_when_admitted = self.clientproto == b"HTTP/1.1"

        async def admit() -> Release | None:
            return await admission(self)

        def start() -> None:
            # Log lines of the admission (a database error, say) carry the id.
            current_request_id.set(self.request_id)
            ensureDeferred(admit()).addCallbacks(self._admitted, self._not_admitted)

        contextvars.copy_context().run(start)

    def _admitted(self, release: Release | None) -> None:
        self._admission_pending = False
        if self._recorded:
            # The client went away meanwhile: give back what was taken.
            if release is not None:
                release()
            return
        self._release = release
        waiting, self._waiting_request_line = self._waiting_request_line, None
        if waiting is not None:
            super().requestReceived(*waiting)
        elif self._send_continue_when_admitted:
            transport = getattr(self.channel, "transport", None)
            if transport is not None:
                transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _not_admitted(self, failure: Failure) -> None:
        self._admission_pending = False
        if self._recorded:
            return
        error = api_error_for(failure.value)
        if error is not None:
            self.refuse(error.status, error.code, error.message, error.headers)
            return
        _log.failure(
            "Admitting {method} {path} failed",
            failure=failure,
            method=self.method.decode("latin-1"),
            path=self.path.decode("utf-8", "replace"),
            request_id=self.request_id,
        )
        self.refuse(500, "internal_error", "internal server error")

    # Refusing a request before its route runs.

    def _refuse_too_large(self) -> None:
        self.refuse(
            413,
            "too_large",
            f"the request body is over the {self._max_body_bytes} bytes this route accepts",
        )

    def refuse(
        self, status: int, code: str, message: str, headers: dict[bytes, bytes] | None = None
    ) -> None:
        """
        Answer now, while the body may still be arriving (or not yet
        admitted), and close the connection so nothing more is read; the
        route never runs.
        """
        self.body_refused = True
        # Twisted would otherwise send "100 Continue" after our answer.
        self.requestHeaders.removeHeader(b"Expect")
        self.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        for name, value in (headers or {}).items():
            self.responseHeaders.setRawHeaders(name, [value])
        body = error_body(self, status, code, message)
        self.write(body)
        channel = self.channel
        # Not finish(): the channel is still parsing this request and expects
        # it to stay queued until its body ends, which it now never does.
        self._done(aborted=False)
        if channel is not None:
            channel.loseConnection()

    def process(self) -> None:
        if not self.request_id:
            self._start()  # a request driven without gotLength (tests)
        # Replaces what Twisted parsed (see query_arguments; no form body is
        # merged in either: no route takes one).
        _, question, query = self.uri.partition(b"?")
        self.args = query_arguments(query) if question else {}
        site = self._revenge_site
        if site is not None:
            if site.draining:
                # This response is the connection's last, so clients reconnect
                # to another replica. Twisted decided keep-alive as the headers
                # came in (HTTPChannel.checkPersistence, from the request's
                # Connection header), before draining may have begun: say it
                # in the response and tell the channel, which then closes
                # once the response is written.
                self.responseHeaders.setRawHeaders(b"Connection", [b"close"])
                if self.channel is not None:
                    self.channel.persistent = False
        # Everything the resources do synchronously, and every coroutine they
        # start, inherits this context and so the id.
        context = contextvars.copy_context()
        context.run(self._process_with_id)

    def _process_with_id(self) -> None:
        current_request_id.set(self.request_id)
        super().process()

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:  # noqa: N802
        # Twisted's table lacks some codes (429 went out as "Unknown Status").
        if message is None and code not in RESPONSES:
            message = _reason_phrase(code)
        super().setResponseCode(code, message)

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            # Twisted's "Server: TwistedWeb/<version>" tells a scanner which
            # version's bugs to try.
            self.responseHeaders.setRawHeaders(b"Server", [SERVER_HEADER])
        super().write(data)

    def finish(self) -> None:
        super().finish()
        self._done(aborted=False)

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802 (Twisted's name)
        super().connectionLost(reason)
        self._done(aborted=True)

    def _done(self, aborted: bool) -> None:
        # finish() and connectionLost() are overridden rather than using
        # notifyFinish(): one Deferred less per request on the hot path.
        release, self._release = self._release, None
        if release is not None:
            release()
        if self._recorded or not self.request_id:
            return
        self._recorded = True
        duration = time.monotonic() - self._arrived
        route = self.route_template or UNMATCHED_ROUTE
        method = self.method.decode("latin-1")
        if self._revenge_site is not None:
            label = method if method in _METHOD_LABELS else "other"
            self._revenge_site.request_finished(self, label, route, aborted, duration)
        # Emitted straight to the logger's observer, as Logger.emit would, minus
        # its per-call checks: this runs once per request.
        _access_log.observer(
            {
                "log_logger": _access_log,
                "log_level": LogLevel.info,
                "log_namespace": _access_log.namespace,
                "log_source": None,
                "log_format": "{method} {path} {status} {bytes}B {duration_ms}ms",
                "log_time": time.time(),
                "method": method,
                # The path without the query string: queries may carry secrets
                # (presigned URLs) and are not needed to find the request again.
                "path": self.path.decode("utf-8", "replace"),
                "route": route,
                "status": self.code,
                "bytes": self.sentLength,
                "duration_ms": round(duration * 1000, 3),
                "aborted": aborted,
                "request_id": self.request_id,
            }
        )

    def processingFailed(self, reason: Failure) -> Failure:  # noqa: N802 (Twisted's name)
        """An unhandled exception: log its traceback, answer a JSON 500 without it."""
        _log.failure(
            "Unhandled error while serving {method} {path}",
            failure=reason,
            method=self.method.decode("latin-1"),
            path=self.path.decode("utf-8", "replace"),
            request_id=self.request_id,
        )
        if self.finished or self._disconnected:
            return reason
        if self.startedWriting:
            # The status line is gone; cutting the response short is the only
            # honest signal left to the client.
            if self.channel is not None and self.channel.transport is not None:
                self.channel.transport.abortConnection()  # type: ignore[attr-defined]
            return reason
        self.responseHeaders.removeHeader(b"Content-Encoding")
        body = error_body(self, 500, "internal_error", "internal server error")
        self.write(body)
        self.finish()
        return reason


class RevengeChannel(HTTPChannel):
    """
    HTTP/1.1 with Revenge's limits on what comes before a request's body:
    at most ``MAX_HEADER_BYTES`` of request line and headers (414 for a
    request line alone over it, else 431), at most ``MAX_HEADERS`` headers
    (431), all of them within ``headers_timeout`` seconds of their first
    byte (408). Twisted answers these before any request exists, with a bare
    "400 Bad Request"; here every such answer, and Twisted's other 400s
    (malformed request lines, headers, chunked bodies), is the usual JSON
    error with an X-Request-ID, logged and counted like any response, and
    the connection then closes.
    """

    maxHeaders = MAX_HEADERS
    totalHeadersSize = MAX_HEADER_BYTES
    # LineReceiver's cap on one line; past it Twisted would close silently.
    MAX_LENGTH = MAX_HEADER_BYTES
    headers_timeout = HEADERS_TIMEOUT
    site: RevengeSite | None = None
    _headers_deadline: IDelayedCall | None = None
    _request_line_method = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        # Line mode outside a request's handling means: reading a request
        # line or headers (bytes of a next, pipelined request are buffered
        # while one is handled, and come back through here after it).
        if (
            data
            and self._headers_deadline is None
            and self.line_mode
            and not self._handlingRequest
        ):
            self._headers_deadline = self.callLater(self.headers_timeout, self._headers_too_slow)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:  # noqa: N802 (Twisted's name)
        self._cancel_headers_deadline()
        super().allHeadersReceived()

    def lineReceived(self, line: bytes) -> None:  # noqa: N802 (Twisted's name)
        # Twisted keeps the parsed request line in _command/_path/_version
        # until the body is in, and deletes them after; none means this line
        # may be a request line.
        awaiting_request_line = getattr(self, "_command", None) is None
        if awaiting_request_line:
            self._note_request_line_method(line)
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._headers_too_large()
            return
        super().lineReceived(line)
        target = getattr(self, "_path", None)
        if awaiting_request_line and isinstance(target, bytes):
            method = getattr(self, "_command", b"")
            if method not in KNOWN_METHODS:
                self._answer_and_close(
                    501,
                    "not_implemented",
                    f"the method {method.decode('latin-1')!r} is not one this server implements",
                )
                return
            try:
                self._path = origin_form(target)
            except BadRequestLine as error:
                self._answer_and_close(400, "bad_request", str(error))

    def headerReceived(self, line: bytes) -> bool:  # noqa: N802 (Twisted's name)
        if self._receivedHeaderCount >= self.maxHeaders:
            self._answer_and_close(
                431, "too_many_headers", f"send at most {self.maxHeaders} headers"
            )
            return False
        name, colon, value = line.partition(b":")
        name = name.lower()
        if colon and name in FRAMING_HEADERS and self.requests:
            already = self.requests[-1].requestHeaders.getRawHeaders(name)
            try:
                check_framing_header(name, value.strip(b" \t"), already)
            except BadRequestLine as error:
                self._answer_and_close(400, "bad_request", str(error))
                return False
        accepted: bool = super().headerReceived(line)
        return accepted

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802 (Twisted's name)
        # ``line`` is all that is buffered, the start of the request line included.
        if getattr(self, "_command", None) is None:
            self._note_request_line_method(line)
        self._headers_too_large()

    def _note_request_line_method(self, line: bytes) -> None:
        # Kept even when the line is then refused: a refused HEAD must still
        # get no body (an empty line, IE's extra CRLF, is not a request line).
        if line:
            self._request_line_method = line.partition(b" ")[0]

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802 (Twisted's name)
        # Twisted's one way of refusing what it cannot parse; no hook is public.
        self._answer_and_close(400, "bad_request", "the request is malformed")

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._cancel_headers_deadline()
        super().connectionLost(reason)

    def _cancel_headers_deadline(self) -> None:
        deadline, self._headers_deadline = self._headers_deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _headers_too_slow(self) -> None:
        self._headers_deadline = None
        self._answer_and_close(
            408,
            "request_timeout",
            f"the request line and headers must arrive within {self.headers_timeout:g}s",
        )

    def _headers_too_large(self) -> None:
        if getattr(self, "_command", None) is None:
            # Not even the request line is complete.
            self._answer_and_close(
                414, "uri_too_long", f"the request line is over {self.totalHeadersSize} bytes"
            )
            return
        self._answer_and_close(
            431,
            "headers_too_large",
            f"the request line and headers are over {self.totalHeadersSize} bytes",
        )

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        self._cancel_headers_deadline()
        transport = self.transport
        if transport is None or getattr(transport, "disconnecting", False):
            return  # answered already
        request = self.requests[-1] if self.requests else None
        if isinstance(request, RevengeRequest) and request.request_id:
            # The headers were in (a malformed chunked body, say): the request
            # answers, with its id, access log line and metrics.
            if not request.body_refused and not request.startedWriting:
                request.refuse(status, code, message)
            else:
                self.loseConnection()
            return
        client_ids = None if request is None else request.requestHeaders.getRawHeaders(
            REQUEST_ID_HEADER
        )
        request_id = choose_request_id(client_ids)
        body = (
            json.dumps(
                {"error": {"code": code, "message": message, "request_id": request_id}},
                separators=(",", ":"),
            ).encode("utf-8")
            + b"\n"
        )
        if (getattr(self, "_command", None) or self._request_line_method) == b"HEAD":
            body_sent = b""  # the headers a GET would get, no body (RFC 9110 9.3.2)
        else:
            body_sent = body
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\nServer: %s\r\n%s: %s\r\n\r\n"
            % (
                status,
                _reason_phrase(status),
                len(body),
                SERVER_HEADER,
                REQUEST_ID_HEADER,
                request_id.encode("ascii"),
            )
        )
        transport.write(head + body_sent)
        self._record_refusal(status, request_id, len(body_sent))
        self.loseConnection()
        if self.abortTimeout is not None and self._abortingCall is None:
            # A client that reads nothing must not keep the connection open.
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)

    def _record_refusal(self, status: int, request_id: str, sent: int) -> None:
        """The access log line and request count of an answer no request object gave."""
        method = getattr(self, "_command", None)
        method_text = method.decode("latin-1") if isinstance(method, bytes) else ""
        uri = getattr(self, "_path", None)
        path = uri.split(b"?", 1)[0].decode("utf-8", "replace") if isinstance(uri, bytes) else ""
        site = self.site
        if site is not None and site.metrics is not None:
            label = method_text if method_text in _METHOD_LABELS else "other"
            site.metrics.http_requests_total.labels(label, UNMATCHED_ROUTE, str(status)).inc()
        _access_log.info(
            "{method} {path} {status} {bytes}B {duration_ms}ms",
            method=method_text,
            path=path,
            route=UNMATCHED_ROUTE,
            status=status,
            bytes=sent,
            duration_ms=0.0,
            aborted=False,
            request_id=request_id,
        )


class RevengeSite(Site):
    """A ``Site`` of :class:`RevengeRequest` that counts requests in flight."""

    displayTracebacks = False
    # "Starting factory" lines say nothing the listening line does not.
    noisy = False
    # HTTP/1.x only, with our limits (see RevengeChannel); no HTTP/2 here.
    protocol = RevengeChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: IResource,
        metrics: Metrics | None = None,
        body_limit: Callable[[bytes, bytes], BodyLimit] | None = None,
        *,
        headers_timeout: float = HEADERS_TIMEOUT,
        min_body_rate: float = MIN_BODY_BYTES_PER_SECOND,
        **kwargs: Any,
    ) -> None:
        """
        ``body_limit(method, path)`` names the route a request line matches
        and its body cap (``RevengeApp.body_limit``); without it every body is
        capped at ``DEFAULT_MAX_BODY_BYTES``. ``timeout`` (Twisted's) closes
        connections idle that long; ``headers_timeout`` and ``min_body_rate``
        bound slow clients (see the module's constants).
        """
        super().__init__(resource, requestFactory=RevengeRequest, **kwargs)
        self.metrics = metrics
        self.body_limit: Callable[[bytes, bytes], BodyLimit] = body_limit or (
            lambda method, path: NO_ROUTE_BODY_LIMIT
        )
        self.headers_timeout = headers_timeout
        self.min_body_rate = min_body_rate
        self.in_flight: set[RevengeRequest] = set()
        self.draining = False
        self._metric_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._idle_waiters: list[Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 (Twisted's name)
        channel = super().buildProtocol(addr)
        if isinstance(channel, RevengeChannel):
            channel.headers_timeout = self.headers_timeout
        return channel

    def log(self, request: Any) -> None:
        """Replaced by the structured access log line of :class:`RevengeRequest`."""

    def request_started(self, request: RevengeRequest) -> None:
        self.in_flight.add(request)

    def request_finished(
        self, request: RevengeRequest, method: str, route: str, aborted: bool, duration: float
    ) -> None:
        self.in_flight.discard(request)
        if self.metrics is not None:
            status = "aborted" if aborted else str(request.code)
            # labels() takes a lock and builds a key each time; the children
            # are few (routes x methods x statuses), so keep them.
            key = (method, route, status)
            children = self._metric_children.get(key)
            if children is None:
                children = (
                    self.metrics.http_requests_total.labels(method, route, status),
                    self.metrics.http_request_duration_seconds.labels(method, route),
                )
                self._metric_children[key] = children
            children[0].inc()
            children[1].observe(duration)
        if not self.in_flight:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                # Not from inside Request.finish(): let it complete first.
                self.reactor.callLater(0, waiter.callback, None)

    def wait_idle(self) -> Deferred[None]:
        """Fires once no request is in flight (at once when none is)."""
        if not self.in_flight:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter
