"""
A small HTTP/1.1 load generator, used by ``bench/run.py`` when ``wrk`` is absent.

``python bench/_load.py URL --connections 16 --duration 3`` keeps that many
keep-alive connections busy, one request outstanding on each, for that many
seconds, then writes one JSON line: requests completed, errors, seconds, rps and
its own CPU seconds (so the caller can show that the generator was not the
bottleneck).

It is one thread on raw sockets and ``epoll``, parsing only the status line and
``Content-Length``: a few microseconds per response, far below what a Twisted
server spends on one.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import socket
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


class _Connection:
    """One keep-alive connection with a single request in flight."""

    __slots__ = ("sock", "buffer")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5)
    # Requests are tiny: without NODELAY, Nagle plus delayed ACKs would add
    # tens of milliseconds per request and measure the kernel, not the server.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _content_length(head: bytes) -> int:
    marker = head.find(b"\r\nContent-Length:")
    if marker < 0:
        # Header names are case-insensitive; the slow path is rarely taken.
        lowered = head.lower()
        marker = lowered.find(b"\r\ncontent-length:")
        if marker < 0:
            raise ValueError("response without Content-Length")
    start = marker + len(b"\r\ncontent-length:")
    end = head.find(b"\r\n", start)
    return int(head[start:] if end < 0 else head[start:end])


def generate_load(url: str, connections: int, duration: float) -> dict[str, float | int]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii")

    poller = select.epoll()
    by_fd: dict[int, _Connection] = {}

    def open_one() -> None:
        conn = _Connection(_connect(host, port))
        by_fd[conn.sock.fileno()] = conn
        poller.register(conn.sock.fileno(), select.EPOLLIN)
        conn.sock.send(request)

    def drop(conn: _Connection) -> None:
        poller.unregister(conn.sock.fileno())
        del by_fd[conn.sock.fileno()]
        conn.sock.close()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    completed = 0
    errors = 0
    started = time.monotonic()
    deadline = started + duration
    for _ in range(connections):
        open_one()
    now = started
    while now < deadline:
        events = poller.poll(max(deadline - now, 0.0))
        now = time.monotonic()
        if now >= deadline:
            # Responses that arrived after the deadline are not counted.
            break
        for fd, _mask in events:
            conn = by_fd[fd]
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                # The server closed the connection: count it, open another.
                errors += 1
                drop(conn)
                open_one()
                continue
            buffer = conn.buffer + data
            while True:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                total = head_end + 4 + _content_length(buffer[:head_end])
                if len(buffer) < total:
                    break
                if buffer[9:12] == b"200":
                    completed += 1
                else:
                    errors += 1
                buffer = buffer[total:]
                conn.sock.send(request)
            conn.buffer = buffer
    elapsed = now - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for conn in list(by_fd.values()):
        drop(conn)
    poller.close()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "requests": completed,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rps": round(completed / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_s": round(cpu, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args(argv)
    result = generate_load(args.url, args.connections, args.duration)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
