"""
The ``raft`` election provider: Raft among a static list of nodes, with pysyncobj.

Only the election part of Raft is used; nothing is replicated. See
docs/deployment/raft-clustering.md for operators; this is for readers of the code.

Threads
    pysyncobj runs Raft on its own thread (the "tick thread": network I/O and
    timers). Nothing on that thread touches reactor state. It talks to the
    reactor in three ways only:

    - it publishes an immutable :class:`_View` of its state after every tick
      and state change (one attribute assignment, read by the reactor);
    - when something a subscriber cares about changed, it wakes the reactor
      with ``reactor.callFromThread``; its log lines travel the same way;
    - the reactor hands it work (the leadership transfer on stop) through a
      queue that it drains on every tick.

    The reactor also re-checks the view every ``RaftTuning.watch_interval``:
    leadership can lapse by time alone (see below), without any event on the
    tick thread, and a stalled tick thread must not leave a stale "leader"
    announcement behind.

Leadership only with quorum: a lease from send times
    pysyncobj lets a leader that lost its followers believe it leads for
    ``leaderFallbackTimeout`` (30 s by default), and a paused leader wakes up
    believing it. Here every heartbeat (``append_entries``) carries the leader's
    monotonic send time and term; a follower that accepts it echoes both in its
    answer (``next_node_idx``). ``is_leader()`` is true while the newest
    heartbeat that a majority (this node included) has answered was *sent*
    less than ``election_timeout_min`` ago, checked with the clock at call
    time. Counting from the send time, not the arrival of the answer, means
    answers that waited in a socket buffer while this process was stopped do
    not renew anything. pysyncobj's own fallback is set to the same duration
    so that its state follows.

Stepping down on stop
    A stopping leader first stops calling itself leader, then sends Raft's
    TimeoutNow (pysyncobj's ``transferLeadership``) to its most up-to-date
    follower, which starts an election at once; the old leader stays a voter
    until it sees the successor's heartbeat (or ``handoff_timeout``), then
    closes its port.

Faster failover when the leader's process dies
    When the connection to the leader closes (its process exited: the kernel
    closed its sockets), the surviving followers do not wait out their
    election timeouts. They rank themselves by address among the peers they
    are still connected to; the first starts an election at once (by
    delivering the same TimeoutNow to itself), the others only if it has not
    done so ``takeover_step`` seconds per rank later. Ranking instead of racing
    avoids split votes. A leader that vanishes without closing its connections
    (host lost, network partition, paused process) is replaced through the
    ordinary election timeout.

Warm links
    pysyncobj drops a connection on which nothing arrived for
    ``connectionTimeout``, and it notices only when it next sends on it.
    Followers send nothing to each other while a leader lives, so the first
    vote request after the leader's death used to be lost on a link that
    silently timed out, costing one or two more election rounds (the slow
    tail measured in docs/deployment/raft-clustering.md). Every node
    therefore sends a small hello, carrying its node id, to every connected
    peer every ``keepalive_interval``. The node ids let ``leader()`` answer
    with the leader's node id rather than its Raft address.

Ticks out of step
    pysyncobj checks its election timer only when its thread ticks. Followers
    woken by the same heartbeat tick in step afterwards, so two timers that
    expire within one tick period start two elections within a millisecond:
    a split vote and another round. Every tick here waits a random time
    (between a quarter of ``tick_interval`` and all of it) instead.

Names that do not resolve yet
    Peer host names are resolved on the reactor's thread pool, never on the
    tick thread (a slow DNS server must not stall Raft's timers), again every
    ``resolve_interval`` (a restarted pod may come back with a new address).
    Until a name resolves its node is simply not connected.

Durable term and vote
    pysyncobj's journal keeps the current term and the vote of that term in
    ``raft.data_dir``: without them a node that restarts in the middle of an
    election could vote twice in one term (two leaders in one term), and its
    term would start again from 0.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import ipaddress
import logging
import math
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Protocol

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf
from pysyncobj.node import TCPNode
from pysyncobj.transport import TCPTransport
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from revenge.election._interface import IElection, LeadershipChange
from revenge.providers import ProviderError

__all__ = [
    "RaftElection",
    "RaftSetupError",
    "RaftTuning",
    "TermSource",
    "create_raft_election",
    "resolve_host",
]

_log = Logger(namespace="revenge.election.raft")

# Maps the Raft term to the fencing token reported by term(); see set_term_source.
TermSource = Callable[[int], int]

# Message fields and types added to pysyncobj's protocol. Every peer runs this
# module; a plain pysyncobj peer would ignore them.
_HELLO = "revenge.hello"
_SENT_AT = "revenge.sent_at"  # on append_entries: (term, the leader's monotonic send time)
_ECHO = "revenge.echo"  # on next_node_idx: the _SENT_AT being answered

# pysyncobj's state numbers (getStatus()["state"]).
_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}


class RaftSetupError(ProviderError):
    """The raft provider cannot be built from this configuration (one line, names the key)."""


@dataclass(frozen=True)
class RaftTuning:
    """
    Timings, in seconds. The defaults come from the measurements in
    docs/deployment/raft-clustering.md; change them with care.
    """

    # pysyncobj's appendEntriesPeriod: how often the leader sends heartbeats.
    heartbeat_interval: float = 0.05
    # pysyncobj's raftMinTimeout/raftMaxTimeout: a follower that hears no
    # heartbeat for a random time in this range starts an election. The
    # minimum is also the leader's lease (see the module docstring).
    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.6
    # pysyncobj's connectionTimeout: a connection on which nothing arrived
    # for this long is closed.
    connection_timeout: float = 1.5
    # pysyncobj's connectionRetryTime: how often to retry an unreachable peer.
    reconnect_interval: float = 0.25
    # pysyncobj's autoTickPeriod: the tick thread wakes at least this often
    # (after a random wait between a quarter of it and all of it).
    tick_interval: float = 0.02
    # A hello to every connected peer this often keeps every link warm.
    keepalive_interval: float = 0.25
    # Delay per rank before a survivor takes over from a leader whose
    # connection closed; None waits for the election timeout instead.
    takeover_step: float | None = 0.1
    # How long a stopping leader waits for its successor before leaving anyway.
    handoff_timeout: float = 1.0
    # How often peer host names are resolved again.
    resolve_interval: float = 2.0
    # How often the reactor re-checks the lease and the view.
    watch_interval: float = 0.1

    def check(self) -> None:
        """Raise ValueError when pysyncobj would refuse these timings or they make no sense."""
        problems = []
        if not self.heartbeat_interval > 0:
            problems.append("heartbeat_interval must be positive")
        if not self.election_timeout_min > 3 * self.heartbeat_interval:
            problems.append("election_timeout_min must exceed 3 heartbeat intervals")
        if not self.election_timeout_max > self.election_timeout_min:
            problems.append("election_timeout_max must exceed election_timeout_min")
        if not self.connection_timeout >= self.election_timeout_max:
            problems.append("connection_timeout must be at least election_timeout_max")
        if not 0 < self.keepalive_interval < self.connection_timeout / 2:
            problems.append("keepalive_interval must be under half of connection_timeout")
        if self.takeover_step is not None and not self.takeover_step >= 0:
            problems.append("takeover_step must not be negative")
        for name in ("reconnect_interval", "tick_interval", "handoff_timeout",
                     "resolve_interval", "watch_interval"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class _View:
    """What the tick thread last saw; immutable, so the reactor may read it at any time."""

    state: str  # follower, candidate, leader; "stopped" before start and after stop
    raft_term: int
    leader_address: str | None
    connected: frozenset[str]
    # (address, node id) pairs, as learnt from hellos.
    peer_ids: tuple[tuple[str, str], ...]
    # Leader: send time of the newest heartbeat that a majority answered.
    quorum_sent_at: float | None = None
    # Follower: arrival time of the current leader's latest heartbeat.
    leader_heard_at: float | None = None
    # Leader being stopped: "requested" or "refused" once the transfer was tried.
    handoff: str | None = None

    def signature(self, now: float, lease: float, freshness: float) -> tuple[Any, ...]:
        """The parts subscribers notice; a change of these wakes the reactor."""
        return (
            self.state,
            self.raft_term,
            self.leader_address,
            self.connected,
            self.peer_ids,
            self.handoff,
            _within(self.quorum_sent_at, now, lease),
            _within(self.leader_heard_at, now, freshness),
        )


    def node_id_of(self, address: str) -> str | None:
        for known_address, node_id in self.peer_ids:
            if known_address == address:
                return node_id
        return None


_STOPPED = _View("stopped", 0, None, frozenset(), ())


def _within(moment: float | None, now: float, window: float) -> bool:
    return moment is not None and now - moment < window


class _Bridge:
    """The meeting point of the tick thread and the reactor."""

    def __init__(self, reactor: Any, on_change: Callable[[], None], lease: float,
                 freshness: float) -> None:
        self._reactor = reactor
        self._on_change = on_change
        self._lease = lease
        self._freshness = freshness
        self.view = _STOPPED
        self._signature: tuple[Any, ...] = ()
        self._requests: queue.SimpleQueue[Callable[[_ElectionTransport], None]] = (
            queue.SimpleQueue()
        )
        # Set by the reactor just before pysyncobj is told to shut down: the
        # connections it then closes are not news.
        self.closing = False
        # Registered by the transport as pysyncobj builds it.
        self.transport: _ElectionTransport | None = None

    # Tick thread.

    def publish(self, view: _View) -> None:
        self.view = view
        signature = view.signature(time.monotonic(), self._lease, self._freshness)
        if signature != self._signature:
            self._signature = signature
            self._reactor.callFromThread(self._on_change)

    def log(self, level: LogLevel, text: str, **fields: Any) -> None:
        self._reactor.callFromThread(_log.emit, level, text, **fields)

    def take_requests(self) -> list[Callable[[_ElectionTransport], None]]:
        taken = []
        while True:
            try:
                taken.append(self._requests.get_nowait())
            except queue.Empty:
                return taken

    # Reactor thread.

    def request(self, work: Callable[[_ElectionTransport], None]) -> None:
        self._requests.put(work)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_host(host: str) -> str:
    """One address of ``host``, IPv4 first (blocking: call it off the reactor)."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    ordered = sorted(infos, key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    if not ordered:
        raise OSError(f"no address for {host}")
    return str(ordered[0][4][0])


class _AddressBook:
    """Peer host name to IP address; written by the reactor, read by the tick thread."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._ips: dict[str, str | None] = {}
        for host in hosts:
            self._ips[host] = host if _is_ip_literal(host) else None

    def ip(self, host: str) -> str | None:
        with self._lock:
            return self._ips.get(host)

    def names(self) -> list[str]:
        """The hosts that need resolving (not IP literals)."""
        return [host for host in self._ips if not _is_ip_literal(host)]

    def set(self, host: str, ip: str) -> None:
        with self._lock:
            self._ips[host] = ip


class _PeerNode(TCPNode):  # type: ignore[misc]  # pysyncobj is untyped
    """A peer whose IP comes from the address book instead of a lookup on the tick thread."""

    def __init__(self, address: str, addresses: _AddressBook) -> None:
        super().__init__(address)
        self._addresses = addresses

    @property
    def ip(self) -> str | None:
        return self._addresses.ip(self.host)


@dataclass
class _Takeover:
    """A survivor's plan to replace a leader whose connection closed."""

    leader: Any  # the pysyncobj node
    term: int
    at: float


class _ElectionTransport(TCPTransport):  # type: ignore[misc]  # pysyncobj is untyped
    """
    pysyncobj's TCP transport plus this module's additions; every method
    runs on the tick thread. pysyncobj builds it (``transportClass``).
    """

    def __init__(self, bridge: _Bridge, tuning: RaftTuning, node_id: str,
                 syncObj: Any, selfNode: Any, otherNodes: Any) -> None:  # noqa: N803
        # Set before pysyncobj's constructor: it already calls the overrides.
        self._bridge = bridge
        self._tuning = tuning
        self._node_id = node_id
        self._peer_ids: dict[str, str] = {}
        self._peer_ids_view: tuple[tuple[str, str], ...] = ()
        # pysyncobj's state, kept from its onStateChanged calls (getStatus()
        # would cost a dict of strings on every tick).
        self.raft_state = 0
        self._acks: dict[str, float] = {}
        self._acks_term = -1
        self._answering: tuple[Any, Any] | None = None
        self._leader_heard_at: float | None = None
        self._next_keepalive = 0.0
        self._takeover: _Takeover | None = None
        self._handoff: str | None = None
        self._connect_errors = 0
        bridge.transport = self
        super().__init__(syncObj, selfNode, otherNodes)

    # pysyncobj's hooks.

    def _onTick(self) -> None:  # noqa: N802 (pysyncobj's name)
        super()._onTick()
        for work in self._bridge.take_requests():
            work(self)
        now = time.monotonic()
        if now >= self._next_keepalive:
            self._next_keepalive = now + self._tuning.keepalive_interval
            for node in list(self._nodes):
                if self._syncObj.isNodeConnected(node):
                    self._say_hello(node)
        self._maybe_take_over(now)
        self.publish()
        # Ticks out of step (see the module docstring); pysyncobj reads this
        # setting afresh for every tick.
        self._syncObj.conf.autoTickPeriod = random.uniform(
            self._tuning.tick_interval / 4, self._tuning.tick_interval
        )

    def send(self, node: Any, message: Any) -> bool:
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == "append_entries":
                message = {**message, _SENT_AT: (message["term"], time.monotonic())}
            elif kind == "next_node_idx" and self._answering is not None:
                asker, stamp = self._answering
                if asker == node and stamp is not None:
                    message = {**message, _ECHO: stamp}
        return bool(super().send(node, message))

    def _onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == _HELLO:
            node_id = message.get("node_id")
            known = self._peer_ids.get(node.address)
            if isinstance(node_id, str) and node_id and known != node_id[:200]:
                self._peer_ids[node.address] = node_id[:200]
                self._peer_ids_view = tuple(sorted(self._peer_ids.items()))
            return
        if kind == "append_entries":
            # pysyncobj answers while handling the message; send() adds the echo.
            self._answering = (node, message.get(_SENT_AT))
            try:
                super()._onMessageReceived(node, message)
            finally:
                self._answering = None
            syncobj = self._syncObj
            if not syncobj._isLeader() and syncobj._getLeader() == node:
                self._leader_heard_at = time.monotonic()
            return
        if kind == "next_node_idx":
            self._record_ack(node, message.get(_ECHO))
        super()._onMessageReceived(node, message)

    def _onNodeConnected(self, node: Any) -> None:  # noqa: N802 (pysyncobj's name)
        # The hello goes first, so a peer knows our node id before it can
        # learn from anything else that we lead.
        self._say_hello(node)
        super()._onNodeConnected(node)

    def _onNodeDisconnected(self, node: Any) -> None:  # noqa: N802 (pysyncobj's name)
        super()._onNodeDisconnected(node)
        if self._bridge.closing or self._tuning.takeover_step is None:
            return
        syncobj = self._syncObj
        if syncobj._isLeader() or syncobj._getLeader() != node:
            return
        # The leader's connection closed. Rank the survivors this node can
        # still reach, by address, so that they do not all start at once.
        survivors = sorted(
            [self._selfNode.address]
            + [peer.address for peer in self._nodes
               if peer != node and syncobj.isNodeConnected(peer)]
        )
        rank = survivors.index(self._selfNode.address)
        now = time.monotonic()
        start_at = now + rank * self._tuning.takeover_step
        self._takeover = _Takeover(node, syncobj.raftCurrentTerm, start_at)
        self._maybe_take_over(now)

    def _connectIfNecessarySingle(self, node: Any) -> bool:  # noqa: N802 (pysyncobj's name)
        # An exception here would skip the rest of pysyncobj's tick (its poll
        # included) for as long as the problem lasts; a failed attempt is
        # retried after reconnect_interval anyway.
        try:
            return bool(super()._connectIfNecessarySingle(node))
        except Exception as error:
            self._connect_errors += 1
            if self._connect_errors in (1, 10, 100) or self._connect_errors % 1000 == 0:
                self._bridge.log(
                    LogLevel.warn,
                    "cannot connect to raft peer {peer}: {error} ({count} failures so far)",
                    peer=node.address, error=f"{type(error).__name__}: {error}",
                    count=self._connect_errors,
                )
            return False

    # This module's additions.

    def _say_hello(self, node: Any) -> None:
        self.send(node, {"type": _HELLO, "node_id": self._node_id})

    def _record_ack(self, node: Any, echo: Any) -> None:
        if not (isinstance(echo, tuple) and len(echo) == 2):
            return
        term, sent_at = echo
        if not isinstance(term, int) or not isinstance(sent_at, float):
            return
        syncobj = self._syncObj
        if not syncobj._isLeader() or term != syncobj.raftCurrentTerm:
            return
        if term != self._acks_term:
            self._acks = {}
            self._acks_term = term
        if sent_at > self._acks.get(node.address, -math.inf):
            self._acks[node.address] = sent_at

    def _quorum_sent_at(self, now: float) -> float | None:
        others_needed = (len(self._nodes) + 1) // 2
        if others_needed == 0:
            return now  # a cluster of one
        if self._acks_term != self._syncObj.raftCurrentTerm:
            return None
        answered = sorted(self._acks.values(), reverse=True)
        if len(answered) < others_needed:
            return None
        return answered[others_needed - 1]

    def _maybe_take_over(self, now: float) -> None:
        plan = self._takeover
        if plan is None or now < plan.at:
            return
        self._takeover = None
        syncobj = self._syncObj
        if (
            syncobj._isLeader()
            or syncobj._getLeader() != plan.leader
            or syncobj.raftCurrentTerm != plan.term
            or syncobj.isNodeConnected(plan.leader)
        ):
            return  # someone else started an election, or the leader came back
        # pysyncobj's TimeoutNow handling makes this node start an election at
        # its next tick, as if the leader had asked it to take over.
        TCPTransport._onMessageReceived(
            self, plan.leader, {"type": "timeout_now", "term": plan.term}
        )

    def hand_over(self) -> None:
        """Ask the most up-to-date follower to take over now (Raft's TimeoutNow)."""

        def done(result: Any, error: Any) -> None:
            self._handoff = "requested" if error == FAIL_REASON.SUCCESS else "refused"

        self._syncObj.transferLeadership(callback=done)
        self.publish()

    def publish(self) -> None:
        syncobj = self._syncObj
        now = time.monotonic()
        leading = bool(syncobj._isLeader())
        leader = syncobj._getLeader()
        state = _STATE_NAMES.get(self.raft_state, "follower")
        heard_at = None
        if not leading and leader is not None:
            heard_at = self._leader_heard_at
        self._bridge.publish(
            _View(
                state=state,
                raft_term=int(syncobj.raftCurrentTerm),
                leader_address=leader.address if leader is not None else None,
                connected=frozenset(
                    node.address for node in self._nodes if syncobj.isNodeConnected(node)
                ),
                peer_ids=self._peer_ids_view,
                quorum_sent_at=self._quorum_sent_at(now) if leading else None,
                leader_heard_at=heard_at,
                handoff=self._handoff,
            )
        )


class _PysyncobjLogHandler(logging.Handler):
    """Hands pysyncobj's stdlib log records to twisted.logger on the reactor thread."""

    def __init__(self, reactor: Any) -> None:
        super().__init__(logging.WARNING)
        self._reactor = reactor

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        level = LogLevel.warn if record.levelno < logging.ERROR else LogLevel.error
        self._reactor.callFromThread(_log.emit, level, "pysyncobj: {text}", text=text)


_log_bridge_installed = threading.Lock()
_log_bridge: list[_PysyncobjLogHandler] = []


def _route_pysyncobj_logs(reactor: Any) -> None:
    with _log_bridge_installed:
        if _log_bridge:
            return
        handler = _PysyncobjLogHandler(reactor)
        pysyncobj_logger = logging.getLogger("pysyncobj")
        pysyncobj_logger.addHandler(handler)
        pysyncobj_logger.propagate = False
        _log_bridge.append(handler)


def _lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Create the directory and hold its lock: two nodes must never share one journal."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(state_dir / "lock", "ab")  # noqa: SIM115 (held until stop)
    except OSError as error:
        raise RaftSetupError(
            f"raft.data_dir: cannot use {str(state_dir)!r}: {error.strerror or error}"
        ) from None
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        lock_file.close()
        if error.errno in (errno.EAGAIN, errno.EACCES):
            raise RaftSetupError(
                f"raft.data_dir: {str(state_dir)!r} is in use by another running node "
                "(every node needs its own)"
            ) from None
        raise RaftSetupError(
            f"raft.data_dir: cannot lock {str(state_dir)!r}: {error.strerror or error}"
        ) from None
    return lock_file


@dataclass(frozen=True)
class _Assessment:
    """is_leader, leader, term and has_quorum, from one view at one moment."""

    is_leader: bool
    leader_address: str | None
    leader: str | None
    term: int
    has_quorum: bool
    view: _View


@implementer(IElection)
class RaftElection:
    """This node's membership in a Raft cluster; see the module docstring."""

    name = "raft"

    def __init__(
        self,
        node_id: str,
        *,
        advertise_addr: str,
        peers: Sequence[str],
        secret: str,
        reactor: Any,
        bind_addr: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        tuning: RaftTuning = RaftTuning(),
        resolve: Callable[[str], str] = resolve_host,
    ) -> None:
        if not secret:
            # pysyncobj unpickles what arrives on its port; only its password
            # (authenticated encryption) keeps strangers from running code here.
            raise RaftSetupError(
                "raft.secret: must not be empty: pysyncobj unpickles whatever arrives "
                "on its port, so the shared secret is what keeps strangers out"
            )
        try:
            tuning.check()
        except ValueError as error:
            raise RaftSetupError(f"raft tuning: {error}") from None
        self.node_id = node_id
        self._advertise_addr = advertise_addr
        self._bind_addr = bind_addr or advertise_addr
        # This node's own address may be listed too (one list for every node).
        self._peers = sorted({peer for peer in peers if peer != advertise_addr})
        self.__secret = secret
        self._reactor = reactor
        self._tuning = tuning
        self._resolve = resolve
        self._lease = tuning.election_timeout_min
        self._freshness = tuning.election_timeout_max
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._lock_file: IO[bytes] | None = None
        if self._state_dir is not None:
            self._lock_file = _lock_state_dir(self._state_dir)
        self._addresses = _AddressBook(peer.rpartition(":")[0] for peer in self._peers)
        self._unresolved_warned: set[str] = set()
        self._resolving: set[str] = set()
        self._bridge = _Bridge(reactor, self._on_view_changed, self._lease, self._freshness)
        self._syncobj: Any = None
        self._running = False
        self._stepping_down = False
        self._stopped: Deferred[None] | None = None
        self._term_source: TermSource | None = None
        self._subscribers: dict[object, Callable[[LeadershipChange], None]] = {}
        self._announced: tuple[bool, str | None, int, bool] = (False, None, 0, False)
        self._view_waiters: list[tuple[Callable[[_View], bool], Deferred[None]]] = []
        self._watch = LoopingCall(self._refresh)
        self._watch.clock = reactor
        self._resolver = LoopingCall(self._resolve_peers)
        self._resolver.clock = reactor

    def __repr__(self) -> str:
        return f"<RaftElection node_id={self.node_id!r} address={self._advertise_addr!r}>"

    # IElection.

    def start(self) -> Deferred[None]:
        if self._syncobj is not None:
            return succeed(None)
        _route_pysyncobj_logs(self._reactor)
        self._resolver.start(self._tuning.resolve_interval, now=True)
        t = self._tuning
        journal = None
        if self._state_dir is not None:
            journal = str(self._state_dir / "journal")
        conf = SyncObjConf(
            password=self.__secret,
            autoTick=True,
            autoTickPeriod=t.tick_interval,
            appendEntriesPeriod=t.heartbeat_interval,
            raftMinTimeout=t.election_timeout_min,
            raftMaxTimeout=t.election_timeout_max,
            leaderFallbackTimeout=t.election_timeout_min,
            connectionTimeout=t.connection_timeout,
            connectionRetryTime=t.reconnect_interval,
            bindAddress=self._bind_addr,
            journalFile=journal,
            # Never fork this threaded process; there is nothing to dump anyway.
            useFork=False,
            onStateChanged=self._on_raft_state_changed,
        )
        transport_class = functools.partial(_ElectionTransport, self._bridge, t, self.node_id)
        try:
            self._syncobj = SyncObj(
                TCPNode(self._advertise_addr),
                [_PeerNode(peer, self._addresses) for peer in self._peers],
                conf,
                transportClass=transport_class,
            )
        except BaseException:
            self._release()
            raise
        self._running = True
        transport = self._bridge.transport
        if transport is not None and not transport.ready:
            _log.warn(
                "raft cannot listen on {address} yet; retrying every second",
                address=self._bind_addr,
            )
        self._watch.start(t.watch_interval, now=False)
        _log.info(
            "raft node {node_id} at {address} joining peers {peers}",
            node_id=self.node_id,
            address=self._advertise_addr,
            peers=", ".join(self._peers) or "(none)",
        )
        return succeed(None)

    def stop(self) -> Deferred[None]:
        if self._stopped is None:
            self._stopped = ensureDeferred(self._stop())
        return self._stopped

    def is_leader(self) -> bool:
        return self._assess(time.monotonic()).is_leader

    def leader(self) -> str | None:
        return self._assess(time.monotonic()).leader

    def term(self) -> int:
        return self._assess(time.monotonic()).term

    def status(self) -> dict[str, Any]:
        assessment = self._assess(time.monotonic())
        view = assessment.view
        return {
            "node_id": self.node_id,
            "backend": self.name,
            "is_leader": assessment.is_leader,
            "leader": assessment.leader,
            "term": assessment.term,
            "has_quorum": assessment.has_quorum,
            "peers": [
                {
                    "address": peer,
                    "node_id": view.node_id_of(peer),
                    "connected": peer in view.connected,
                    "resolved": self._addresses.ip(peer.rpartition(":")[0]) is not None,
                }
                for peer in self._peers
            ],
            "raft": {
                "address": self._advertise_addr,
                "state": view.state,
                "term": view.raft_term,
                "leader_address": assessment.leader_address,
                "lease_seconds": self._lease,
            },
        }

    def subscribe(self, callback: Callable[[LeadershipChange], None]) -> Callable[[], None]:
        token = object()
        self._subscribers[token] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(token, None)

        return unsubscribe

    # The seam for a fencing counter that outlives the cluster.

    def set_term_source(self, source: TermSource | None) -> None:
        """
        Report ``source(raft_term)`` as ``term()`` instead of the Raft term
        (e.g. a database counter that a new leader increments). It is called
        on the reactor thread whenever the term is read and must not block;
        changes it makes are announced within ``watch_interval``.
        """
        self._term_source = source
        self._refresh()

    # Internals.

    def _assess(self, now: float) -> _Assessment:
        view = self._bridge.view
        term = view.raft_term if self._term_source is None else self._term_source(view.raft_term)
        leading = (
            self._running
            and not self._stepping_down
            and view.state == "leader"
            and _within(view.quorum_sent_at, now, self._lease)
        )
        if leading:
            return _Assessment(True, self._advertise_addr, self.node_id, term, True, view)
        if (
            self._running
            and view.state != "leader"
            and view.leader_address is not None
            and _within(view.leader_heard_at, now, self._freshness)
        ):
            address = view.leader_address
            leader = view.node_id_of(address) or address
            return _Assessment(False, address, leader, term, True, view)
        return _Assessment(False, None, None, term, False, view)

    def _on_raft_state_changed(self, old_state: int, new_state: int) -> None:
        # Tick thread: publish at once rather than at the end of the tick, so
        # that a leader that steps down stops saying so immediately.
        transport = self._bridge.transport
        if transport is not None:
            transport.raft_state = new_state
            transport.publish()
            self._bridge.log(
                LogLevel.info,
                "raft: {old} -> {new}",
                old=_STATE_NAMES.get(old_state, old_state),
                new=_STATE_NAMES.get(new_state, new_state),
            )

    def _on_view_changed(self) -> None:
        self._refresh()
        view = self._bridge.view
        for waiter in list(self._view_waiters):
            condition, done = waiter
            if condition(view):
                self._view_waiters.remove(waiter)
                done.callback(None)

    def _refresh(self) -> None:
        assessment = self._assess(time.monotonic())
        announced = (
            assessment.is_leader,
            assessment.leader,
            assessment.term,
            assessment.has_quorum,
        )
        if announced == self._announced:
            return
        self._announced = announced
        change = LeadershipChange(assessment.is_leader, assessment.leader, assessment.term)
        # A copy: callbacks may unsubscribe while we iterate. One failing
        # subscriber must not keep the others from hearing the news.
        for callback in list(self._subscribers.values()):
            try:
                callback(change)
            except Exception:
                _log.failure("leadership subscriber {callback!r} failed", callback=callback)

    def _wait_for_view(self, condition: Callable[[_View], bool], timeout: float) -> Deferred[None]:
        """Fires when the published view satisfies ``condition``, or after ``timeout``."""
        done: Deferred[None] = Deferred()
        if condition(self._bridge.view):
            done.callback(None)
            return done
        waiter = (condition, done)
        self._view_waiters.append(waiter)

        def give_up() -> None:
            if waiter in self._view_waiters:
                self._view_waiters.remove(waiter)
                done.callback(None)

        call = self._reactor.callLater(timeout, give_up)
        done.addBoth(lambda result: (call.active() and call.cancel(), result)[1])
        return done

    async def _stop(self) -> None:
        syncobj = self._syncobj
        if syncobj is None:
            self._release()
            return
        # From here on this node does not call itself leader, before any
        # successor can be elected.
        self._stepping_down = True
        self._refresh()
        if self._bridge.view.state == "leader":
            started = time.monotonic()
            self._bridge.request(lambda transport: transport.hand_over())
            own = self._advertise_addr
            await self._wait_for_view(
                lambda view: view.handoff == "refused"
                or (view.leader_address not in (None, own) and view.state != "leader"),
                self._tuning.handoff_timeout,
            )
            view = self._bridge.view
            _log.info(
                "raft: handed leadership over to {successor} in {seconds:.3f}s",
                successor=(view.node_id_of(view.leader_address) or view.leader_address)
                if view.leader_address is not None and view.leader_address != own
                else "nobody yet (the others elect one)",
                seconds=time.monotonic() - started,
            )
        self._bridge.closing = True
        syncobj.destroy()
        await self._wait_for_tick_thread(syncobj, self._tuning.handoff_timeout)
        self._running = False
        # The term stays: term() never goes backwards.
        self._bridge.view = replace(_STOPPED, raft_term=self._bridge.view.raft_term)
        if self._watch.running:
            self._watch.stop()
        self._release()
        self._refresh()

    async def _wait_for_tick_thread(self, syncobj: Any, timeout: float) -> None:
        # pysyncobj closes its sockets and journal on its own thread, at its
        # next tick; wait for that without blocking the reactor.
        deadline = time.monotonic() + timeout
        while syncobj.tick_thread_alive() and time.monotonic() < deadline:
            await _later(self._reactor, self._tuning.tick_interval / 5)

    def _release(self) -> None:
        if self._resolver.running:
            self._resolver.stop()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _resolve_peers(self) -> None:
        for host in self._addresses.names():
            if host in self._resolving:
                continue
            self._resolving.add(host)
            pool = self._reactor.getThreadPool()
            resolving = deferToThreadPool(self._reactor, pool, self._resolve, host)
            resolving.addCallbacks(
                functools.partial(self._resolved, host),
                functools.partial(self._not_resolved, host),
            )

    def _resolved(self, host: str, ip: str) -> None:
        self._resolving.discard(host)
        previous = self._addresses.ip(host)
        self._addresses.set(host, ip)
        if previous != ip:
            _log.info("raft peer host {host} resolves to {ip}", host=host, ip=ip)
        self._unresolved_warned.discard(host)

    def _not_resolved(self, host: str, failure: Failure) -> None:
        self._resolving.discard(host)
        # The last known address (if any) stays in use.
        if host not in self._unresolved_warned:
            self._unresolved_warned.add(host)
            _log.warn(
                "raft peer host {host} does not resolve ({error}); retrying every {interval}s",
                host=host,
                error=str(failure.value),
                interval=self._tuning.resolve_interval,
            )


def _later(reactor: Any, seconds: float) -> Deferred[None]:
    done: Deferred[None] = Deferred()
    reactor.callLater(seconds, done.callback, None)
    return done


class _RaftSettings(Protocol):
    @property
    def bind_addr(self) -> str: ...
    @property
    def advertise_addr(self) -> str: ...
    @property
    def peers(self) -> tuple[str, ...]: ...
    @property
    def data_dir(self) -> str: ...
    @property
    def secret(self) -> str: ...


class _ElectionConfig(Protocol):
    """The part of the configuration this provider reads."""

    @property
    def node_id(self) -> str: ...
    @property
    def raft(self) -> _RaftSettings: ...


def create_raft_election(config: _ElectionConfig, reactor: Any) -> RaftElection:
    """Entry point ``revenge.election: raft``."""
    raft = config.raft
    return RaftElection(
        config.node_id,
        advertise_addr=raft.advertise_addr,
        bind_addr=raft.bind_addr,
        peers=raft.peers,
        secret=raft.secret,
        reactor=reactor,
        state_dir=raft.data_dir,
    )
