"""Listening on an endpoint string, and draining on the way out."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
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
    Serves a :class:`RevengeSite` on a Twisted endpoint string. On stop it
    closes the listener, lets requests in flight finish for up to ``grace``
    seconds, then closes the connections left.
    """

    def __init__(
        self, reactor: Any, description: str, site: RevengeSite, grace: float, name: str
    ) -> None:
        self._reactor = reactor
        self._description = description
        self.site = site
        self._grace = grace
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

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        super().stopService()
        return ensureDeferred(self._drain())

    async def _drain(self) -> None:
        self.site.draining = True
        if self.port is not None:
            await maybeDeferred(self.port.stopListening)
            self.port = None
        in_flight = len(self.site.in_flight)
        if in_flight:
            _log.info(
                "{name}: waiting up to {grace}s for {count} request(s) in flight",
                name=self.name,
                grace=self._grace,
                count=in_flight,
            )
            idle = self.site.wait_idle()
            idle.addTimeout(self._grace, self._reactor)
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
