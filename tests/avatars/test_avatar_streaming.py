"""
GET streams the stored body into the response: a client that does not read
pauses the producer (backpressure), one that leaves stops it, and a body that
fails half-way aborts the connection instead of passing for a whole avatar.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IConsumer
from twisted.internet.threads import deferToThread
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from revenge.storage import StorageError, StoredObject
from revenge.testing import eventually

from .helpers import DEADLINE_S, PNG

AVATAR = "/api/v1/users/{}/avatar"
LARGE = 24 * 1024 * 1024


@implementer(IBodyProducer)
class RecordingBody:
    """Passes everything to the real body, counting the calls it gets."""

    def __init__(self, inner: IBodyProducer) -> None:
        self.inner = inner
        self.length = inner.length
        self.pauses = 0
        self.resumes = 0
        self.stops = 0

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        return self.inner.startProducing(consumer)

    def pauseProducing(self) -> None:
        self.pauses += 1
        self.inner.pauseProducing()

    def resumeProducing(self) -> None:
        self.resumes += 1
        self.inner.resumeProducing()

    def stopProducing(self) -> None:
        self.stops += 1
        self.inner.stopProducing()


@implementer(IBodyProducer)
class BreakingBody:
    """Writes a first chunk of the real body's length, then fails like a dropped S3 connection."""

    def __init__(self, inner: IBodyProducer) -> None:
        self.inner = inner
        self.length = inner.length

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.inner.stopProducing()
        consumer.write(PNG[:1000])
        return fail(StorageError("injected: the connection to storage dropped"))

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def _wrap_gets(monkeypatch: Any, node: Any, wrapper: Any) -> list[Any]:
    provider = node.server.storage.provider
    get = provider.get
    made: list[Any] = []

    def wrapped_get(key: str) -> Deferred[StoredObject]:
        def wrap(stored: StoredObject) -> StoredObject:
            assert stored.body is not None
            body = wrapper(stored.body)
            made.append(body)
            return dataclasses.replace(stored, body=body)

        return get(key).addCallback(wrap)

    monkeypatch.setattr(provider, "get", wrapped_get)
    return made


def _connect_and_ask(port: int, path: str, request_id: str) -> socket.socket:
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small window, so a client that does not read stalls the server soon.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    connection.settimeout(30)
    connection.connect(("127.0.0.1", port))
    connection.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"X-Request-ID: {request_id}\r\n\r\n".encode()
    )
    return connection


def _read_to_end(connection: socket.socket) -> tuple[bytes, bytes]:
    received = bytearray()
    try:
        while True:
            try:
                chunk = connection.recv(1024 * 1024)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        connection.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return head, body


async def _large_avatar(node: Any, name: str) -> bytes:
    token = await node.add_user(name)
    data = PNG + hashlib.sha256(b"seed").digest() * (LARGE // 32)
    reply = await node.put_avatar(name, token, data)
    assert reply.status == 201, reply.body
    return data


@pytest.mark.avatar_cap(LARGE * 2)
@pytest_twisted.ensureDeferred
async def test_a_client_that_does_not_read_pauses_the_stored_body(avatar_node, monkeypatch):
    data = await _large_avatar(avatar_node, "slow")
    bodies = _wrap_gets(monkeypatch, avatar_node, RecordingBody)
    port = int(avatar_node.url.rsplit(":", 1)[1])
    connection = await deferToThread(_connect_and_ask, port, AVATAR.format("slow"), "slow-1")
    try:
        await eventually(
            lambda: bodies and bodies[0].pauses > 0, "the body to be paused", timeout=DEADLINE_S
        )
    except BaseException:
        connection.close()
        raise
    head, body = await deferToThread(_read_to_end, connection)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: %d" % len(data) in head
    assert len(body) == len(data)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert bodies[0].resumes > 0


@pytest.mark.avatar_cap(LARGE * 2)
@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_stops_the_stored_body(
    avatar_node, monkeypatch, captured_log
):
    await _large_avatar(avatar_node, "leaver")
    bodies = _wrap_gets(monkeypatch, avatar_node, RecordingBody)
    port = int(avatar_node.url.rsplit(":", 1)[1])
    connection = await deferToThread(_connect_and_ask, port, AVATAR.format("leaver"), "leaver-1")
    try:
        await eventually(
            lambda: bodies and bodies[0].pauses > 0, "the body to be paused", timeout=DEADLINE_S
        )
    finally:
        connection.close()
    await eventually(lambda: bodies[0].stops > 0, "the body to be stopped", timeout=DEADLINE_S)
    (line,) = await eventually(
        lambda: captured_log.matching(namespace="revenge.access", request_id="leaver-1"),
        "the access log line",
        timeout=DEADLINE_S,
    )
    assert line["aborted"] is True
    assert not [r for r in captured_log.records if r.get("level") in ("error", "critical")]


@pytest_twisted.ensureDeferred
async def test_a_body_that_fails_half_way_aborts_the_response(
    avatar_node, monkeypatch, captured_log
):
    token = await avatar_node.add_user("broken")
    assert (await avatar_node.put_avatar("broken", token, PNG)).status == 201
    _wrap_gets(monkeypatch, avatar_node, BreakingBody)
    port = int(avatar_node.url.rsplit(":", 1)[1])
    connection = await deferToThread(_connect_and_ask, port, AVATAR.format("broken"), "broken-1")
    head, body = await deferToThread(_read_to_end, connection)
    # The connection is aborted, never finished as if the avatar were whole:
    # the client gets a cut-short 200 or (as the abort drops what is still
    # buffered) nothing at all.
    if head:
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Content-Length: %d" % len(PNG) in head
    assert PNG.startswith(body)
    assert len(body) < len(PNG)
    (line,) = await eventually(
        lambda: captured_log.matching(namespace="revenge.access", request_id="broken-1"),
        "the access log line",
        timeout=DEADLINE_S,
    )
    assert line["aborted"] is True
    (warning,) = [
        r
        for r in captured_log.matching(request_id="broken-1")
        if "failed after 1000 bytes" in r["message"]
    ]
    assert "the connection to storage dropped" in warning["message"]
    assert not [r for r in captured_log.records if r.get("level") in ("error", "critical")]
