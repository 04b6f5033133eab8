"""
The raft port against strangers.

pysyncobj reads whatever a connection sends into one buffer until a whole
frame (a native int32 length, then that many bytes) has arrived, and only
then tries to decrypt it with the key derived from ``raft.secret``. Measured
in issue 12: one connection announcing a 2 GiB frame and streaming zeros was
buffered (with a quadratic copy) before any authentication, the leader lost
its quorum within a second and grew by 70 MiB; silent connections were never
closed; failed authentications left no trace.

The pieces here sit below pysyncobj's ``TcpConnection`` without changing it:

- :class:`GuardedServer` replaces pysyncobj's ``TcpServer``: it accepts, caps
  the connections that have proved nothing yet per remote address and in
  all (closing the oldest beyond the cap), and wraps each socket;
- :class:`FramedSocket` wraps a socket and reads pysyncobj's framing as the
  bytes go by: a frame announced larger than allowed (4 KiB before the
  connection has decrypted anything, 1 MiB after), empty or negative closes
  the connection at its header, and one read burst never returns more than
  one frame's worth, so nothing is ever buffered beyond a frame;
- :class:`CheckedEncryptor` wraps the Fernet key per connection: the first
  frame that decrypts marks the connection authenticated, one that does not
  is counted and logged;
- :class:`PortGuard` keeps the books: connections that have not named a peer
  within ``auth_timeout`` are closed, failures are counted by reason for
  ``revenge_raft_auth_failures_total`` and logged at most once per minute per
  remote address.

Everything runs on the tick thread.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import TcpConnection, _getAddrType
from twisted.logger import LogLevel

from revenge.election._raft._tuning import RaftTuning

# Reasons a connection is closed before it proved it knows the secret; the
# label values of revenge_raft_auth_failures_total.
BAD_TOKEN = "bad_token"  # a frame that does not decrypt with our key
BAD_FRAME = "bad_frame"  # an empty or negative frame length
OVERSIZED_FRAME = "oversized_frame"  # a frame larger than allowed before authentication
TIMEOUT = "timeout"  # nothing that decrypts within auth_timeout
CROWDED = "crowded"  # closed to make room: too many unproven connections from its address
FAILURE_REASONS = (BAD_TOKEN, BAD_FRAME, OVERSIZED_FRAME, TIMEOUT, CROWDED)

# How often failures from one address are logged at most.
FAILURE_LOG_INTERVAL_S = 60.0
# Remote addresses whose failures are remembered for the rate limit.
MAX_REMEMBERED_ADDRESSES = 1024
# The listening socket's backlog (pysyncobj's own server uses 5).
LISTEN_BACKLOG = 64
# Connections accepted per readiness event, so that a flood of connects
# cannot keep the tick thread from its timers.
ACCEPTS_PER_EVENT = 16

_HEADER = struct.Struct("i")  # pysyncobj's frame length: native-endian int32

Log = Callable[..., None]  # (level, text, **fields), as _Bridge.log


class FrameRefused(OSError):
    """Raised from recv(): pysyncobj's TcpConnection then closes the connection."""

    def __init__(self, reason: str, length: int, limit: int) -> None:
        super().__init__(errno.EMSGSIZE, f"raft frame of {length} bytes refused ({reason})")
        self.reason = reason
        self.length = length
        self.limit = limit


@dataclass(eq=False)
class ConnectionGuard:
    """What is known of one connection, shared by its socket and key wrappers."""

    remote: str  # the remote IP address (incoming) or the peer's address (outgoing)
    incoming: bool
    opened_at: float
    authenticated: bool = False
    # The first reason this connection failed, once it did.
    failure: str | None = None
    connection: Any = None  # the TcpConnection, once built
    frames: int = field(default=0)


class PortGuard:
    """The books of one transport: pending connections, failures, limits."""

    def __init__(
        self, tuning: RaftTuning, log: Log, still_unknown: Callable[[Any], bool]
    ) -> None:
        self._tuning = tuning
        self._log = log
        # pysyncobj's view: whether a connection has not named a peer yet.
        self._still_unknown = still_unknown
        # Incoming connections that have not named a peer yet, oldest first.
        self._pending: OrderedDict[ConnectionGuard, None] = OrderedDict()
        self.failures: Counter[str] = Counter()
        # remote -> (when last logged, failures by reason since then)
        self._failure_log: OrderedDict[str, tuple[float, Counter[str]]] = OrderedDict()

    # Limits.

    def frame_limit(self, guard: ConnectionGuard) -> int:
        if guard.authenticated:
            return self._tuning.max_frame
        return self._tuning.max_unauthenticated_frame

    # Incoming connections.

    def admit(self, remote: str, now: float) -> ConnectionGuard:
        """A guard for a new incoming connection, closing the oldest pending ones beyond the caps."""
        self._forget_settled()
        same_address = [g for g in self._pending if g.remote == remote]
        while len(same_address) >= self._tuning.max_pending_per_address:
            self._evict(same_address.pop(0), now)
        while len(self._pending) >= self._tuning.max_pending_total:
            self._evict(next(iter(self._pending)), now)
        guard = ConnectionGuard(remote, incoming=True, opened_at=now)
        self._pending[guard] = None
        return guard

    def _forget_settled(self) -> None:
        """Drop the pending entries whose connection is gone or named a peer."""
        for guard in list(self._pending):
            connection = guard.connection
            if connection is not None and not self._still_unknown(connection):
                self._pending.pop(guard, None)

    def _evict(self, guard: ConnectionGuard, now: float) -> None:
        self._pending.pop(guard, None)
        self.fail(guard, CROWDED, now)
        if guard.connection is not None:
            guard.connection.disconnect()

    def closed(self, guard: ConnectionGuard) -> None:
        self._pending.pop(guard, None)

    def sweep(self, now: float) -> None:
        """
        Close pending connections older than ``auth_timeout``; forget those
        that are gone or named a peer. Also writes failure summaries that are due.
        """
        self._forget_settled()
        deadline = now - self._tuning.auth_timeout
        for guard in list(self._pending):
            connection = guard.connection
            if connection is None:
                continue
            if guard.opened_at > deadline:
                break  # oldest first: the rest are younger
            self._pending.pop(guard, None)
            if not guard.authenticated:
                self.fail(guard, TIMEOUT, now)
            connection.disconnect()
        self._flush_failure_log(now)

    def pending_count(self) -> int:
        return len(self._pending)

    # Failures.

    def fail(self, guard: ConnectionGuard, reason: str, now: float | None = None) -> None:
        """Count and (rate-limited) log that ``guard``'s connection failed to authenticate."""
        if guard.failure is not None or guard.authenticated:
            return
        guard.failure = reason
        self.failures[reason] += 1
        now = time.monotonic() if now is None else now
        remembered = self._failure_log.get(guard.remote)
        if remembered is None or now - remembered[0] >= FAILURE_LOG_INTERVAL_S:
            since = Counter({reason: 1})
            if remembered is not None:
                since.update(remembered[1])
            self._report(guard.remote, guard.incoming, since, first=remembered is None)
            self._remember(guard.remote, (now, Counter()))
        else:
            remembered[1][reason] += 1

    def _remember(self, remote: str, entry: tuple[float, Counter[str]]) -> None:
        self._failure_log[remote] = entry
        self._failure_log.move_to_end(remote)
        while len(self._failure_log) > MAX_REMEMBERED_ADDRESSES:
            self._failure_log.popitem(last=False)

    def _flush_failure_log(self, now: float) -> None:
        for remote, (logged_at, since) in list(self._failure_log.items()):
            if since and now - logged_at >= FAILURE_LOG_INTERVAL_S:
                self._report(remote, True, since, first=False)
                self._failure_log[remote] = (now, Counter())

    def _report(self, remote: str, incoming: bool, counts: Counter[str], first: bool) -> None:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))
        total = sum(counts.values())
        if incoming:
            self._log(
                LogLevel.warn,
                "raft port: {count} connection(s) from {remote} failed to authenticate "
                "({reasons}){since}; a peer with another raft.secret, or a stranger",
                count=total,
                remote=remote,
                reasons=reasons,
                since="" if first else " in the last minute",
            )
        else:
            self._log(
                LogLevel.warn,
                "raft peer {remote} answered with frames that do not decrypt ({reasons}); "
                "does it use the same raft.secret?",
                remote=remote,
                reasons=reasons,
            )


class FramedSocket:
    """
    A socket for pysyncobj's TcpConnection that reads its framing as bytes
    arrive and refuses what no peer sends (see the module docstring).
    """

    def __init__(self, sock: socket.socket, guard: ConnectionGuard, books: PortGuard) -> None:
        self._socket = sock
        self._guard = guard
        self._books = books
        self._header = bytearray()
        self._body_left = 0
        # Bytes returned since the last EAGAIN: one burst of reads is bounded.
        self._burst = 0

    # What TcpConnection calls, passed through.

    def fileno(self) -> int:
        return self._socket.fileno()

    def send(self, data: bytes) -> int:
        return self._socket.send(data)

    def setsockopt(self, *args: Any) -> None:
        self._socket.setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self._socket.getsockopt(*args)

    def setblocking(self, flag: bool) -> None:
        self._socket.setblocking(flag)

    def connect(self, address: Any) -> None:
        self._socket.connect(address)

    def close(self) -> None:
        self._books.closed(self._guard)
        self._socket.close()

    # The guarded read.

    def recv(self, size: int) -> bytes:
        allowed = self._readable_now()
        if allowed <= 0:
            self._burst = 0
            raise BlockingIOError(errno.EAGAIN, "frame budget used; parse first")
        try:
            data = self._socket.recv(min(size, allowed))
        except BlockingIOError:
            self._burst = 0
            raise
        self._burst += len(data)
        self._track(data)
        return data

    def _readable_now(self) -> int:
        """How many bytes this read may return."""
        guard = self._guard
        if not guard.authenticated:
            # Nothing beyond the first frame until it has been decrypted.
            if guard.frames > 1 or (guard.frames == 1 and self._body_left == 0):
                return 0
            if guard.frames == 1:
                return self._body_left
            return 4 - len(self._header)
        return self._books.frame_limit(guard) + _HEADER.size - self._burst

    def _track(self, data: bytes) -> None:
        position = 0
        size = len(data)
        while position < size:
            if self._body_left:
                taken = min(self._body_left, size - position)
                self._body_left -= taken
                position += taken
                continue
            taken = min(_HEADER.size - len(self._header), size - position)
            self._header += data[position:position + taken]
            position += taken
            if len(self._header) < _HEADER.size:
                break
            (length,) = _HEADER.unpack(bytes(self._header))
            self._header.clear()
            limit = self._books.frame_limit(self._guard)
            if length <= 0:
                self._refuse(BAD_FRAME, length, limit)
            if length > limit:
                self._refuse(OVERSIZED_FRAME, length, limit)
            self._body_left = length
            self._guard.frames += 1

    def _refuse(self, reason: str, length: int, limit: int) -> None:
        if not self._guard.authenticated:
            self._books.fail(self._guard, reason)
        raise FrameRefused(reason, length, limit)


class CheckedEncryptor:
    """pysyncobj's Fernet key for one connection, noting success and failure."""

    def __init__(self, fernet: Any, guard: ConnectionGuard, books: PortGuard) -> None:
        self._fernet = fernet
        self._guard = guard
        self._books = books

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        token: bytes = self._fernet.encrypt_at_time(data, current_time)
        return token

    def extract_timestamp(self, token: bytes) -> int:
        try:
            stamp: int = self._fernet.extract_timestamp(token)
        except InvalidToken:
            self._books.fail(self._guard, BAD_TOKEN)
            raise
        return stamp

    def decrypt(self, token: bytes) -> bytes:
        try:
            data: bytes = self._fernet.decrypt(token)
        except InvalidToken:
            self._books.fail(self._guard, BAD_TOKEN)
            raise
        self._guard.authenticated = True
        return data


class GuardedConnection(TcpConnection):  # type: ignore[misc]  # pysyncobj is untyped
    """pysyncobj's connection for our outgoing links, its socket framed and its key checked."""

    def __init__(self, books: PortGuard, remote: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._books = books
        self._remote = remote
        self.guard = ConnectionGuard(remote, incoming=False, opened_at=time.monotonic())

    def connect(self, host: Any, port: Any) -> bool:
        started = bool(super().connect(host, port))
        # A fresh guard per attempt: what the last connection proved is gone.
        self.guard = ConnectionGuard(self._remote, incoming=False, opened_at=time.monotonic())
        raw = getattr(self, "_TcpConnection__socket", None)
        if isinstance(raw, socket.socket):
            self._TcpConnection__socket = FramedSocket(raw, self.guard, self._books)
        key: Any = getattr(self, "encryptor", None)
        if key is not None:
            self.encryptor = CheckedEncryptor(_plain_key(key), self.guard, self._books)
        return started


def _plain_key(encryptor: Any) -> Any:
    return encryptor._fernet if isinstance(encryptor, CheckedEncryptor) else encryptor


class GuardedServer:
    """
    The raft port's listener in place of pysyncobj's TcpServer (same
    ``bind``/``unbind``): every accepted connection passes :class:`PortGuard`.
    """

    def __init__(
        self,
        poller: Any,
        host: str,
        port: int,
        on_new_connection: Callable[[Any], None],
        books: PortGuard,
        *,
        send_buffer: int,
        receive_buffer: int,
        connection_timeout: float,
        keepalive: Any = None,
    ) -> None:
        self._poller = poller
        self._host = host
        self._port = int(port)
        self._on_new_connection = on_new_connection
        self._books = books
        self._send_buffer = send_buffer
        self._receive_buffer = receive_buffer
        self._connection_timeout = connection_timeout
        self._keepalive = keepalive
        self._socket: socket.socket | None = None

    def bind(self) -> None:
        listener = socket.socket(_getAddrType(self._host), socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setblocking(False)
            listener.bind((self._host, self._port))
            listener.listen(LISTEN_BACKLOG)
        except BaseException:
            listener.close()
            raise
        self._socket = listener
        self._poller.subscribe(
            listener.fileno(), self._on_readable, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        )

    def unbind(self) -> None:
        listener, self._socket = self._socket, None
        if listener is not None:
            self._poller.unsubscribe(listener.fileno())
            listener.close()

    def _on_readable(self, descriptor: int, event: int) -> None:
        listener = self._socket
        if listener is None or descriptor != listener.fileno():
            self._poller.unsubscribe(descriptor)
            return
        if event & POLL_EVENT_TYPE.ERROR:
            self.unbind()
            return
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EMFILE,
                                   errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return  # the listener is fine; try again at the next event
                self.unbind()
                return
            self._accept(sock, str(address[0]))

    def _accept(self, sock: socket.socket, remote: str) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        guard = self._books.admit(remote, time.monotonic())
        connection = TcpConnection(
            poller=self._poller,
            socket=FramedSocket(sock, guard, self._books),
            timeout=self._connection_timeout,
            sendBufferSize=self._send_buffer,
            recvBufferSize=self._receive_buffer,
            keepalive=self._keepalive,
        )
        guard.connection = connection
        self._on_new_connection(connection)
        key: Any = connection.encryptor
        if key is not None:
            connection.encryptor = CheckedEncryptor(_plain_key(key), guard, self._books)
