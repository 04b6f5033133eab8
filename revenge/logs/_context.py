"""
The request id that log lines carry, and how it survives hops the contextvar
does not follow on its own.

Coroutines (``ensureDeferred``, ``inlineCallbacks``) keep their context, so
code written as ``async def`` needs nothing. Plain Deferred callbacks,
``callLater`` and thread-pool work run in whatever context fires them: wrap the
callable with :func:`carry_context`, or use :func:`run_in_thread`.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool

_P = ParamSpec("_P")
_T = TypeVar("_T")

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "revenge_request_id", default=None
)


# A random (version 4) UUID: the version nibble and the RFC 4122 variant bits.
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """
    A new id for a request or a job run: a UUID4 string. Built from
    ``random`` rather than ``uuid.uuid4()`` (``os.urandom`` per call) because
    it runs for every request: an id must be unique, not unguessable. The
    module-level generator is reseeded in a forked child, so replicas never
    share a sequence.
    """
    digits = "%032x" % ((random.getrandbits(128) & _VERSION_MASK) | _VERSION_4)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def get_request_id() -> str | None:
    """The id of the request or job run being served in this context, if any."""
    return current_request_id.get()


def carry_context(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """
    Bind ``fn`` to a copy of the current context, so that it sees this
    request's id wherever it is later called from (a Deferred callback, a
    ``callLater``, another thread).
    """
    context = contextvars.copy_context()

    def in_context(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return context.run(fn, *args, **kwargs)

    return in_context


def run_in_thread(
    reactor: IReactorThreads | IReactorFromThreads,
    fn: Callable[_P, _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> Deferred[_T]:
    """
    Run a blocking ``fn`` in the reactor's thread pool, keeping the caller's
    request id for every log line it writes there.
    """
    context = contextvars.copy_context()

    def in_context() -> _T:
        return context.run(fn, *args, **kwargs)

    return deferToThreadPool(
        reactor,
        reactor.getThreadPool(),  # type: ignore[union-attr]
        in_context,
    )
