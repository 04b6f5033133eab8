"""
The wrapper every response goes through, below Klein.

Klein has no middleware, so the request id, the access log, the HTTP metrics
and the JSON 500 live in a ``Request`` subclass that ``RevengeSite`` builds for
every request. That covers 404s, 405s, unhandled exceptions and resources that
are not Klein's alike.
"""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from revenge.logs import current_request_id
from revenge.web._errors import error_body
from revenge.web._request_id import REQUEST_ID_HEADER, choose_request_id

if TYPE_CHECKING:
    from revenge.metrics import Metrics

_access_log = Logger(namespace="revenge.access")
_log = Logger(namespace="revenge.web")

# Anything else is counted as "other" so a client cannot mint label values.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

UNMATCHED_ROUTE = "unmatched"


class RevengeRequest(Request):
    """A request that knows its id and route template, and logs itself once."""

    request_id: str = ""
    # Set by the route that handles the request (RevengeApp.route); a label
    # for metrics and logs that never contains client-chosen path segments.
    route_template: str | None = None
    _revenge_site: RevengeSite | None = None

    def process(self) -> None:
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
            if site.draining:
                # Twisted decides keep-alive from the request's Connection
                # header; saying "close" here makes this response the
                # connection's last, so clients reconnect to another replica.
                self.requestHeaders.addRawHeader(b"Connection", b"close")
        self.notifyFinish().addBoth(self._done)
        # Everything the resources do synchronously, and every coroutine they
        # start, inherits this context and so the id.
        context = contextvars.copy_context()
        context.run(self._process_with_id)

    def _process_with_id(self) -> None:
        current_request_id.set(self.request_id)
        super().process()

    def method_label(self) -> str:
        method = self.method.decode("latin-1")
        return method if method in _KNOWN_METHODS else "other"

    def _done(self, result: object) -> None:
        aborted = isinstance(result, Failure)
        duration = time.monotonic() - self._arrived
        route = self.route_template or UNMATCHED_ROUTE
        method = self.method_label()
        if self._revenge_site is not None:
            self._revenge_site.request_finished(self, method, route, aborted, duration)
        _access_log.info(
            "{method} {path} {status} {bytes}B {duration_ms}ms",
            method=self.method.decode("latin-1"),
            # The path without the query string: queries may carry secrets
            # (presigned URLs) and are not needed to find the request again.
            path=self.path.decode("utf-8", "replace"),
            route=route,
            status=self.code,
            bytes=self.sentLength,
            duration_ms=round(duration * 1000, 3),
            aborted=aborted,
            request_id=self.request_id,
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


class RevengeSite(Site):
    """A ``Site`` of :class:`RevengeRequest` that counts requests in flight."""

    displayTracebacks = False
    # "Starting factory" lines say nothing the listening line does not.
    noisy = False

    def __init__(self, resource: IResource, metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(resource, requestFactory=RevengeRequest, **kwargs)
        self.metrics = metrics
        self.in_flight: set[RevengeRequest] = set()
        self.draining = False
        self._idle_waiters: list[Deferred[None]] = []


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
            self.metrics.http_requests_total.labels(method, route, status).inc()
            self.metrics.http_request_duration_seconds.labels(method, route).observe(duration)
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
