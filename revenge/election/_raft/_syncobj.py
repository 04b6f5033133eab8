"""
pysyncobj's SyncObj, with the few parts of its insides this provider needs.

Pre-vote, the lease's step-down and the tick's failure guard need to read and
set state that pysyncobj keeps in name-mangled attributes (``__raftState``
becomes ``_SyncObj__raftState``). All of that access is here, in one class,
and :func:`check_pysyncobj` verifies at startup that the installed version
still has every name, so that an upgrade fails with one clear line instead of
misbehaving (setup.cfg pins the versions this was written against).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from pysyncobj import SyncObj
from pysyncobj.tcp_connection import TcpConnection

# Methods and instance attributes of pysyncobj that this module relies on.
_SYNCOBJ_METHODS = (
    "_SyncObj__getCurrentLogIndex",
    "_SyncObj__getCurrentLogTerm",
    "_SyncObj__connectedToAnyone",
    "_SyncObj__generateRaftTimeout",
    "_onTick",
    "_isLeader",
    "_getLeader",
    "transferLeadership",
)
_SYNCOBJ_ATTRIBUTES = (
    "_SyncObj__raftElectionDeadline",
    "_SyncObj__raftState",
    "_SyncObj__transferInProgress",
    "_SyncObj__otherNodes",
    "_poller",
)
_CONNECTION_ATTRIBUTES = ("_TcpConnection__socket",)

# pysyncobj's _RAFT_STATE values.
FOLLOWER, CANDIDATE, LEADER = 0, 1, 2


class PysyncobjMismatch(Exception):
    """The installed pysyncobj lacks something this provider relies on."""


def check_pysyncobj() -> None:
    """Raise :class:`PysyncobjMismatch` unless pysyncobj's classes have what we use."""
    missing = [name for name in _SYNCOBJ_METHODS if not hasattr(SyncObj, name)]
    if missing:
        raise PysyncobjMismatch(
            f"the installed pysyncobj lacks {', '.join(missing)} (install the version "
            "setup.cfg names)"
        )


def check_instance(syncobj: SyncObj) -> None:
    """After construction: the instance attributes exist too."""
    missing = [name for name in _SYNCOBJ_ATTRIBUTES if not hasattr(syncobj, name)]
    connection = TcpConnection(poller=syncobj._poller)
    missing += [name for name in _CONNECTION_ATTRIBUTES if not hasattr(connection, name)]
    if missing:
        raise PysyncobjMismatch(
            f"the installed pysyncobj lacks {', '.join(missing)} (install the version "
            "setup.cfg names)"
        )


class TickHooks(Protocol):
    """What the transport does around pysyncobj's tick (all on the tick thread)."""

    def before_tick(self, now: float) -> None: ...

    def tick_failed(self, error: Exception, now: float) -> None: ...

    def tick_succeeded(self, now: float) -> None: ...


class ElectionSyncObj(SyncObj):  # type: ignore[misc]  # pysyncobj is untyped
    """
    A SyncObj that replicates nothing, whose every tick is guarded: an
    exception in pysyncobj's tick used to skip its network poll (the tick
    thread then spun, logging the same traceback 60-90 times a second); here
    it is reported to ``hooks`` and the poll still happens.
    """

    def __init__(self, hooks: Callable[[], TickHooks | None], *args: Any, **kwargs: Any) -> None:
        # Set before pysyncobj's constructor, which starts the tick thread.
        self._revenge_hooks = hooks
        super().__init__(*args, **kwargs)

    def _onTick(self, timeToWait: float = 0.0) -> None:  # noqa: N802, N803 (pysyncobj's names)
        hooks = self._revenge_hooks()
        now = time.monotonic()
        if hooks is not None:
            try:
                hooks.before_tick(now)
            except Exception as error:
                hooks.tick_failed(error, now)
        try:
            super()._onTick(timeToWait)
        except Exception as error:
            if hooks is not None:
                hooks.tick_failed(error, time.monotonic())
            # The failure skipped pysyncobj's poll: do it here, so that the
            # network keeps moving and the thread does not spin.
            try:
                self._poller.poll(timeToWait)
            except Exception:
                time.sleep(timeToWait)
            return
        if hooks is not None:
            hooks.tick_succeeded(time.monotonic())

    # Reading pysyncobj's state.

    @property
    def raft_state(self) -> int:
        state: int = self._SyncObj__raftState
        return state

    def last_log_index(self) -> int:
        index: int = self._SyncObj__getCurrentLogIndex()
        return index

    def last_log_term(self) -> int:
        term: int = self._SyncObj__getCurrentLogTerm()
        return term

    def transfer_in_progress(self) -> bool:
        """A TimeoutNow from the leader asked this node to stand now."""
        return bool(self._SyncObj__transferInProgress)

    def election_due(self, now: float) -> bool:
        """pysyncobj would start an election in this tick."""
        return (
            self._SyncObj__raftState in (FOLLOWER, CANDIDATE)
            and self._SyncObj__raftElectionDeadline < now
            and bool(self._SyncObj__connectedToAnyone())
        )

    @property
    def peer_count(self) -> int:
        return len(self._SyncObj__otherNodes)

    # Changing it.

    def postpone_election(self, now: float) -> None:
        """Push the election timer out by a fresh random timeout (no election this tick)."""
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()

    def elect_now(self) -> None:
        """Start an election at the next tick (after a won pre-vote)."""
        self._SyncObj__raftElectionDeadline = 0.0
