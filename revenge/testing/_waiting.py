"""
Waiting for something to become true, always against a deadline: a test that
sleeps a fixed time and hopes is slow when it guessed long and flaky when it
guessed short, so every wait here polls until the condition holds and fails,
naming what it waited for, once the deadline has passed.

:func:`eventually` is for tests running on the reactor (pytest-twisted): it
yields to the reactor between polls, so the work it waits for can happen.
:func:`wait_until` is its blocking twin, for code outside the reactor (real
processes, benchmarks); :func:`hold` lets a set time pass on purpose.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from twisted.internet.task import deferLater

_T = TypeVar("_T")

# Generous: the things waited for take well under a second; the deadline
# only bounds how long a broken test takes to fail.
EVENTUALLY_TIMEOUT_S = 10.0
# Short enough that a wait ends soon after its condition holds, long enough
# that polling leaves the reactor time for the work itself.
EVENTUALLY_INTERVAL_S = 0.01


@overload
async def eventually(
    condition: Callable[[], Awaitable[_T | None]],
    what: str = ...,
    timeout: float = ...,
    interval: float = ...,
) -> _T: ...


@overload
async def eventually(
    condition: Callable[[], _T | None],
    what: str = ...,
    timeout: float = ...,
    interval: float = ...,
) -> _T: ...


async def eventually(
    condition: Callable[[], Any],
    what: str = "the condition to hold",
    timeout: float = EVENTUALLY_TIMEOUT_S,
    interval: float = EVENTUALLY_INTERVAL_S,
) -> Any:
    """
    Poll ``condition`` (a plain function, or one returning an awaitable)
    every ``interval`` seconds while the reactor runs, until it gives
    something truthy, and return that; ``AssertionError`` naming ``what``
    once ``timeout`` seconds have passed without it.
    """
    from twisted.internet import reactor

    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, interval)


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def hold(seconds: float) -> None:
    """
    Let ``seconds`` pass: for keeping a fault in place that long, where the
    duration is the point (a wait for something to happen is :func:`wait_until`).
    """
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5, f"{seconds}s to pass", interval=0.01)
