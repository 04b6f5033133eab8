"""
A raw HTTP/1.1 client for tests: sends exactly the bytes it is given and
keeps every byte that comes back, so malformed requests and the server's
answers to them can be checked byte for byte (twisted.web's own clients would
refuse to send them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

# Every wait of a raw connection is for something to happen, with this as its deadline.
RAW_DEADLINE = 15.0


class RawConnection(Protocol):
    """Sends whatever it is told, byte for byte; keeps all it receives."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()
        self._waiters: list[tuple[Callable[[bytes], bool], Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self.received += data
        for entry in list(self._waiters):
            condition, waiter = entry
            if condition(self.received):
                self._waiters.remove(entry)
                waiter.callback(self.received)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        for _, waiter in self._waiters:
            waiter.errback(AssertionError(f"connection closed; received {self.received!r}"))
        self._waiters = []
        self.closed.callback(self.received)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def wait_for(self, condition: Callable[[bytes], bool], what: str) -> Deferred[bytes]:
        waiter: Deferred[bytes] = Deferred()
        if condition(self.received):
            waiter.callback(self.received)
        else:
            self._waiters.append((condition, waiter))
        return within_deadline(waiter, what)

    def wait_closed(self, what: str = "the server to close the connection") -> Deferred[bytes]:
        return within_deadline(self.closed, what)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


def within_deadline(waiter: Deferred[bytes], what: str) -> Deferred[bytes]:
    def timed_out(failure: Failure) -> Failure:
        if failure.check(TimeoutError):
            raise AssertionError(f"timed out after {RAW_DEADLINE}s waiting for {what}")
        return failure

    from twisted.internet import reactor

    waiter.addTimeout(RAW_DEADLINE, reactor)
    waiter.addErrback(timed_out)
    return waiter


async def connect_raw(port: int) -> RawConnection:
    from twisted.internet import reactor

    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    connection: RawConnection = await connectProtocol(endpoint, RawConnection())
    return connection


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


CONTINUE_LINE = b"HTTP/1.1 100 Continue\r\n\r\n"


def parse_response(raw: bytes) -> RawAnswer:
    """The final response in ``raw`` (after a "100 Continue", if any)."""
    head, _, body = raw.removeprefix(CONTINUE_LINE).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(lines[0].split(" ")[1]), headers, body)


def has_full_response(raw: bytes) -> bool:
    """Whether ``raw`` holds a final response whose Content-Length body is complete."""
    head, separator, body = raw.removeprefix(CONTINUE_LINE).partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True
