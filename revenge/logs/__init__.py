"""Structured logging: request ids that follow the work, and line observers."""

from revenge.logs._context import (
    carry_context,
    current_request_id,
    get_request_id,
    new_request_id,
    run_in_thread,
)
from revenge.logs._observer import (
    LOG_FORMATS,
    LineObserver,
    LineStream,
    event_record,
    make_observer,
)

__all__ = [
    "LOG_FORMATS",
    "LineObserver",
    "LineStream",
    "carry_context",
    "current_request_id",
    "event_record",
    "get_request_id",
    "make_observer",
    "new_request_id",
    "run_in_thread",
]
