"""Catching the log events code emits while a test runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import implementer


@implementer(ILogObserver)
class _Keeper:
    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        self.events.append(event)


@contextmanager
def captured_log_events() -> Iterator[list[LogEvent]]:
    """
    Every event published while the block runs, as emitted (no formatting,
    so a test can look at ``log_failure``, ``log_namespace`` or any field).
    """
    keeper = _Keeper()
    globalLogPublisher.addObserver(keeper)
    try:
        yield keeper.events
    finally:
        globalLogPublisher.removeObserver(keeper)
