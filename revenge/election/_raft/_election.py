"""The reactor's side of the raft provider: :class:`RaftElection` and its factory."""

from __future__ import annotations

import errno
import fcntl
import functools
import ipaddress
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Protocol

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from pysyncobj import SyncObjConf
from pysyncobj.node import TCPNode
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from revenge.config import SECRET_HINT, secret_problem
from revenge.election._interface import (
    IElection,
    IElectionHealth,
    IYieldingElection,
    LeadershipChange,
)
from revenge.election._listeners import LeadershipListeners
from revenge.election._raft._bridge import (
    STOPPED,
    Bridge,
    View,
    log,
    route_pysyncobj_logs,
    within,
)
from revenge.election._raft._guard import FAILURE_REASONS
from revenge.election._raft._snapshot import (
    SNAPSHOT_FILE,
    read_snapshot,
    write_snapshot,
)
from revenge.election._raft._syncobj import (
    ElectionSyncObj,
    PysyncobjMismatch,
    check_instance,
    check_pysyncobj,
)
from revenge.election._raft._transport import ElectionTransport
from revenge.election._raft._tuning import RaftTuning
from revenge.metrics import IInstrumented
from revenge.providers import ProviderError

# Maps the Raft term to the fencing token reported by term(); see set_term_source.
TermSource = Callable[[int], int]

# Without a state directory there is no snapshot file: compaction is off (the
# log grows by one entry per leadership, in memory).
_NEVER_S = 10 * 365 * 86400.0


class RaftSetupError(ProviderError):
    """The raft provider cannot be built from this configuration (one line, names the key)."""


class RaftBroken(Exception):
    """The readiness check's failure while this node's raft thread is out of order."""


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


@dataclass(frozen=True)
class _Assessment:
    """is_leader, leader, term and has_quorum, from one view at one moment."""

    is_leader: bool
    leader_address: str | None
    leader: str | None
    term: int
    has_quorum: bool
    view: View


class _RaftCounters(Collector):
    """Scrape-time counters of the raft port and thread, summed over restarts."""

    def __init__(self, election: RaftElection) -> None:
        self._election = election

    def collect(self) -> Iterator[CounterMetricFamily]:
        auth, ticks = self._election.counters()
        failures = CounterMetricFamily(
            "revenge_raft_auth_failures",
            "Connections to the raft port closed before they proved they know raft.secret, "
            "by reason.",
            labels=["reason"],
        )
        for reason in FAILURE_REASONS:
            failures.add_metric([reason], auth.get(reason, 0))
        yield failures
        yield CounterMetricFamily(
            "revenge_raft_tick_failures",
            "Ticks of the raft thread that raised an exception.",
            value=ticks,
        )


@implementer(IElection, IYieldingElection, IElectionHealth, IInstrumented)
class RaftElection:
    """This node's membership in a Raft cluster; see the package docstring."""

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
        problem = secret_problem(secret)
        if problem is not None:
            # pysyncobj unpickles what decrypts with this secret's key.
            raise RaftSetupError(
                f"raft.secret: {problem} (it guards code execution on the raft port); "
                f"{SECRET_HINT}"
            )
        try:
            tuning.check()
        except ValueError as error:
            raise RaftSetupError(f"raft tuning: {error}") from None
        try:
            check_pysyncobj()
        except PysyncobjMismatch as error:
            raise RaftSetupError(f"election.backend raft: {error}") from None
        self.node_id = node_id
        self._advertise_addr = advertise_addr
        self._bind_addr = bind_addr or advertise_addr
        # This node's own address may be listed too (one list for every node).
        self._peers = sorted({peer for peer in peers if peer != advertise_addr})
        self.__secret = secret
        self._reactor = reactor
        self._tuning = tuning
        self._resolve = resolve
        self._lease = tuning.lease
        self._freshness = tuning.election_timeout_max
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._lock_file: IO[bytes] | None = None
        if self._state_dir is not None:
            self._lock_file = _lock_state_dir(self._state_dir)
        self._addresses = _AddressBook(peer.rpartition(":")[0] for peer in self._peers)
        self._unresolved_warned: set[str] = set()
        self._resolving: set[str] = set()
        self._bridge = Bridge(reactor, self._on_view_changed, self._lease, self._freshness)
        self._syncobj: Any = None
        self._running = False
        self._stepping_down = False
        self._stopped: Deferred[None] | None = None
        self._term_source: TermSource | None = None
        self._listeners = LeadershipListeners(log)
        self._announced: tuple[bool, str | None, int, bool] = (False, None, 0, False)
        self._view_waiters: list[tuple[Callable[[View], bool], Deferred[None]]] = []
        self._watch = LoopingCall(self._refresh)
        self._watch.clock = reactor
        self._resolver = LoopingCall(self._resolve_peers)
        self._resolver.clock = reactor
        # Why this node cannot do the leader's work (set_eligible), if so.
        self._ineligible_reason: str | None = None
        # Restarts after the tick thread kept failing.
        self._broken: str | None = None
        self._restarting: Deferred[None] | None = None
        self._restart_delay = tuning.restart_delay
        self._restart_pause: Deferred[None] | None = None
        # Counters of the transports that restarts replaced.
        self._auth_failures_before: Counter[str] = Counter()
        self._tick_failures_before = 0

    def __repr__(self) -> str:
        return f"<RaftElection node_id={self.node_id!r} address={self._advertise_addr!r}>"

    # IElection.

    def start(self) -> Deferred[None]:
        if self._syncobj is not None or self._running:
            return succeed(None)
        route_pysyncobj_logs(self._reactor)
        self._resolver.start(self._tuning.resolve_interval, now=True)
        try:
            self._syncobj = self._build_syncobj()
        except BaseException:
            self._release()
            raise
        self._running = True
        transport = self._bridge.transport
        if transport is not None and not transport.ready:
            log.warn(
                "raft cannot listen on {address} yet; retrying every second",
                address=self._bind_addr,
            )
        self._watch.start(self._tuning.watch_interval, now=False)
        log.info(
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
        now = time.monotonic()
        assessment = self._assess(now)
        view = assessment.view
        transport = self._bridge.transport
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
                    "eligible": peer not in view.ineligible_peers,
                }
                for peer in self._peers
            ],
            "raft": {
                "address": self._advertise_addr,
                "state": view.state,
                "term": view.raft_term,
                "leader_address": assessment.leader_address,
                "lease_seconds": self._lease,
                # CLOCK_MONOTONIC seconds, comparable between processes of
                # one host only: when this node's lease began without a
                # break and when it runs out (tests check that no two
                # leases overlap), and the clock as this answer was made.
                "lease": {
                    "clock": now,
                    "held_since": view.lease_since if assessment.is_leader else None,
                    "valid_until": (
                        view.quorum_sent_at + self._lease
                        if assessment.is_leader and view.quorum_sent_at is not None
                        else None
                    ),
                },
                "broken": self._broken,
                "pending_connections": (
                    transport.guard.pending_count() if transport is not None else 0
                ),
            },
        }

    def subscribe(self, callback: Callable[[LeadershipChange], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    # IYieldingElection, IElectionHealth, IInstrumented.

    def set_eligible(self, eligible: bool, reason: str | None = None) -> None:
        self._ineligible_reason = None if eligible else (reason or "not eligible")
        if self._bridge.eligible != eligible:
            self._bridge.eligible = eligible
            # Tell the peers now rather than at the next keepalive.
            self._bridge.request(lambda transport: transport.say_hello_to_all())

    def check(self) -> Deferred[None]:
        if self._broken is not None:
            failed: Deferred[None] = Deferred()
            failed.errback(RaftBroken(f"raft is out of order: {self._broken}"))
            return failed
        return succeed(None)

    def instrument(self, registry: CollectorRegistry) -> None:
        registry.register(_RaftCounters(self))

    def counters(self) -> tuple[Counter[str], int]:
        """Authentication failures by reason, and tick failures, since this object was made."""
        auth = Counter(self._auth_failures_before)
        ticks = self._tick_failures_before
        transport = self._bridge.transport
        if transport is not None:
            auth.update(transport.guard.failures)
            ticks += transport.tick_failures
        return auth, ticks

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

    # Building pysyncobj.

    def _build_syncobj(self) -> ElectionSyncObj:
        t = self._tuning
        journal = snapshot = None
        compaction: dict[str, Any] = {
            "logCompactionMinTime": _NEVER_S,
            "logCompactionMinEntries": 1 << 40,
        }
        if self._state_dir is not None:
            journal = str(self._state_dir / "journal")
            snapshot = str(self._state_dir / SNAPSHOT_FILE)
            compaction = {
                "logCompactionMinTime": t.compaction_interval,
                "fullDumpFile": snapshot,
                # JSON, never pickle: see _snapshot.py.
                "serializer": self._write_snapshot,
                "deserializer": read_snapshot,
            }
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
            # Never fork this threaded process.
            useFork=False,
            onStateChanged=self._on_raft_state_changed,
            **compaction,
        )
        self._bridge.reset()
        transport_class = functools.partial(ElectionTransport, self._bridge, t, self.node_id)
        syncobj = ElectionSyncObj(
            lambda: self._bridge.transport,
            TCPNode(self._advertise_addr),
            [_PeerNode(peer, self._addresses) for peer in self._peers],
            conf,
            transportClass=transport_class,
        )
        try:
            check_instance(syncobj)
        except PysyncobjMismatch as error:
            syncobj.destroy()
            raise RaftSetupError(f"election.backend raft: {error}") from None
        return syncobj

    def _write_snapshot(self, path: str, data: Any) -> None:
        # Tick thread.
        write_snapshot(path, data)
        last = data[0]
        self._bridge.log(
            LogLevel.info,
            "raft log compacted up to entry {index} (term {term})",
            index=int(last[1]),
            term=int(last[2]),
        )

    # Internals.

    def _assess(self, now: float) -> _Assessment:
        view = self._bridge.view
        term = view.raft_term if self._term_source is None else self._term_source(view.raft_term)
        working = self._running and self._broken is None
        leading = (
            working
            and not self._stepping_down
            and view.state == "leader"
            and within(view.quorum_sent_at, now, self._lease)
        )
        if leading:
            return _Assessment(True, self._advertise_addr, self.node_id, term, True, view)
        if (
            working
            and view.state != "leader"
            and view.leader_address is not None
            and within(view.leader_heard_at, now, self._freshness)
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
            transport.on_state_changed(old_state, new_state)

    def _on_view_changed(self) -> None:
        view = self._bridge.view
        if view.broken is not None and self._broken is None and self._running:
            self._broken = view.broken
            self._restarting = ensureDeferred(self._restart())
            self._restarting.addErrback(
                lambda failure: log.failure("restarting raft crashed", failure=failure)
            )
        self._refresh()
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
        self._listeners.notify(
            LeadershipChange(assessment.is_leader, assessment.leader, assessment.term)
        )

    def _wait_for_view(self, condition: Callable[[View], bool], timeout: float) -> Deferred[None]:
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

    async def _restart(self) -> None:
        """
        The tick thread kept failing: step down for real (stop pysyncobj, which
        closes this node's connections, so the others elect at once), then
        start it again after a delay that doubles while it keeps failing.
        """
        reason = self._broken
        delay = self._restart_delay
        log.error(
            "raft: this node stepped down: {reason}; starting raft again in {delay:g}s",
            reason=reason,
            delay=delay,
        )
        self._refresh()
        self._retire_syncobj()
        syncobj = self._syncobj
        if syncobj is not None:
            await self._wait_for_tick_thread(syncobj, self._tuning.handoff_timeout)
        self._syncobj = None
        self._bridge.view = replace(STOPPED, raft_term=self._bridge.view.raft_term,
                                    broken=reason)
        self._restart_pause = deferLater(self._reactor, delay, lambda: None)
        try:
            await self._restart_pause
        except CancelledError:
            return
        finally:
            self._restart_pause = None
        if not self._running or self._stopped is not None:
            return
        self._restart_delay = min(delay * 2, self._tuning.restart_delay_max)
        try:
            self._syncobj = self._build_syncobj()
        except Exception as error:
            log.error("raft could not be started again: {error}", error=str(error))
            return
        self._broken = None
        self._restarting = None
        log.info("raft started again after stepping down")
        self._refresh()

    def _retire_syncobj(self) -> None:
        """Tell pysyncobj to stop, keeping the transport's counters."""
        transport = self._bridge.transport
        if transport is not None:
            self._auth_failures_before.update(transport.guard.failures)
            self._tick_failures_before += transport.tick_failures
        # Counted above from now on; pysyncobj's last ticks skip our hooks.
        self._bridge.transport = None
        self._bridge.closing = True
        if self._syncobj is not None:
            self._syncobj.destroy()

    async def _stop(self) -> None:
        if self._restart_pause is not None:
            self._restart_pause.cancel()
        syncobj = self._syncobj
        if syncobj is None:
            self._running = False
            if self._watch.running:
                self._watch.stop()
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
            log.info(
                "raft: handed leadership over to {successor} in {seconds:.3f}s",
                successor=(view.node_id_of(view.leader_address) or view.leader_address)
                if view.leader_address is not None and view.leader_address != own
                else "nobody yet (the others elect one)",
                seconds=time.monotonic() - started,
            )
        self._retire_syncobj()
        await self._wait_for_tick_thread(syncobj, self._tuning.handoff_timeout)
        self._running = False
        # The term stays: term() never goes backwards.
        self._bridge.view = replace(STOPPED, raft_term=self._bridge.view.raft_term)
        if self._watch.running:
            self._watch.stop()
        self._release()
        self._refresh()

    async def _wait_for_tick_thread(self, syncobj: Any, timeout: float) -> None:
        # pysyncobj closes its sockets and journal on its own thread, at its
        # next tick; wait for that without blocking the reactor.
        deadline = time.monotonic() + timeout
        while syncobj.tick_thread_alive() and time.monotonic() < deadline:
            await deferLater(self._reactor, self._tuning.tick_interval / 5, lambda: None)

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
            log.info("raft peer host {host} resolves to {ip}", host=host, ip=ip)
        self._unresolved_warned.discard(host)

    def _not_resolved(self, host: str, failure: Failure) -> None:
        self._resolving.discard(host)
        # The last known address (if any) stays in use.
        if host not in self._unresolved_warned:
            self._unresolved_warned.add(host)
            log.warn(
                "raft peer host {host} does not resolve ({error}); retrying every {interval}s",
                host=host,
                error=str(failure.value),
                interval=self._tuning.resolve_interval,
            )


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
    @property
    def compaction_interval(self) -> float: ...


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
        tuning=RaftTuning(compaction_interval=raft.compaction_interval),
    )
