"""
Log observers: one JSON object per line (default) or a short text line.

Every line names this node and, when it was written while serving a request
or running a job, that request's id. The id is read from the event itself
(the access log passes it explicitly) or from the emitting context.
"""

from __future__ import annotations

import json
import string
import threading
import time
from typing import Any, Protocol

from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent
from zope.interface import implementer

from revenge.logs._context import current_request_id

LOG_FORMATS = ("json", "text")


class LineStream(Protocol):
    """Where lines go: stdout, or twistd's log file (revenge.server.tap)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...

# Keys of Twisted's own event dicts (new and legacy API) that are plumbing,
# not information for the reader.
_PLUMBING_KEYS = frozenset(
    {"message", "isError", "system", "format", "why", "failure", "time", "printed"}
)


# One line per request is written on the hot path: the pieces below keep the
# cost of a line low (see bench/run.py request_id_overhead).

_last_second: list[Any] = [None, ""]


def _iso_time(timestamp: float) -> str:
    """``2026-11-27T16:30:32.418Z``; the part up to the seconds is cached."""
    second = int(timestamp)
    if _last_second[0] != second:
        _last_second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second[0] = second
    millis = int((timestamp - second) * 1000)
    return f"{_last_second[1]}.{millis:03d}Z"


# Format strings whose fields are plain names can use str.format_map (C
# speed); others (attribute access, Twisted's "{f()}" calls) go through
# formatEvent. Keyed by the format string itself.
_plain_formats: dict[str, bool] = {}
_MAX_CACHED_FORMATS = 4096


def _is_plain_format(log_format: str) -> bool:
    plain = _plain_formats.get(log_format)
    if plain is None:
        try:
            plain = all(
                field is None or field.isidentifier()
                for _, field, _, _ in string.Formatter().parse(log_format)
            )
        except ValueError:
            plain = False
        if len(_plain_formats) < _MAX_CACHED_FORMATS:
            _plain_formats[log_format] = plain
    return plain


def format_message(event: LogEvent) -> str:
    """The event's text, as ``twisted.logger.formatEvent`` would give it."""
    log_format = event.get("log_format")
    if isinstance(log_format, str) and _is_plain_format(log_format):
        try:
            return log_format.format_map(event)
        except (KeyError, ValueError, IndexError):
            pass
    return formatEvent(event)


def _is_plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def event_record(event: LogEvent, node_id: str) -> dict[str, Any]:
    """The fields of one log line, in a stable order."""
    level = event.get("log_level", LogLevel.info)
    record: dict[str, Any] = {
        "time": _iso_time(event.get("log_time") or 0.0),
        "level": level.name,
        "namespace": event.get("log_namespace", "-"),
        "message": format_message(event),
        "node_id": node_id,
    }
    request_id = event.get("request_id") or current_request_id.get()
    if request_id:
        record["request_id"] = request_id
    # Structured fields given to the logger (method=..., status=...) become
    # fields of the line; objects stay out so nothing unexpected is dumped.
    for key, value in event.items():
        if key.startswith("log_") or key in _PLUMBING_KEYS or key in record:
            continue
        if _is_plain(value):
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return record


@implementer(ILogObserver)
class LineObserver:
    """Writes each event as one line to ``stream``; safe to call from any thread."""

    def __init__(
        self,
        stream: LineStream,
        node_id: str,
        log_format: str = "json",
        level: LogLevel = LogLevel.info,
    ) -> None:
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
        self._levels = frozenset(
            candidate for candidate in LogLevel.iterconstants() if candidate >= level
        )
        self._stream = stream
        # One encoder, not one per line: json.dumps with options builds a new one.
        self._encoder = json.JSONEncoder(default=str, ensure_ascii=False)
        self._node_id = node_id
        self._format = log_format
        # Events arrive from worker threads too; one line must not interleave
        # with another.
        self._lock = threading.Lock()

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_level", LogLevel.info) not in self._levels:
            return
        record = event_record(event, self._node_id)
        if self._format == "json":
            line = self._encoder.encode(record)
        else:
            line = _text_line(record)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def _text_line(record: dict[str, Any]) -> str:
    head = f"{record['time']} {record['level']:<5} [{record['namespace']}] {record['message']}"
    if "request_id" in record:
        head += f" request_id={record['request_id']}"
    if "traceback" in record:
        head += "\n" + record["traceback"].rstrip()
    return head


def make_observer(
    stream: LineStream, node_id: str, log_format: str = "json", level: LogLevel = LogLevel.info
) -> ILogObserver:
    """The observer the server logs to: ``level`` and above, as lines on ``stream``."""
    return LineObserver(stream, node_id, log_format, level)
