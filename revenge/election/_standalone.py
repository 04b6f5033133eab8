"""
The ``standalone`` election provider: a single node that is always leader.

Nothing is elected, so leadership never changes: ``is_leader()`` is true,
``leader()`` is this node and ``term()`` is 1 from construction on, before
``start()`` and after ``stop()`` too. ``start()`` still announces that
leadership once to the subscribers, so code written for a real election
(run missed jobs on becoming leader) works unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from revenge.election._interface import IElection, LeadershipChange
from revenge.election._listeners import LeadershipListeners

__all__ = ["StandaloneElection", "create_standalone_election"]

_log = Logger()

# The only term there is: a fencing token that never needs to move.
_TERM = 1


@implementer(IElection)
class StandaloneElection:
    """This node leads, alone, for ever."""

    name = "standalone"

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._listeners = LeadershipListeners(_log)
        self._announced = False

    def start(self) -> Deferred[None]:
        # start() is called on the reactor thread (service startup), so
        # subscribers are called there too, as IElection requires.
        if not self._announced:
            self._announced = True
            self._listeners.notify(
                LeadershipChange(is_leader=True, leader=self.node_id, term=_TERM)
            )
        return succeed(None)

    def stop(self) -> Deferred[None]:
        # There is nobody to hand leadership over to.
        return succeed(None)

    def is_leader(self) -> bool:
        return True

    def leader(self) -> str | None:
        return self.node_id

    def term(self) -> int:
        return _TERM

    def status(self) -> dict[str, Any]:
        return {"peers": [], "has_quorum": True}

    def subscribe(self, callback: Callable[[LeadershipChange], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)


class _ElectionConfig(Protocol):
    """The part of the configuration this provider reads."""

    @property
    def node_id(self) -> str: ...


def create_standalone_election(config: _ElectionConfig, reactor: Any) -> StandaloneElection:
    """Entry point ``revenge.election: standalone``; the reactor is not needed."""
    return StandaloneElection(config.node_id)
