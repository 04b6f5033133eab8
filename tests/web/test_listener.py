"""
ListenerService on the way out (docs/operations.md, "Graceful shutdown"): the
linger, during which it still accepts and serves with ``Connection: close``,
then the close, then the wait for requests in flight, all inside the grace.
Time is a Clock; the listener a MemoryReactor's.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from revenge.metrics import Metrics
from revenge.web import HealthChecks, ListenerService, RevengeApp, RevengeSite


@implementer(IListeningPort)
class Port:
    """A listening port that knows whether it still listens."""

    def __init__(self, port: int) -> None:
        self.listening = True
        self._address = IPv4Address("TCP", "127.0.0.1", port)

    def getHost(self) -> IPv4Address:  # noqa: N802 (Twisted's name)
        return self._address

    def startListening(self) -> None:  # noqa: N802 (Twisted's name)
        pass

    def stopListening(self) -> None:  # noqa: N802 (Twisted's name)
        self.listening = False


class Reactor(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: list[Port] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:  # noqa: N802
        super().listenTCP(port, factory, backlog, interface)
        self.ports.append(Port(port or 8096))
        return self.ports[-1]


def listener(reactor: Reactor, *, grace: float, linger: float) -> tuple[ListenerService, HealthChecks]:
    health = HealthChecks(reactor)
    metrics = Metrics()
    app = RevengeApp(health, metrics)
    site = RevengeSite(app.resource(), metrics, body_limit=app.body_limit, reactor=reactor)
    service = ListenerService(reactor, "tcp:0", site, grace, "http", linger=linger)
    service.startService()
    return service, health


def get(reactor: Reactor, path: bytes) -> tuple[int, list[bytes], Any]:
    """
    One request on a new connection the listener accepts: the status, the
    header lines and the JSON body of the answer. The server must close the
    connection after it, as it does while draining.
    """
    factory = reactor.tcpServers[-1][1]
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: revenge\r\n\r\n")
    reactor.advance(0)
    assert transport.disconnecting, "the connection was kept alive"
    protocol.connectionLost(Failure(ConnectionDone()))
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status_line, *headers = head.split(b"\r\n")
    return int(status_line.split()[1]), headers, json.loads(body)


def test_the_listener_serves_during_the_linger_then_closes() -> None:
    reactor = Reactor()
    service, health = listener(reactor, grace=25.0, linger=2.0)
    (port,) = reactor.ports
    health.start_draining()
    stopped: Deferred[None] = service.stopService()

    reactor.advance(1.9)
    assert port.listening
    assert not stopped.called
    status, headers, body = get(reactor, b"/readyz")
    assert (status, body) == (503, {"status": "draining"})
    assert b"Connection: close" in headers

    reactor.advance(0.1)
    assert not port.listening
    assert service.port is None
    assert stopped.called


def test_the_linger_counts_from_start_draining_not_from_the_stop() -> None:
    reactor = Reactor()
    service, _ = listener(reactor, grace=25.0, linger=2.0)
    (port,) = reactor.ports
    service.start_draining()
    # Responses close their connections at once, while the port still listens.
    status, headers, _ = get(reactor, b"/healthz")
    assert status == 200
    assert b"Connection: close" in headers
    # Other services took 1.5 s to stop; half a second of linger is left.
    reactor.advance(1.5)
    stopped = service.stopService()
    reactor.advance(0.4)
    assert port.listening
    reactor.advance(0.1)
    assert not port.listening
    assert stopped.called


def test_a_linger_over_already_closes_at_once() -> None:
    reactor = Reactor()
    service, _ = listener(reactor, grace=25.0, linger=2.0)
    (port,) = reactor.ports
    service.start_draining()
    reactor.advance(3.0)
    stopped = service.stopService()
    assert not port.listening
    assert stopped.called


def test_zero_linger_closes_at_once() -> None:
    reactor = Reactor()
    service, _ = listener(reactor, grace=25.0, linger=0.0)
    (port,) = reactor.ports
    stopped = service.stopService()
    assert not port.listening
    assert stopped.called


def test_the_linger_is_capped_by_the_grace() -> None:
    reactor = Reactor()
    service, _ = listener(reactor, grace=1.0, linger=5.0)
    (port,) = reactor.ports
    stopped = service.stopService()
    reactor.advance(0.9)
    assert port.listening
    reactor.advance(0.1)
    assert not port.listening
    assert stopped.called


def test_the_linger_is_part_of_the_grace_for_requests_in_flight() -> None:
    """A request still running when the linger ends gets only what is left of the grace."""
    reactor = Reactor()
    service, _ = listener(reactor, grace=5.0, linger=2.0)
    (port,) = reactor.ports
    unfinished = object()
    service.site.in_flight.add(unfinished)  # type: ignore[arg-type]
    stopped = service.stopService()
    reactor.advance(2.0)
    assert not port.listening
    assert not stopped.called
    reactor.advance(2.9)
    assert not stopped.called
    # 5 s after the stop, linger included, the request is given up on.
    reactor.advance(0.1)
    assert stopped.called


def test_a_kept_alive_connection_closes_after_its_next_response_once_draining() -> None:
    """Twisted decides keep-alive as headers come in; draining overrides it later."""
    reactor = Reactor()
    service, _ = listener(reactor, grace=25.0, linger=2.0)
    factory = reactor.tcpServers[-1][1]
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50001))
    transport = StringTransport()
    protocol.makeConnection(transport)
    request = b"GET /healthz HTTP/1.1\r\nHost: revenge\r\n\r\n"
    protocol.dataReceived(request)
    reactor.advance(0)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" not in transport.value()
    assert not transport.disconnecting
    transport.clear()

    service.start_draining()
    protocol.dataReceived(request)
    reactor.advance(0)
    head = transport.value().partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in head.split(b"\r\n")
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone()))
    stopped = service.stopService()
    reactor.advance(2.0)
    assert stopped.called
