"""
pysyncobj's TCP transport plus this provider's additions to Raft: every
method runs on the tick thread. pysyncobj builds it (``transportClass``).
The package docstring explains each addition; the comments here say why the
code is shaped as it is.
"""

from __future__ import annotations

import math
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from pysyncobj import FAIL_REASON
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.transport import TCPTransport
from twisted.logger import LogLevel

from revenge.election._raft._bridge import STATE_NAMES, Bridge, View, within
from revenge.election._raft._guard import GuardedConnection, GuardedServer, PortGuard
from revenge.election._raft._syncobj import LEADER, ElectionSyncObj
from revenge.election._raft._tuning import RaftTuning

# Message fields and types added to pysyncobj's protocol. Every peer runs this
# module; a plain pysyncobj peer would ignore them.
HELLO = "revenge.hello"
PREVOTE = "revenge.prevote"
PREVOTE_REPLY = "revenge.prevote_reply"
STALE_TERM = "revenge.stale_term"
RESIGN = "revenge.resign"  # a leader that stepped down says so: its followers elect at once
SENT_AT = "revenge.sent_at"  # on append_entries: (term, the leader's monotonic send time)
ECHO = "revenge.echo"  # on next_node_idx: the SENT_AT being answered
TRANSFER = "revenge.transfer"  # on request_vote: the leader asked for this election
LEASE = "revenge.lease"  # on append_entries: "held", "pending" (new leader) or "lost"

# How long a peer's last hello counts for (its eligibility, in keepalives).
_HELLO_FRESH_KEEPALIVES = 4
# A takeover's pre-vote is asked again this often (fraction of takeover_step),
# this many times, while survivors still hear of the leader's death.
_TAKEOVER_RETRY_FRACTION = 0.25
_TAKEOVER_ATTEMPTS = 4
# How often the log repeats that the tick keeps failing.
_TICK_FAILURE_LOG_INTERVAL_S = 60.0


@dataclass
class _Takeover:
    """A survivor's plan to replace a leader whose connection closed."""

    leader: Any  # the pysyncobj node
    term: int
    at: float
    attempts: int = 0


@dataclass
class _PreVote:
    """A round of asking the peers whether they would vote for us (no term is spent)."""

    term: int  # the term we would stand in
    granted: set[str] = field(default_factory=set)


def _valid_int(value: Any) -> bool:
    return type(value) is int


class ElectionTransport(TCPTransport):  # type: ignore[misc]  # pysyncobj is untyped
    """See the module docstring."""

    def __init__(self, bridge: Bridge, tuning: RaftTuning, node_id: str,
                 syncObj: Any, selfNode: Any, otherNodes: Any) -> None:  # noqa: N803
        # Set before pysyncobj's constructor: it already calls the overrides.
        self._bridge = bridge
        self._tuning = tuning
        self._node_id = node_id
        self._peer_ids: dict[str, str] = {}
        self._peer_ids_view: tuple[tuple[str, str], ...] = ()
        # address -> (eligible, when its hello came)
        self._peer_eligible: dict[str, tuple[bool, float]] = {}
        # pysyncobj's state, kept from its onStateChanged calls (getStatus()
        # would cost a dict of strings on every tick).
        self.raft_state = 0
        self._acks: dict[str, float] = {}
        self._acks_term = -1
        # The lease as last renewed: held without a break since, valid until.
        self._lease_since: float | None = None
        self._lease_until: float | None = None
        self._leader_since: float | None = None
        self._answering: tuple[Any, Any] | None = None
        self._leader_heard_at: float | None = None
        # The last moment a live leader was known (this node or another).
        self._leader_seen_at = time.monotonic()
        self._next_keepalive = 0.0
        self._takeover: _Takeover | None = None
        self._prevote: _PreVote | None = None
        # The term whose election a won pre-vote (or a TimeoutNow) allows.
        self._election_allowed_for: int | None = None
        self._transfer_election_term: int | None = None
        self._campaign_not_before = 0.0
        self._stale_term_sent: dict[str, float] = {}
        self._handoff: str | None = None
        self._next_handover = 0.0
        self._handover_logged = False
        self._connect_errors = 0
        # The tick's failures (see tick_failed).
        self._failing_since: float | None = None
        self._failures_since_log = 0
        self._failure_logged_at = 0.0
        self._last_error = ""
        self.tick_failures = 0
        self.broken: str | None = None
        self.slow_answers = 0
        self.guard = PortGuard(tuning, bridge.log, lambda c: c in self._unknownConnections)
        bridge.transport = self
        super().__init__(syncObj, selfNode, otherNodes)

    @property
    def _sync(self) -> ElectionSyncObj:
        syncobj: ElectionSyncObj = self._syncObj
        return syncobj

    # pysyncobj's hooks: building connections.

    def _createServer(self) -> None:  # noqa: N802 (pysyncobj's name)
        # As TCPTransport._createServer, with our guarded listener.
        conf = self._syncObj.conf
        host, port = conf.bindAddress.rsplit(":", 1)
        if host != "0.0.0.0":
            host = globalDnsResolver().resolve(host)
        self._server = GuardedServer(
            self._syncObj._poller,
            host,
            int(port),
            self._onNewIncomingConnection,
            self.guard,
            send_buffer=conf.sendBufferSize,
            receive_buffer=conf.recvBufferSize,
            connection_timeout=conf.connectionTimeout,
        )

    def addNode(self, node: Any) -> None:  # noqa: N802 (pysyncobj's name)
        # As TCPTransport.addNode, with our guarded connection class.
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conf = self._syncObj.conf
            connection = GuardedConnection(
                self.guard,
                node.address,
                poller=self._syncObj._poller,
                timeout=conf.connectionTimeout,
                sendBufferSize=conf.sendBufferSize,
                recvBufferSize=conf.recvBufferSize,
                keepalive=conf.tcp_keepalive,
            )
            connection.encryptor = self._syncObj.encryptor
            connection.setOnConnectedCallback(lambda: self._onOutgoingConnected(connection))
            connection.setOnMessageReceivedCallback(
                lambda message: self._onMessageReceived(node, message)
            )
            connection.setOnDisconnectedCallback(lambda: self._onDisconnected(connection))
            self._connections[node] = connection

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

    # pysyncobj's hooks: the tick.

    def _onTick(self) -> None:  # noqa: N802 (pysyncobj's name)
        super()._onTick()
        for work in self._bridge.take_requests():
            work(self)
        now = time.monotonic()
        self.guard.sweep(now)
        if now >= self._next_keepalive:
            self.say_hello_to_all()
        self._maybe_take_over(now)
        self._maybe_hand_over(now)
        if self._leader_alive(now):
            self._leader_seen_at = now
        self.publish()
        # Ticks out of step (see the package docstring); pysyncobj reads this
        # setting afresh for every tick.
        self._syncObj.conf.autoTickPeriod = random.uniform(
            self._tuning.tick_interval / 4, self._tuning.tick_interval
        )

    def before_tick(self, now: float) -> None:
        """Before pysyncobj's tick: an election it would start waits for a won pre-vote."""
        sync = self._sync
        if not sync.election_due(now):
            return
        term = sync.raftCurrentTerm
        if sync.transfer_in_progress():
            # The leader asked (TimeoutNow): stand at once, and say so in the
            # vote requests so that voters who still hear it listen.
            self._prevote = None
            self._transfer_election_term = term + 1
            return
        if self._election_allowed_for == term:
            self._election_allowed_for = None
            return
        sync.postpone_election(now)
        if self._may_campaign(now):
            self._start_prevote(now)

    def tick_failed(self, error: Exception, now: float) -> None:
        try:
            self._note_failure(error, now)
        except Exception:
            pass  # reporting must never add a failure of its own

    def _note_failure(self, error: Exception, now: float) -> None:
        self.tick_failures += 1
        self._failures_since_log += 1
        self._last_error = f"{type(error).__name__}: {error}"
        if self._failing_since is None:
            self._failing_since = now
            self._failure_logged_at = now
            self._failures_since_log = 0
            self._bridge.log(
                LogLevel.error,
                "raft tick failed: {error}\n{trace}",
                error=self._last_error,
                trace="".join(traceback.format_exception(error)).rstrip(),
            )
        elif now - self._failure_logged_at >= _TICK_FAILURE_LOG_INTERVAL_S:
            self._failure_logged_at = now
            self._bridge.log(
                LogLevel.error,
                "raft tick still failing: {count} failures in the last minute, the last: "
                "{error}",
                count=self._failures_since_log,
                error=self._last_error,
            )
            self._failures_since_log = 0
        if self.broken is None and now - self._failing_since >= self._tuning.tick_failure_limit:
            self.broken = (
                f"the raft thread failed on every tick for "
                f"{now - self._failing_since:.1f}s: {self._last_error}"
            )
            self.publish()

    def tick_succeeded(self, now: float) -> None:
        if self._failing_since is not None and self.broken is None:
            self._bridge.log(
                LogLevel.info,
                "raft tick works again after {seconds:.1f}s of failures",
                seconds=now - self._failing_since,
            )
            self._failing_since = None

    def on_state_changed(self, old: int, new: int) -> None:
        self.raft_state = new
        now = time.monotonic()
        if old == LEADER and new != LEADER:
            # Lost (or gave up) leadership: let a node with better links win
            # the next election rather than standing again at once, and tell
            # whoever still hears us, so that they need not wait out their
            # election timeouts (a leader that lost its quorum can often still
            # send: its inbound links failed).
            self._campaign_not_before = now + self._tuning.lease_loss_backoff
            self._acks = {}
            resignation = {"type": RESIGN, "term": self._sync.raftCurrentTerm}
            for node in list(self._nodes):
                if self._syncObj.isNodeConnected(node):
                    self.send(node, resignation)
        if new == LEADER:
            self._leader_since = now
            self._lease_since = self._lease_until = None
            if self._quorum_sent_at(now) == now:
                self._renew_lease(now)  # a cluster of one holds its lease at once
        self.publish()
        self._bridge.log(
            LogLevel.info,
            "raft: {old} -> {new}",
            old=STATE_NAMES.get(old, old),
            new=STATE_NAMES.get(new, new),
        )

    # pysyncobj's hooks: messages.

    def send(self, node: Any, message: Any) -> bool:
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == "append_entries":
                now = time.monotonic()
                message = {**message, SENT_AT: (message["term"], now), LEASE: self._lease_state(now)}
            elif kind == "next_node_idx" and self._answering is not None:
                asker, stamp = self._answering
                if asker == node and stamp is not None:
                    message = {**message, ECHO: stamp}
            elif kind == "request_vote" and message.get("term") == self._transfer_election_term:
                message = {**message, TRANSFER: True}
        return bool(super().send(node, message))

    def _onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        kind = message.get("type") if isinstance(message, dict) else None
        now = time.monotonic()
        if kind == HELLO:
            self._on_hello(node, message, now)
            return
        if kind == PREVOTE:
            self._on_prevote(node, message, now)
            return
        if kind == PREVOTE_REPLY:
            self._on_prevote_reply(node, message)
            return
        if kind == STALE_TERM:
            self._on_stale_term(node, message)
            return
        if kind == RESIGN:
            self._on_resign(node, message, now)
            return
        if kind == "append_entries":
            self._on_append_entries(node, message, now)
            return
        if kind == "next_node_idx":
            if not self._fresh_answer(node, message.get(ECHO), now):
                # An answer that came back late is no answer: pysyncobj then
                # steps down by itself once no majority answered in time.
                self.slow_answers += 1
                return
        if kind == "request_vote" and self._disruptive(message, now):
            return
        super()._onMessageReceived(node, message)

    def _on_append_entries(self, node: Any, message: Any, now: float) -> None:
        sync = self._sync
        term = message.get("term")
        # pysyncobj answers while handling the message; send() adds the echo.
        self._answering = (node, message.get(SENT_AT))
        try:
            super()._onMessageReceived(node, message)
        finally:
            self._answering = None
        if not sync._isLeader() and sync._getLeader() == node:
            if message.get(LEASE) != "lost":
                self._leader_heard_at = now
                self._takeover = None
                self._prevote = None
            elif self._takeover is None:
                # It still sends but no longer hears a majority (its inbound
                # links failed, or they are slow): do not wait for it to
                # notice, elect now.
                self._plan_takeover(node)
        elif _valid_int(term) and term < sync.raftCurrentTerm:
            # A leader of an older term: we must have raised our term while cut
            # off. pysyncobj ignores it and it would never learn; tell it.
            last = self._stale_term_sent.get(node.address, -math.inf)
            if now - last >= self._tuning.election_timeout_min:
                self._stale_term_sent[node.address] = now
                self.send(node, {"type": STALE_TERM, "term": sync.raftCurrentTerm})

    def _onNodeConnected(self, node: Any) -> None:  # noqa: N802 (pysyncobj's name)
        # The hello goes first, so a peer knows our node id before it can
        # learn from anything else that we lead.
        self._say_hello(node)
        super()._onNodeConnected(node)

    def _onNodeDisconnected(self, node: Any) -> None:  # noqa: N802 (pysyncobj's name)
        super()._onNodeDisconnected(node)
        if self._bridge.closing:
            return
        self._plan_takeover(node)

    def _on_resign(self, node: Any, message: Any, now: float) -> None:
        sync = self._sync
        if message.get("term") == sync.raftCurrentTerm and sync._getLeader() == node:
            self._leader_heard_at = None  # gone, as far as pre-votes are concerned
            self._plan_takeover(node)

    def _plan_takeover(self, node: Any) -> None:
        """The leader ``node`` is gone (its connection closed, or it resigned)."""
        if self._tuning.takeover_step is None:
            return
        sync = self._sync
        if sync._isLeader() or sync._getLeader() != node:
            return
        # Rank the survivors this node can still reach, by address, so that
        # they do not all start at once.
        survivors = sorted(
            [self._selfNode.address]
            + [peer.address for peer in self._nodes
               if peer != node and sync.isNodeConnected(peer)]
        )
        rank = survivors.index(self._selfNode.address)
        now = time.monotonic()
        self._takeover = _Takeover(node, sync.raftCurrentTerm, now + rank * self._tuning.takeover_step)
        self._maybe_take_over(now)

    # Hellos: node ids and eligibility.

    def say_hello_to_all(self) -> None:
        self._next_keepalive = time.monotonic() + self._tuning.keepalive_interval
        for node in list(self._nodes):
            if self._syncObj.isNodeConnected(node):
                self._say_hello(node)

    def _say_hello(self, node: Any) -> None:
        self.send(node, {"type": HELLO, "node_id": self._node_id,
                         "eligible": bool(self._bridge.eligible)})

    def _on_hello(self, node: Any, message: Any, now: float) -> None:
        node_id = message.get("node_id")
        known = self._peer_ids.get(node.address)
        if isinstance(node_id, str) and node_id and known != node_id[:200]:
            self._peer_ids[node.address] = node_id[:200]
            self._peer_ids_view = tuple(sorted(self._peer_ids.items()))
        self._peer_eligible[node.address] = (message.get("eligible") is not False, now)

    def _eligible_peer(self, address: str, now: float) -> bool:
        known = self._peer_eligible.get(address)
        fresh = _HELLO_FRESH_KEEPALIVES * self._tuning.keepalive_interval
        return known is not None and known[0] and now - known[1] < fresh

    # The lease.

    def _fresh_answer(self, node: Any, echo: Any, now: float) -> bool:
        """Record ``node``'s answer to a heartbeat; False when it came back too late."""
        if not (isinstance(echo, tuple) and len(echo) == 2):
            return True  # not an answer to one of our stamped heartbeats
        term, sent_at = echo
        if not _valid_int(term) or not isinstance(sent_at, float):
            return True
        sync = self._sync
        if term != sync.raftCurrentTerm or now - sent_at > self._tuning.slow_answer:
            return False
        if not sync._isLeader():
            return True
        if term != self._acks_term:
            self._acks = {}
            self._acks_term = term
        if sent_at > self._acks.get(node.address, -math.inf):
            self._acks[node.address] = sent_at
            self._renew_lease(now)
        return True

    def _renew_lease(self, now: float) -> None:
        quorum = self._quorum_sent_at(now)
        if quorum is None or now - quorum >= self._tuning.lease:
            return
        if self._lease_until is None or now >= self._lease_until:
            self._lease_since = now  # it had lapsed (or never been held) before this answer
        self._lease_until = quorum + self._tuning.lease

    def _quorum_sent_at(self, now: float) -> float | None:
        others_needed = (len(self._nodes) + 1) // 2
        if others_needed == 0:
            return now  # a cluster of one
        if self._acks_term != self._sync.raftCurrentTerm:
            return None
        answered = sorted(self._acks.values(), reverse=True)
        if len(answered) < others_needed:
            return None
        return answered[others_needed - 1]

    def _lease_state(self, now: float) -> str:
        """What this leader's heartbeats say of its lease."""
        if within(self._quorum_sent_at(now), now, self._tuning.lease):
            return "held"
        if within(self._leader_since, now, self._tuning.lease):
            return "pending"  # just elected: the first answers are on their way
        return "lost"

    def _leader_alive(self, now: float) -> bool:
        """Whether this node knows of a leader that is still doing its job."""
        sync = self._sync
        if sync._isLeader():
            return within(self._quorum_sent_at(now), now, self._tuning.lease)
        leader = sync._getLeader()
        return (
            leader is not None
            and sync.isNodeConnected(leader)
            and within(self._leader_heard_at, now, self._tuning.election_timeout_min)
        )

    # Pre-vote: no term is spent on an election that cannot be won.

    def _may_campaign(self, now: float) -> bool:
        if now < self._campaign_not_before or self.broken is not None:
            return False
        if not self._bridge.eligible:
            # Leave it to a node that can do the work, unless none leads for long.
            return now - self._leader_seen_at >= self._tuning.ineligible_campaign_delay
        return True

    def _start_prevote(self, now: float) -> None:
        sync = self._sync
        round_ = _PreVote(term=sync.raftCurrentTerm + 1)
        self._prevote = round_
        request = {
            "type": PREVOTE,
            "term": round_.term,
            "last_log_index": sync.last_log_index(),
            "last_log_term": sync.last_log_term(),
        }
        for node in list(self._nodes):
            if sync.isNodeConnected(node):
                self.send(node, request)
        self._check_prevote()

    def _check_prevote(self) -> None:
        round_ = self._prevote
        sync = self._sync
        if round_ is None:
            return
        if round_.term != sync.raftCurrentTerm + 1 or self._leader_alive(time.monotonic()):
            self._prevote = None  # our term moved on, or a leader showed up: the round is void
            return
        if (len(round_.granted) + 1) * 2 > sync.peer_count + 1:
            self._prevote = None
            self._election_allowed_for = sync.raftCurrentTerm
            sync.elect_now()

    def _on_prevote(self, node: Any, message: Any, now: float) -> None:
        term = message.get("term")
        index = message.get("last_log_index")
        log_term = message.get("last_log_term")
        if not (_valid_int(term) and _valid_int(index) and _valid_int(log_term)):
            return
        sync = self._sync
        granted = (
            term > sync.raftCurrentTerm
            and (log_term, index) >= (sync.last_log_term(), sync.last_log_index())
            and not self._leader_alive(now)
        )
        self.send(node, {"type": PREVOTE_REPLY, "term": term, "granted": granted,
                         "current_term": sync.raftCurrentTerm})

    def _on_prevote_reply(self, node: Any, message: Any) -> None:
        round_ = self._prevote
        if round_ is None or message.get("term") != round_.term:
            return
        if message.get("granted") is True:
            round_.granted.add(node.address)
            self._check_prevote()

    def _disruptive(self, message: Any, now: float) -> bool:
        """A vote request that would depose a leader we know to be alive (dropped)."""
        term = message.get("term")
        return (
            not message.get(TRANSFER)
            and _valid_int(term)
            and term > self._sync.raftCurrentTerm
            and self._leader_alive(now)
        )

    def _on_stale_term(self, node: Any, message: Any) -> None:
        term = message.get("term")
        sync = self._sync
        if not (_valid_int(term) and term > sync.raftCurrentTerm and sync._isLeader()):
            return
        self._bridge.log(
            LogLevel.info,
            "raft: peer {peer} is at term {term}, above ours; stepping down so that it can "
            "rejoin",
            peer=self._peer_ids.get(node.address, node.address),
            term=term,
        )
        # pysyncobj adopts a higher term only from a vote request: hand it one
        # that raises the term without asking for a vote (its log is "older").
        TCPTransport._onMessageReceived(
            self, node,
            {"type": "request_vote", "term": term, "last_log_index": -1, "last_log_term": -1},
        )

    # Takeover when the leader's connection closed.

    def _maybe_take_over(self, now: float) -> None:
        plan = self._takeover
        if plan is None or now < plan.at:
            return
        sync = self._sync
        if (
            sync._isLeader()
            or sync._getLeader() != plan.leader
            or sync.raftCurrentTerm != plan.term
            or self._leader_alive(now)
            or plan.attempts >= _TAKEOVER_ATTEMPTS
        ):
            self._takeover = None  # someone else started an election, or the leader came back
            return
        # Ask the others at once instead of waiting out the election timeout;
        # those that lost the leader's connection too grant it.
        plan.attempts += 1
        step = self._tuning.takeover_step or self._tuning.election_timeout_min
        plan.at = now + step * _TAKEOVER_RETRY_FRACTION
        if self._may_campaign(now):
            self._start_prevote(now)

    # Handing leadership over.

    def hand_over(self) -> None:
        """
        Ask a follower to take over now (Raft's TimeoutNow): one that can do
        the leader's work if any is up to date, else the most up-to-date one.
        """

        def done(result: Any, error: Any) -> None:
            self._handoff = "requested" if error == FAIL_REASON.SUCCESS else "refused"

        def eligible_done(result: Any, error: Any) -> None:
            if error != FAIL_REASON.SUCCESS:
                self._sync.transferLeadership(callback=done)
            else:
                done(result, error)

        now = time.monotonic()
        eligible = [
            node for node in self._nodes
            if self._syncObj.isNodeConnected(node) and self._eligible_peer(node.address, now)
        ]
        if eligible:
            self._sync.transferLeadership(node=random.choice(eligible), callback=eligible_done)
        else:
            self._sync.transferLeadership(callback=done)
        self.publish()

    def _maybe_hand_over(self, now: float) -> None:
        """A leader that cannot do the leader's work offers it to a peer that can."""
        sync = self._sync
        if self._bridge.eligible or not sync._isLeader():
            self._handover_logged = False
            return
        if now < self._next_handover:
            return
        self._next_handover = now + self._tuning.handover_retry
        targets = [
            node for node in self._nodes
            if sync.isNodeConnected(node) and self._eligible_peer(node.address, now)
        ]
        if not targets:
            return  # nobody can do better: keep leading
        target = random.choice(targets)
        if not self._handover_logged:
            self._handover_logged = True
            self._bridge.log(
                LogLevel.warn,
                "raft: this node cannot do the leader's work; handing leadership to {peer}",
                peer=self._peer_ids.get(target.address, target.address),
            )
        sync.transferLeadership(node=target)

    # The view the reactor reads.

    def publish(self) -> None:
        sync = self._sync
        now = time.monotonic()
        leading = bool(sync._isLeader())
        leader = sync._getLeader()
        state = STATE_NAMES.get(self.raft_state, "follower")
        heard_at = None
        if not leading and leader is not None:
            heard_at = self._leader_heard_at
        self._bridge.publish(
            View(
                state=state,
                raft_term=int(sync.raftCurrentTerm),
                leader_address=leader.address if leader is not None else None,
                connected=frozenset(
                    node.address for node in self._nodes if sync.isNodeConnected(node)
                ),
                peer_ids=self._peer_ids_view,
                ineligible_peers=frozenset(
                    address for address, (eligible, _) in self._peer_eligible.items()
                    if not eligible
                ),
                quorum_sent_at=self._quorum_sent_at(now) if leading else None,
                leader_heard_at=heard_at,
                handoff=self._handoff,
                broken=self.broken,
                lease_since=self._lease_since if leading else None,
            )
        )
