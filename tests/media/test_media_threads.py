"""FilesystemThreads: calls finish even when closing, and the threads go once idle."""

from __future__ import annotations

import threading

import pytest_twisted
from twisted.internet import reactor

from revenge.logs import current_request_id
from revenge.media._threads import FilesystemThreads
from revenge.testing import eventually

from .helpers import DEADLINE_S


def media_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "revenge-media" in thread.name]


@pytest_twisted.ensureDeferred
async def test_close_waits_for_calls_in_flight_then_stops_the_threads() -> None:
    threads = FilesystemThreads(reactor, max_threads=2)
    release = threading.Event()

    def blocked() -> str:
        release.wait(30)
        return threading.current_thread().name

    current_request_id.set("request-in-thread")
    in_flight = threads.run(blocked)
    seen_id = await threads.run(current_request_id.get)
    assert seen_id == "request-in-thread"  # the caller's request id went along
    threads.close()
    # Still running: the call in flight keeps its thread.
    assert media_threads() and all(thread.daemon for thread in media_threads())
    release.set()
    name = await in_flight
    assert "revenge-media" in name
    await eventually(lambda: not media_threads(), "the media threads to stop", timeout=DEADLINE_S)
    # A call after closing still runs (streams that outlive the close), then the threads go again.
    assert await threads.run(lambda: 42) == 42
    await eventually(
        lambda: not media_threads(), "the media threads to stop again", timeout=DEADLINE_S
    )
