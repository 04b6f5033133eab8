"""
The ``postgres`` election provider: leadership is a lease row in PostgreSQL.

Threads
    Nothing blocking runs on the reactor. One worker thread owns the lease
    connection and runs the claims and the release, one at a time, in order
    (a renewal never waits behind the reactor's shared thread pool, where slow
    requests could starve it). A second thread owns a connection that only
    LISTENs, and hands each notification to the reactor with
    ``callFromThread``. All other state lives on the reactor thread.

The lease (see :mod:`revenge_election_postgres._lease` for the SQL)
    Every ``renew_interval`` each node runs one claim: the holder renews its
    lease; the others take it if it is free or expired, by the database's
    clock. Taking it increases the term, the fencing token.

Trusting the lease: the holder's own clock, from the renewal's start
    A claim that succeeds makes this node leader until ``lease`` seconds after
    the monotonic moment just before the claim was sent, checked with the
    clock whenever ``is_leader()`` is asked. The database set the expiry from
    its ``now()``, which is later than that moment, so this node stops calling
    itself leader before anyone else can take the lease. An answer that
    arrives late (the process was paused, the network slow) renews nothing
    that has already run out locally.

Hand-over
    ``stop()`` stops calling itself leader at once, then ends the lease in the
    database and NOTIFYs in the same transaction; every standby LISTENs and
    claims as soon as the notification arrives, so one of them leads a few
    milliseconds later. A new holder NOTIFYs too, so that the others learn
    the new leader and term without waiting for their next poll. Without a
    notification (a crashed leader) a standby notices the expired lease at
    its next poll: within ``lease + renew_interval`` of the last renewal.
"""

from __future__ import annotations

import math
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import TupleRow
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from revenge.config import Config
from revenge.db import DatabaseUrlError, database_url, describe_database_error
from revenge.election import IElection, LeadershipChange, LeadershipListeners
from revenge.providers import ProviderError
from revenge_election_postgres._lease import LeaseTable, LeaseView
from revenge_election_postgres._settings import SECTION, PostgresElectionSettings

__all__ = ["PostgresElection", "PostgresElectionError", "create_postgres_election"]

_T = TypeVar("_T")

_log = Logger(namespace="revenge.election.postgres")

Connect = Callable[[], "psycopg.Connection[TupleRow]"]

# The listening thread wakes this often to see whether it should stop.
_LISTEN_WAKE_S = 0.25
# How long a stopping node waits for its listening thread to end.
_LISTENER_STOP_S = 2.0
# Between attempts to reconnect the listening connection.
_LISTEN_RETRY_S = 1.0


class PostgresElectionError(ProviderError):
    """The provider cannot be built from this configuration (one line, names the key)."""


@dataclass(frozen=True)
class _Tenure:
    """This node's lease, as far as it may trust it."""

    term: int
    # Monotonic: the start of the claim that renewed it, plus the lease.
    valid_until: float


@dataclass(frozen=True)
class _Sighting:
    """Another holder's lease, as this node last read it."""

    holder: str | None
    term: int
    # Monotonic: when that lease runs out by the database's clock.
    known_until: float


@dataclass(frozen=True)
class _Outcome:
    """What one claim found: this node's term, or the lease as another holds it."""

    claim_started: float
    claimed_term: int | None
    view: LeaseView | None = None
    view_started: float = 0.0


class _LeaseClient:
    """The lease connection and the statements on it; used on the worker thread only."""

    def __init__(
        self, connect: Connect, table: LeaseTable, node_id: str, instance: str, lease: float
    ) -> None:
        self._connect = connect
        self._table = table
        self._node_id = node_id
        self._instance = instance
        self._lease = lease
        self._connection: psycopg.Connection[TupleRow] | None = None
        self._table_ready = False
        self._announced_term: int | None = None

    def _connected(self) -> psycopg.Connection[TupleRow]:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
            self._table_ready = False
        if not self._table_ready:
            self._table.create(self._connection)
            self._table_ready = True
        return self._connection

    def _forget_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except psycopg.Error:
                pass

    def claim(self) -> _Outcome:
        try:
            connection = self._connected()
            # Taken just before the claim is sent: the database's now() that
            # sets the expiry is later still (see the module docstring).
            started = time.monotonic()
            term = self._table.claim(connection, self._node_id, self._instance, self._lease)
            if term is not None:
                if term != self._announced_term:
                    self._table.announce(connection, self._instance)
                    self._announced_term = term
                return _Outcome(started, term)
            view_started = time.monotonic()
            view = self._table.read(connection)
            return _Outcome(started, None, view, view_started)
        except psycopg.Error:
            self._forget_connection()
            raise

    def release(self) -> int | None:
        try:
            return self._table.release(self._connected(), self._instance)
        except psycopg.Error:
            self._forget_connection()
            raise

    def close(self) -> None:
        self._forget_connection()


class _Worker:
    """One daemon thread that runs blocking calls in order; results return on the reactor."""

    def __init__(self, reactor: Any, name: str) -> None:
        self._reactor = reactor
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Deferred[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], _T]) -> Deferred[_T]:
        done: Deferred[_T] = Deferred()
        self._jobs.put((work, done))
        return done

    def close(self) -> None:
        """Let the thread end once the calls already submitted have run."""
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            work, done = job
            try:
                result = work()
            except BaseException:
                self._reactor.callFromThread(_deliver_failure, done, Failure())
            else:
                self._reactor.callFromThread(_deliver, done, result)


def _deliver(done: Deferred[Any], result: Any) -> None:
    # The waiter may have given up (a timeout cancelled it) meanwhile.
    if not done.called:
        done.callback(result)


def _deliver_failure(done: Deferred[Any], failure: Failure) -> None:
    if not done.called:
        done.errback(failure)


class _Listener:
    """A thread that LISTENs on the lease channel and passes each payload on."""

    def __init__(
        self, connect: Connect, table: LeaseTable, on_notify: Callable[[str], None], name: str
    ) -> None:
        self._connect = connect
        self._table = table
        self._on_notify = on_notify
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(self._table.listen)
                    while not self._stopping.is_set():
                        for notification in connection.notifies(timeout=_LISTEN_WAKE_S):
                            self._on_notify(notification.payload)
                            if self._stopping.is_set():
                                break
            except psycopg.Error:
                # Polling still works without notifications; try again soon.
                self._stopping.wait(_LISTEN_RETRY_S)


@implementer(IElection)
class PostgresElection:
    """A node in an election decided by a lease row in PostgreSQL."""

    name = "postgres"

    def __init__(
        self,
        node_id: str,
        *,
        conninfo: str,
        reactor: Any,
        settings: PostgresElectionSettings = PostgresElectionSettings(),
    ) -> None:
        self.node_id = node_id
        self._reactor = reactor
        self._settings = settings
        self._lease = settings.lease
        self._table = LeaseTable(settings.table)
        # Tells this process's lease from a predecessor's under the same node id.
        self._instance = secrets.token_hex(8)
        self.__conninfo = conninfo
        self._running = False
        self._stopping = False
        self._stopped: Deferred[None] | None = None
        self._worker: _Worker | None = None
        self._listener: _Listener | None = None
        self._client: _LeaseClient | None = None
        self._renewal = LoopingCall(self._attempt)
        self._renewal.clock = reactor
        self._claiming = False
        self._claim_again = False
        self._tenure: _Tenure | None = None
        self._sighting: _Sighting | None = None
        self._term = 0
        self._reachable = False
        self._outage_logged = False
        self._recheck: IDelayedCall | None = None
        self._listeners = LeadershipListeners(_log)
        self._announced = LeadershipChange(False, None, 0)

    def __repr__(self) -> str:
        return f"<PostgresElection node_id={self.node_id!r} table={self._table.table!r}>"

    # IElection.

    def start(self) -> Deferred[None]:
        if self._running or self._stopped is not None:
            return succeed(None)
        self._running = True
        self._client = _LeaseClient(
            self._connect, self._table, self.node_id, self._instance, self._lease
        )
        self._worker = _Worker(self._reactor, f"postgres-election-{self.node_id}")
        self._listener = _Listener(
            self._connect,
            self._table,
            lambda payload: self._reactor.callFromThread(self._on_notify, payload),
            f"postgres-election-listen-{self.node_id}",
        )
        self._listener.start()
        self._renewal.start(self._settings.renew_interval, now=True)
        _log.info(
            "postgres election: node {node_id} joining (table {table}, lease {lease}s, "
            "renewed every {renew_interval}s)",
            node_id=self.node_id,
            table=self._table.table,
            lease=self._lease,
            renew_interval=self._settings.renew_interval,
        )
        return succeed(None)

    def stop(self) -> Deferred[None]:
        if self._stopped is None:
            self._stopped = ensureDeferred(self._stop())
        return self._stopped

    def is_leader(self) -> bool:
        return self._leading(time.monotonic())

    def leader(self) -> str | None:
        return self._leader(time.monotonic())

    def term(self) -> int:
        return self._term

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        leading = self._leading(now)
        remaining = None
        if leading and self._tenure is not None:
            remaining = round(self._tenure.valid_until - now, 3)
        return {
            "node_id": self.node_id,
            "backend": self.name,
            "is_leader": leading,
            "leader": self._leader(now),
            "term": self._term,
            # Whether this node can take part: the database answered its last claim.
            "has_quorum": self._running and self._reachable,
            # The nodes do not know each other, only the lease row.
            "peers": [],
            "postgres": {
                "table": self._table.table,
                "lease_seconds": self._lease,
                "renew_interval_seconds": self._settings.renew_interval,
                "database_reachable": self._reachable,
                "lease_remaining_seconds": remaining,
            },
        }

    def subscribe(self, callback: Callable[[LeadershipChange], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    # Internals, on the reactor thread unless they say otherwise.

    def _connect(self) -> psycopg.Connection[TupleRow]:
        """A new autocommit connection (on the worker or listening thread)."""
        timeout_ms = max(1, int(self._lease * 1000))
        return psycopg.connect(
            self.__conninfo,
            autocommit=True,
            # libpq waits at least 2 s; a connection slower than the lease is useless.
            connect_timeout=max(2, math.ceil(self._lease)),
            application_name=f"revenge-election {self.node_id}"[:63],
            # A statement stuck behind a lock or a dying server gives up
            # rather than hold the worker past the lease.
            options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def _leading(self, now: float) -> bool:
        return (
            self._running
            and not self._stopping
            and self._tenure is not None
            and now < self._tenure.valid_until
        )

    def _leader(self, now: float) -> str | None:
        if self._leading(now):
            return self.node_id
        sighting = self._sighting
        if self._running and sighting is not None and now < sighting.known_until:
            return sighting.holder
        return None

    def _note_term(self, term: int) -> None:
        # term() never goes backwards, whatever order answers arrive in.
        self._term = max(self._term, term)

    def _attempt(self) -> None:
        if not self._running or self._stopping:
            return
        if self._claiming:
            # One claim at a time; a notification during one asks for another.
            self._claim_again = True
            return
        assert self._worker is not None and self._client is not None
        self._claiming = True
        claiming = self._worker.submit(self._client.claim)
        claiming.addCallbacks(self._on_outcome, self._on_failure)
        claiming.addBoth(self._claim_done)

    def _claim_done(self, result: object) -> None:
        self._claiming = False
        if self._claim_again:
            self._claim_again = False
            self._attempt()

    def _on_notify(self, payload: str) -> None:
        # Our own announcements change nothing here.
        if payload != self._instance:
            self._attempt()

    def _on_outcome(self, outcome: _Outcome) -> None:
        self._reachable = True
        if self._outage_logged:
            self._outage_logged = False
            _log.info("postgres election: the database answers again")
        if self._stopping:
            return
        if outcome.claimed_term is not None:
            term = outcome.claimed_term
            if self._tenure is None or self._tenure.term != term:
                _log.info("postgres election: took the lease in term {term}", term=term)
            self._tenure = _Tenure(term, outcome.claim_started + self._lease)
            self._sighting = None
            self._note_term(term)
        else:
            assert outcome.view is not None
            view = outcome.view
            if self._tenure is not None:
                _log.info(
                    "postgres election: lost the lease of term {term} "
                    "(now held by {holder} in term {new_term})",
                    term=self._tenure.term,
                    holder=view.holder if view.current else "nobody",
                    new_term=view.term,
                )
            self._tenure = None
            self._sighting = _Sighting(
                view.holder if view.current else None,
                view.term,
                outcome.view_started + view.remaining,
            )
            self._note_term(view.term)
        self._refresh()

    def _on_failure(self, failure: Failure) -> None:
        self._reachable = False
        if not self._outage_logged:
            self._outage_logged = True
            _log.warn(
                "postgres election: the database does not answer ({reason}); "
                "retrying every {interval}s",
                reason=_reason(failure),
                interval=self._settings.renew_interval,
            )
        self._refresh()

    def _refresh(self) -> None:
        """Tell subscribers of any change, and come back when something can lapse by time."""
        now = time.monotonic()
        current = LeadershipChange(self._leading(now), self._leader(now), self._term)
        if self._recheck is not None and self._recheck.active():
            self._recheck.cancel()
        self._recheck = None
        moments = [
            moment
            for moment in (
                self._tenure.valid_until if self._tenure is not None else None,
                self._sighting.known_until if self._sighting is not None else None,
            )
            if moment is not None and moment > now
        ]
        if moments and self._running:
            self._recheck = self._reactor.callLater(min(moments) - now, self._refresh)
        if current == self._announced:
            return
        self._announced = current
        self._listeners.notify(current)

    async def _stop(self) -> None:
        if not self._running:
            return
        was_leading = self.is_leader()
        # From here on this node does not call itself leader, before the
        # lease is released and anyone else can take it.
        self._stopping = True
        self._refresh()
        if self._renewal.running:
            self._renewal.stop()
        worker, client, listener = self._worker, self._client, self._listener
        assert worker is not None and client is not None and listener is not None
        listener.stop()
        started = time.monotonic()
        try:
            releasing = worker.submit(client.release)
            # Bounded: a database that does not answer lets the lease expire instead.
            released = await releasing.addTimeout(self._lease, self._reactor)
        except Exception as error:
            _log.warn(
                "postgres election: could not release the lease ({reason}); "
                "another node takes over when it expires, within {lease}s",
                reason=describe_database_error(error),
                lease=self._lease,
            )
        else:
            if released is not None:
                _log.info(
                    "postgres election: released the lease of term {term} in {seconds:.3f}s"
                    "{was}",
                    term=released,
                    seconds=time.monotonic() - started,
                    was="" if was_leading else " (it had already lapsed here)",
                )
        worker.submit(client.close)
        worker.close()
        deadline = time.monotonic() + _LISTENER_STOP_S
        while listener.alive and time.monotonic() < deadline:
            await deferLater(self._reactor, _LISTEN_WAKE_S / 5)
        self._running = False
        self._tenure = None
        self._sighting = None
        self._refresh()


def _reason(failure: Failure) -> str:
    if failure.value is None:
        return "unknown error"
    return describe_database_error(failure.value)


def libpq_url(url: str, key: str) -> str:
    """``url`` (a ``database.url`` value) as psycopg takes it; the error names ``key``."""
    need = (
        "election.backend 'postgres' needs a PostgreSQL database: set database.url "
        f"or {SECTION}.url to postgresql://USER:PASSWORD@HOST/DB"
    )
    try:
        parsed = database_url(url)
    except DatabaseUrlError as error:
        raise PostgresElectionError(f"{key}: {error}; {need}") from None
    if parsed.get_backend_name() != "postgresql":
        raise PostgresElectionError(f"{key} is not a PostgreSQL URL; {need}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_postgres_election(config: Config, reactor: Any) -> PostgresElection:
    """Entry point ``revenge.election: postgres``."""
    settings = config.section(SECTION, PostgresElectionSettings)
    if settings.url:
        conninfo = libpq_url(settings.url, f"{SECTION}.url")
    else:
        conninfo = libpq_url(config.database.url, "database.url")
    return PostgresElection(
        config.node_id, conninfo=conninfo, reactor=reactor, settings=settings
    )
