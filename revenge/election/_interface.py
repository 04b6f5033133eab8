"""The leader election contract (see docs/design.md, "Interfaces")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface


@dataclass(frozen=True)
class LeadershipChange:
    """Delivered to subscribers on the reactor thread whenever leadership changes."""

    is_leader: bool
    leader: str | None
    term: int


class IElection(Interface):
    """Decides which node runs the leader-only work."""

    name = Attribute("The backend's registered name, e.g. 'standalone' or 'raft'.")
    node_id = Attribute("This node's id.")

    def start() -> Deferred[None]:
        """Join the election; fires once the provider is running (not necessarily leading)."""

    def stop() -> Deferred[None]:
        """Leave the election, handing leadership over first when this node leads."""

    def is_leader() -> bool:
        """True only while this node holds a current lease or quorum."""

    def leader() -> str | None:
        """The current leader's node id, or None when no leader is known."""

    def term() -> int:
        """The fencing token: never decreases, grows with each new leadership."""

    def status() -> dict[str, Any]:
        """Backend-specific fields for ``/api/v1/cluster`` (never secrets)."""

    def subscribe(callback: Callable[[LeadershipChange], None]) -> Callable[[], None]:
        """Call ``callback`` on every change (on the reactor thread); returns an unsubscribe function."""


class IYieldingElection(Interface):
    """
    An election that can be told whether this node can do the leader's work
    (reach the database and storage). While it cannot, it hands leadership to
    a node that can and does not seek leadership itself, as far as the
    backend allows (docs/jobs.md, "Leadership follows the work").
    """

    def set_eligible(eligible: bool, reason: str | None) -> None:
        """Called on the reactor thread whenever this node's ability changes."""


class IElectionHealth(Interface):
    """An election whose own machinery can fail; ``/readyz`` includes its check."""

    def check() -> Deferred[None]:
        """Fires when the election works; fails (naming why) while it does not."""
