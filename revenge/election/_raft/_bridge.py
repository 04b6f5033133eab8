"""
Where pysyncobj's tick thread and the reactor meet: an immutable view of the
tick thread's state, published by one attribute assignment, and wake-ups and
log lines carried to the reactor with ``callFromThread``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger, LogLevel

if TYPE_CHECKING:
    from revenge.election._raft._transport import ElectionTransport

log = Logger(namespace="revenge.election.raft")

# pysyncobj's state numbers (getStatus()["state"]).
STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}

# A repeated log line of pysyncobj's is written at most this often.
REPEAT_LOG_INTERVAL_S = 60.0


def within(moment: float | None, now: float, window: float) -> bool:
    return moment is not None and now - moment < window


@dataclass(frozen=True)
class View:
    """What the tick thread last saw; immutable, so the reactor may read it at any time."""

    state: str  # follower, candidate, leader; "stopped" before start and after stop
    raft_term: int
    leader_address: str | None
    connected: frozenset[str]
    # (address, node id) pairs, as learnt from hellos.
    peer_ids: tuple[tuple[str, str], ...]
    # Peers whose last hello said they cannot do the leader's work.
    ineligible_peers: frozenset[str] = frozenset()
    # Leader: send time of the newest heartbeat that a majority answered.
    quorum_sent_at: float | None = None
    # Follower: arrival time of the current leader's latest heartbeat.
    leader_heard_at: float | None = None
    # Leader being stopped: "requested" or "refused" once the transfer was tried.
    handoff: str | None = None
    # Why this node's raft thread is out of order (it then does not lead).
    broken: str | None = None
    # Leader: since when the lease has been held without a break (monotonic).
    lease_since: float | None = None

    def signature(self, now: float, lease: float, freshness: float) -> tuple[Any, ...]:
        """The parts subscribers notice; a change of these wakes the reactor."""
        return (
            self.state,
            self.raft_term,
            self.leader_address,
            self.connected,
            self.peer_ids,
            self.ineligible_peers,
            self.handoff,
            self.broken,
            within(self.quorum_sent_at, now, lease),
            within(self.leader_heard_at, now, freshness),
        )

    def node_id_of(self, address: str) -> str | None:
        for known_address, node_id in self.peer_ids:
            if known_address == address:
                return node_id
        return None


STOPPED = View("stopped", 0, None, frozenset(), ())


class Bridge:
    """The meeting point of the tick thread and the reactor."""

    def __init__(self, reactor: Any, on_change: Callable[[], None], lease: float,
                 freshness: float) -> None:
        self._reactor = reactor
        self._on_change = on_change
        self._lease = lease
        self._freshness = freshness
        self.view = STOPPED
        self._signature: tuple[Any, ...] = ()
        self._requests: queue.SimpleQueue[Callable[[ElectionTransport], None]] = (
            queue.SimpleQueue()
        )
        # Set by the reactor just before pysyncobj is told to shut down: the
        # connections it then closes are not news.
        self.closing = False
        # Registered by the transport as pysyncobj builds it.
        self.transport: ElectionTransport | None = None
        # Written by the reactor (set_eligible), read by the tick thread.
        self.eligible = True

    # Tick thread.

    def publish(self, view: View) -> None:
        self.view = view
        signature = view.signature(time.monotonic(), self._lease, self._freshness)
        if signature != self._signature:
            self._signature = signature
            self._reactor.callFromThread(self._on_change)

    def log(self, level: LogLevel, text: str, **fields: Any) -> None:
        self._reactor.callFromThread(log.emit, level, text, **fields)

    def take_requests(self) -> list[Callable[[ElectionTransport], None]]:
        taken = []
        while True:
            try:
                taken.append(self._requests.get_nowait())
            except queue.Empty:
                return taken

    # Reactor thread.

    def request(self, work: Callable[[ElectionTransport], None]) -> None:
        self._requests.put(work)

    def reset(self) -> None:
        """Before a new SyncObj starts (a restart after failures)."""
        self.closing = False
        self.transport = None
        self._signature = ()


class PysyncobjLogHandler(logging.Handler):
    """
    Hands pysyncobj's stdlib log records to twisted.logger on the reactor
    thread, each distinct message at most once per minute: pysyncobj logs
    some failures on every tick (50 a second), which must never become a
    flood of identical lines.
    """

    def __init__(self, reactor: Any) -> None:
        super().__init__(logging.WARNING)
        self._reactor = reactor
        self._lock = threading.Lock()
        # message template -> (when last written, lines suppressed since)
        self._written: dict[str, tuple[float, int]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.levelno}:{record.msg}"
        now = time.monotonic()
        with self._lock:
            last = self._written.get(key)
            if last is not None and now - last[0] < REPEAT_LOG_INTERVAL_S:
                self._written[key] = (last[0], last[1] + 1)
                return
            suppressed = 0 if last is None else last[1]
            self._written[key] = (now, 0)
            if len(self._written) > 1000:
                self._written.clear()
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if suppressed:
            text += f" (and {suppressed} more like it in the last minute)"
        level = LogLevel.warn if record.levelno < logging.ERROR else LogLevel.error
        self._reactor.callFromThread(log.emit, level, "pysyncobj: {text}", text=text)


_log_bridge_installed = threading.Lock()
_log_bridge: list[PysyncobjLogHandler] = []


def route_pysyncobj_logs(reactor: Any) -> None:
    """Send pysyncobj's log records to twisted.logger (once per process)."""
    with _log_bridge_installed:
        if _log_bridge:
            return
        handler = PysyncobjLogHandler(reactor)
        pysyncobj_logger = logging.getLogger("pysyncobj")
        pysyncobj_logger.addHandler(handler)
        pysyncobj_logger.propagate = False
        _log_bridge.append(handler)
