"""Two ways of waiting on a Deferred that the scheduler needs."""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

_T = TypeVar("_T")


def when_done(deferred: Deferred[Any]) -> Deferred[None]:
    """Fires (with None) when ``deferred`` does, leaving its result alone."""
    done: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        if not done.called:
            done.callback(None)
        return result

    deferred.addBoth(fire)
    return done


def shielded(deferred: Deferred[_T]) -> Deferred[_T]:
    """
    A Deferred with ``deferred``'s result whose cancellation does not cancel
    ``deferred``: a manual run goes on when its HTTP client goes away.
    """
    out: Deferred[_T] = Deferred()

    def forward(result: object) -> None:
        if out.called:  # cancelled by the waiter: nobody wants the result
            return
        if isinstance(result, Failure):
            out.errback(result)
        else:
            out.callback(result)  # type: ignore[arg-type]

    deferred.addBoth(forward)
    return out
