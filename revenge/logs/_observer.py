"""
Log observers: one JSON object per line (default) or a short text line.

Every line names this node and, when it was written while serving a request
or running a job, that request's id. The id is read from the event itself
(the access log passes it explicitly) or from the emitting context.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
)
from zope.interface import implementer

from revenge.logs._context import current_request_id

LOG_FORMATS = ("json", "text")

# Keys of Twisted's own event dicts (new and legacy API) that are plumbing,
# not information for the reader.
_PLUMBING_KEYS = frozenset(
    {"message", "isError", "system", "format", "why", "failure", "time", "printed"}
)


def _iso_time(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def event_record(event: LogEvent, node_id: str) -> dict[str, Any]:
    """The fields of one log line, in a stable order."""
    level = event.get("log_level", LogLevel.info)
    record: dict[str, Any] = {
        "time": _iso_time(event.get("log_time") or 0.0),
        "level": level.name,
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
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

    def __init__(self, stream: IO[str], node_id: str, log_format: str = "json") -> None:
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
        self._stream = stream
        self._node_id = node_id
        self._format = log_format
        # Events arrive from worker threads too; one line must not interleave
        # with another.
        self._lock = threading.Lock()

    def __call__(self, event: LogEvent) -> None:
        record = event_record(event, self._node_id)
        if self._format == "json":
            line = json.dumps(record, default=str, ensure_ascii=False)
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
    stream: IO[str], node_id: str, log_format: str = "json", level: LogLevel = LogLevel.info
) -> ILogObserver:
    """The observer the server logs to: ``level`` and above, as lines on ``stream``."""
    return FilteringLogObserver(
        LineObserver(stream, node_id, log_format),
        [LogLevelFilterPredicate(defaultLogLevel=level)],
    )
