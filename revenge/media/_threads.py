"""
The worker threads that touch the media volume.

``stat``, ``realpath``, ``scandir`` and ``read`` on an NFS mount can block
for as long as the server is away (``hard`` mounts retry forever), so they
never run on the reactor thread, nor in the reactor's own pool that the
database uses: a stuck mount then stalls media requests only, and
``/readyz`` (whose checks time out) takes the replica out of rotation.

Threads are daemonic, so a thread stuck in the kernel cannot keep the
process from exiting; the pool is started on first use and stopped once it
is idle after :meth:`FilesystemThreads.close` (streams still in flight when
the server starts stopping keep it alive until they end).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from revenge.logs import carry_context

_P = ParamSpec("_P")
_T = TypeVar("_T")

DEFAULT_MAX_THREADS = 8


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(*args, **kwargs)
    thread.daemon = True
    return thread


class FilesystemThreads:
    """A thread pool of its own for blocking filesystem calls."""

    def __init__(self, reactor: Any, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        self._reactor = reactor
        self._max_threads = max_threads
        self._pool: ThreadPool | None = None
        self._in_flight = 0
        self._closing = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        """Run ``fn`` in a worker thread, keeping this request's id for its log lines."""
        pool = self._pool
        if pool is None:
            pool = ThreadPool(minthreads=0, maxthreads=self._max_threads, name="revenge-media")
            pool.threadFactory = _daemon_thread  # type: ignore[assignment]
            pool.start()
            self._pool = pool
        self._in_flight += 1
        bound = carry_context(fn)
        result: Deferred[_T] = deferToThreadPool(
            self._reactor, pool, lambda: bound(*args, **kwargs)
        )
        result.addBoth(self._finished)
        return result

    def _finished(self, result: _T) -> _T:
        self._in_flight -= 1
        if self._closing and self._in_flight == 0:
            # Not now: the caller's callbacks, which run next, may well ask
            # for another call (a stream's next chunk).
            self._reactor.callLater(0, self._stop_if_idle)
        return result

    def close(self) -> None:
        """Stop the threads as soon as no call is running (at once when none is)."""
        self._closing = True
        self._stop_if_idle()

    def _stop_if_idle(self) -> None:
        if self._in_flight:
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            # Every worker is idle here, so joining them is immediate.
            pool.stop()
