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
