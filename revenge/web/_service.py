"""Listening on an endpoint string, and draining on the way out."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure

from revenge.web._request import RevengeSite

_log = Logger(namespace="revenge.web")

# How long closing connections may take once their requests are done: only
# flushing what is already written, so a slow reader is not waited for long.
_CLOSE_TIMEOUT = 5.0


class StartupError(Exception):
    """The server cannot start; the message is the one line to show."""


class ConnectionTracker(WrappingFactory):
    """Knows the open connections of a listener, to close them on the way out."""

    noisy = False

    def __init__(self, wrapped: RevengeSite) -> None:
        super().__init__(wrapped)
        self._closed_waiters: list[Deferred[None]] = []

    def unregisterProtocol(self, protocol: Any) -> None:  # noqa: N802 (Twisted's name)
        super().unregisterProtocol(protocol)
        if not self.protocols:
            waiters, self._closed_waiters = self._closed_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def close_all(self) -> Deferred[None]:
        """
        Close every connection, after its pending output is written (unlike the
        reactor's shutdown, which drops it); fires when all are closed.
        """
        if not self.protocols:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._closed_waiters.append(waiter)
        for protocol in list(self.protocols):
            protocol.transport.loseConnection()
        return waiter


class ListenerService(Service):
    """
    Serves a :class:`RevengeSite` on a Twisted endpoint string.

    Draining starts with :meth:`start_draining` (the top service calls it as
    ``/readyz`` turns 503) or else with the stop: from then on every response
    is its connection's last, and the listener goes on accepting until
    ``linger`` seconds have passed since draining started. Closing a listener
    resets the connections the kernel has accepted into its backlog, and a
    load balancer goes on sending new ones until it has seen the 503; the
    linger serves both. On stop it waits out what is left of the linger,
    closes the listener, lets requests in flight finish, then closes the
    connections left. The stop's wait for the linger counts towards its
    ``grace``: from the stop until requests in flight are given up on is at
    most ``grace`` seconds, linger included.
    """

    def __init__(
        self,
        reactor: Any,
        description: str,
        site: RevengeSite,
        grace: float,
        name: str,
        linger: float = 0.0,
    ) -> None:
        self._reactor = reactor
        self._description = description
        self.site = site
        self._grace = grace
        # The configuration refuses a longer one; this holds for a listener
        # built by hand too.
        self._linger = min(linger, grace)
        self._draining_since: float | None = None
        self.setName(name)
        self.port: IListeningPort | None = None
        self.connections = ConnectionTracker(site)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        endpoint = serverFromString(self._reactor, self._description)
        outcome: list[object] = []
        endpoint.listen(self.connections).addBoth(outcome.append)
        # Stream endpoints listen synchronously; failing here, before the
        # reactor runs, lets twistd exit non-zero instead of serving nothing.
        if not outcome:
            raise StartupError(f"listening on {self._description!r} did not complete at once")
        if isinstance(outcome[0], Failure):
            raise StartupError(
                f"cannot listen on {self._description!r} ({self.name}): "
                f"{outcome[0].getErrorMessage()}"
            )
        port = outcome[0]
        assert IListeningPort.providedBy(port)
        self.port = port
        super().startService()
        address = port.getHost()
        _log.info(
            "{name} listening on {description} ({address})",
            name=self.name,
            description=self._description,
            address=str(address),
            # Lets tools that asked for port 0 learn the real one from the log.
            port=getattr(address, "port", None),
        )

    def start_draining(self) -> None:
        """
        From now on every response says ``Connection: close``, and the
        linger runs; the listener keeps accepting. Only the first call counts.
        """
        if self._draining_since is not None:
            return
        self._draining_since = self._reactor.seconds()
        self.site.draining = True
        if self.port is not None and self._linger > 0:
            _log.info(
                "{name}: draining; still accepting connections for {linger}s",
                name=self.name,
                linger=self._linger,
            )

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        super().stopService()
        return ensureDeferred(self._drain())

    async def _drain(self) -> None:
        stopping_since = self._reactor.seconds()
        self.start_draining()
        assert self._draining_since is not None
        if self.port is not None:
            # What the services stopped before this one took already counts.
            lingering = self._draining_since + self._linger - stopping_since
            if lingering > 0:
                await deferLater(self._reactor, lingering)
            await maybeDeferred(self.port.stopListening)
            self.port = None
        # The linger is part of the grace: only what is left of it is given
        # (never below 0: closing the port may itself have taken a moment).
        grace = max(0.0, stopping_since + self._grace - self._reactor.seconds())
        in_flight = len(self.site.in_flight)
        if in_flight:
            _log.info(
                "{name}: waiting up to {grace}s for {count} request(s) in flight",
                name=self.name,
                grace=round(grace, 3),
                count=in_flight,
            )
            idle = self.site.wait_idle()
            idle.addTimeout(grace, self._reactor)
            try:
                await idle
            except Exception:
                _log.warn(
                    "{name}: shutdown grace of {grace}s over with {count} request(s) unfinished",
                    name=self.name,
                    grace=self._grace,
                    count=len(self.site.in_flight),
                )
        closed = self.connections.close_all()
        closed.addTimeout(_CLOSE_TIMEOUT, self._reactor)
        try:
            await closed
        except Exception:
            _log.warn(
                "{name}: {count} connection(s) did not close in {timeout}s",
                name=self.name,
                count=len(self.connections.protocols),
                timeout=_CLOSE_TIMEOUT,
            )
