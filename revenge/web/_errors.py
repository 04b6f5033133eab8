"""JSON error bodies (docs/design.md: ``{"error": {"code", "message", "request_id"}}``)."""

from __future__ import annotations

import json
from typing import Any

from twisted.web.iweb import IRequest

from revenge.db import DatabaseUnavailable

JSON_CONTENT_TYPE = b"application/json"


class ApiError(Exception):
    """Raised by a route to answer with a JSON error; ``message`` is shown to the client."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[bytes, bytes] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# The one answer to a database that cannot be reached: the cause stays in the
# log (DatabaseUnavailable.reason), the client learns only to come back.
DATABASE_UNAVAILABLE = (503, "database_unavailable", "the database is unavailable; try again shortly")


def api_error_for(error: BaseException | None) -> ApiError | None:
    """
    The JSON error a failure that escaped a route (or an admission) is
    answered with, or None for one that is a bug (a 500 and a traceback).
    The rule for every exception a lower layer raises lives here, so a
    route never translates them itself.
    """
    if isinstance(error, ApiError):
        return error
    if isinstance(error, DatabaseUnavailable):
        return ApiError(*DATABASE_UNAVAILABLE)
    return None


def json_body(request: IRequest, status: int, payload: Any) -> bytes:
    """Set status and JSON headers on ``request`` and return the encoded body."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8") + b"\n"
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", JSON_CONTENT_TYPE)
    # An answer about now (health, a listing, an error) is stale at once, and
    # some carry what only their caller may see: no cache keeps one, unless
    # the route said otherwise first.
    if not request.responseHeaders.hasHeader(b"Cache-Control"):
        request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    return body


def error_body(request: IRequest, status: int, code: str, message: str) -> bytes:
    """The JSON error response for ``request``, carrying its request id."""
    request_id = getattr(request, "request_id", None)
    return json_body(
        request,
        status,
        {"error": {"code": code, "message": message, "request_id": request_id}},
    )
