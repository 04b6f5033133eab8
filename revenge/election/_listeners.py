"""
The subscribers of one election provider: ``IElection.subscribe`` and the
notification of a leadership change, written once for every provider (the
built-in ones and third parties', such as the ``postgres`` plugin).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from revenge.election._interface import LeadershipChange

Listener = Callable[[LeadershipChange], None]

# For providers that do not say where a failing subscriber should be logged.
_log = Logger(namespace="revenge.election")


class LeadershipListeners:
    """
    The callbacks subscribed to one provider, called in the order they
    subscribed. A provider keeps one, returns :meth:`subscribe` from its own
    ``subscribe`` and calls :meth:`notify` on the reactor thread, as
    ``IElection`` requires, whenever what it announces changes.
    """

    def __init__(self, log: Logger | None = None) -> None:
        # The provider's logger: a failing subscriber is reported under the
        # provider's namespace, where its operators look.
        self._log = log if log is not None else _log
        # Keyed by a token per subscription, so that unsubscribing removes that
        # subscription even when the same callback was subscribed twice.
        self._callbacks: dict[object, Listener] = {}

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Add ``callback``; returns the function that removes it (harmless twice)."""
        token = object()
        self._callbacks[token] = callback

        def unsubscribe() -> None:
            self._callbacks.pop(token, None)

        return unsubscribe

    def notify(self, change: LeadershipChange) -> None:
        """Call every subscriber with ``change``; a failing one is logged, not raised."""
        # A copy: callbacks may unsubscribe while we iterate. One failing
        # subscriber must not keep the others from hearing the news.
        for callback in list(self._callbacks.values()):
            try:
                callback(change)
            except Exception:
                self._log.failure("leadership subscriber {callback!r} failed", callback=callback)
