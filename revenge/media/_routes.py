"""
``GET /api/v1/libraries``, ``GET /api/v1/libraries/<name>/items`` and
``GET``/``HEAD /media/<library>/<path>`` (docs/design.md, "HTTP API"; docs/media.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.logger import Logger

from revenge.auth import require_user, require_user_or_query_token
from revenge.media._http import (
    ByteRange,
    Precondition,
    evaluate_preconditions,
    file_headers,
    if_range_allows,
    parse_range,
)
from revenge.media._libraries import (
    READINESS_PREFIX,
    Library,
    LibraryMonitor,
    libraries_from_config,
)
from revenge.media._listing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidCursor,
    decode_cursor,
    list_directory,
)
from revenge.media._paths import (
    MediaNotFound,
    OpenedFile,
    open_inside,
    split_media_path,
    split_relative_path,
)
from revenge.media._stream import FileStream
from revenge.media._threads import FilesystemThreads
from revenge.media._types import content_type_for
from revenge.web import ApiError, json_body

if TYPE_CHECKING:
    from revenge.config import Config
    from revenge.db import Database
    from revenge.metrics import Metrics
    from revenge.web import RevengeApp

_log = Logger(namespace="revenge.media")

MEDIA_PREFIX = b"/media/"
# The query parameter a player may carry its token in (docs/media.md).
TOKEN_PARAMETER = b"token"

_LIMIT_TEXT = re.compile(r"[0-9]{1,7}")


def _not_found() -> ApiError:
    # Word for word the 404 of an unknown route, so a refused path, a path
    # outside the root and a missing file cannot be told apart.
    return ApiError(404, "not_found", "no such resource")


def _volume_error() -> ApiError:
    return ApiError(503, "media_unavailable", "the media volume could not be read; try again")


def _one_parameter(request: Any, name: str) -> str | None:
    values: list[bytes] = request.args.get(name.encode("ascii"), [])
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "bad_request", f"give {name} once")
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", f"{name} is not valid UTF-8") from None


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    if _LIMIT_TEXT.fullmatch(text) is None or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise ApiError(400, "bad_request", f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(text)


class MediaService(Service):
    """
    A node's media libraries: their filesystem threads and their monitor.
    Probes the libraries once at startup (one log line each) and stops the
    threads when the node stops. The server registers its readiness checks
    and places it among the node's services.
    """

    name = "media"

    def __init__(self, libraries: Sequence[Library], reactor: Any) -> None:
        self.libraries = libraries
        self.threads = FilesystemThreads(reactor)
        self.monitor = LibraryMonitor(libraries, self.threads, reactor)

    @classmethod
    def from_config(cls, config: Config, reactor: Any) -> MediaService:
        return cls(libraries_from_config(config), reactor)

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """One readiness check per library, by the name /readyz shows."""
        return {
            READINESS_PREFIX + library.name: partial(self.monitor.check, library)
            for library in self.libraries
        }

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        for library in self.libraries:
            ensureDeferred(self.monitor.problem(library))

    def stopService(self) -> None:  # noqa: N802 (Twisted's name)
        super().stopService()
        self.threads.close()


def install_media_routes(
    app: RevengeApp, database: Database, media: MediaService, metrics: Metrics
) -> None:
    """
    The library and media routes over ``media``'s libraries and threads;
    what they stream is counted in ``metrics`` by library.
    """
    libraries = media.libraries
    by_name = {library.name: library for library in libraries}
    threads = media.threads
    monitor = media.monitor

    @app.route("/api/v1/libraries")
    async def list_libraries(request: Any) -> bytes:
        await require_user(database, request)
        problems = await DeferredList(
            [ensureDeferred(monitor.problem(library)) for library in libraries],
            consumeErrors=True,
        )
        listed = []
        for library, (succeeded, problem) in zip(libraries, problems):
            code = problem.code if succeeded and problem is not None else None
            if not succeeded:
                code = "unreadable"
            listed.append(
                {
                    "name": library.name,
                    "kind": library.kind,
                    "available": code is None,
                    "problem": code,
                }
            )
        return json_body(request, 200, {"libraries": listed})

    @app.route("/api/v1/libraries/<name>/items")
    async def list_items(request: Any, name: str) -> bytes:
        await require_user(database, request)
        library = by_name.get(name)
        if library is None:
            raise _not_found()
        path_text = _one_parameter(request, "path") or ""
        limit = _page_size(_one_parameter(request, "limit"))
        cursor = _one_parameter(request, "cursor")
        try:
            after = None if cursor is None else decode_cursor(cursor)
        except InvalidCursor:
            raise ApiError(400, "bad_request", "cursor is not one this server handed out") from None
        segments = split_relative_path(path_text)
        if segments is None:
            raise _not_found()
        try:
            page = await threads.run(list_directory, library.root, segments, limit, after)
        except MediaNotFound:
            raise _not_found() from None
        except OSError as error:
            _log.warn(
                "listing in media library {library} failed: {error}",
                library=library.name,
                error=str(error),
            )
            raise _volume_error() from None
        return json_body(
            request,
            200,
            {
                "library": library.name,
                "path": "/".join(segments),
                "items": [entry.to_json() for entry in page.entries],
                "total": page.total,
                "next_cursor": page.next_cursor,
            },
        )

    @app.route("/media/<library>/<path:path>", methods=["GET", "HEAD"], merge_slashes=False)
    async def media_file(request: Any, library: str, path: str) -> bytes:
        await require_user_or_query_token(database, request, TOKEN_PARAMETER)
        # The URL arguments are werkzeug's decoding; the raw path is checked
        # here instead, so that what was encoded stays visible (%2F, %2e%2e).
        parsed = split_media_path(request.path, MEDIA_PREFIX)
        if parsed is None or parsed[0] not in by_name:
            raise _not_found()
        chosen = by_name[parsed[0]]
        try:
            opened = await threads.run(open_inside, chosen.root, parsed[1])
        except MediaNotFound:
            raise _not_found() from None
        except OSError as error:
            _log.warn(
                "opening a file in media library {library} failed: {error}",
                library=chosen.name,
                error=str(error),
            )
            raise _volume_error() from None
        description = f"{chosen.name}/{'/'.join(parsed[1])}"
        try:
            return await _respond(threads, request, opened, description, metrics, chosen.name)
        finally:
            # FileStream closes the files it streams; this closes the others.
            if not opened.handed_over:
                threads.run(os.close, opened.fd)


async def _respond(
    threads: FilesystemThreads,
    request: Any,
    opened: OpenedFile,
    description: str,
    metrics: Metrics,
    library: str,
) -> bytes:
    validators = opened.validators
    for name, value in file_headers(validators).items():
        request.setHeader(name, value)

    def header(name: bytes) -> str | None:
        value: bytes | None = request.getHeader(name)
        return None if value is None else value.decode("latin-1")

    outcome = evaluate_preconditions(
        validators,
        if_match=header(b"If-Match"),
        if_unmodified_since=header(b"If-Unmodified-Since"),
        if_none_match=header(b"If-None-Match"),
        if_modified_since=header(b"If-Modified-Since"),
    )
    if outcome is Precondition.FAILED:
        raise ApiError(412, "precondition_failed", "the file does not match the preconditions")
    if outcome is Precondition.NOT_MODIFIED:
        request.setResponseCode(304)
        return b""

    request.setHeader(b"Content-Type", content_type_for(opened.name).encode("ascii"))
    chosen: ByteRange | None = None
    range_header = header(b"Range")
    if_range = header(b"If-Range")
    # Range means something for GET only (RFC 9110 §14.2): HEAD shows the whole file.
    if range_header is not None and request.method == b"GET":
        if if_range is None or if_range_allows(if_range, validators):
            parsed = parse_range(range_header, opened.size)
            if isinstance(parsed, ByteRange):
                chosen = parsed
            elif parsed is not None:
                raise ApiError(
                    416,
                    "range_not_satisfiable",
                    f"the file has {opened.size} bytes",
                    headers={b"Content-Range": parsed.content_range.encode("ascii")},
                )
    if chosen is None:
        request.setResponseCode(200)
        first, length = 0, opened.size
    else:
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", chosen.content_range.encode("ascii"))
        first, length = chosen.first, chosen.length
    request.setHeader(b"Content-Length", b"%d" % (length,))
    if request.method == b"HEAD" or length == 0:
        return b""
    opened.handed_over = True
    sent = metrics.media_bytes_sent_total.labels(library)
    active = metrics.media_streams_active.labels(library)
    active.inc()
    try:
        await FileStream(
            threads, request, opened.fd, first, length, description, on_written=sent.inc
        ).start()
    finally:
        active.dec()
    return b""
