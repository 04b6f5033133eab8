"""
A small process the network-fault tests start inside a cgroup, so that its
sockets are the ones the firewall and the proxy act on. It reads one JSON
command per line on stdin and answers one JSON line on stdout; every socket
wait in it has a timeout the test chose.

Run as ``python _netchild.py``; it needs nothing but the standard library.
"""

from __future__ import annotations

import errno
import json
import select
import socket
import sys
import threading
import time
from typing import Any

listener: socket.socket | None = None
connections: dict[str, socket.socket] = {}


def _error(error: OSError) -> str:
    if isinstance(error, socket.timeout) or error.errno is None:
        return "timeout"
    return errno.errorcode.get(error.errno, str(error.errno))


def listen(host: str, port: int) -> dict[str, Any]:
    global listener
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(16)
    return {"ok": True, "port": listener.getsockname()[1]}


def accept(name: str, timeout: float) -> dict[str, Any]:
    assert listener is not None
    listener.settimeout(timeout)
    try:
        connection, _ = listener.accept()
    except OSError as error:
        return {"error": _error(error)}
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connections[name] = connection
    return {"ok": True}


def connect(name: str, host: str, port: int, timeout: float) -> dict[str, Any]:
    connection = socket.socket()
    connection.settimeout(timeout)
    started = time.monotonic()
    try:
        connection.connect((host, port))
    except OSError as error:
        connection.close()
        return {"error": _error(error), "after": time.monotonic() - started}
    connection.settimeout(None)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connections[name] = connection
    return {"ok": True}


def send(name: str, data: str, chunks: int = 1) -> dict[str, Any]:
    """Send ``data`` in ``chunks`` separate writes (so that the proxy reads several chunks)."""
    payload = data.encode()
    step = max(1, -(-len(payload) // chunks))
    for start in range(0, len(payload), step):
        connections[name].sendall(payload[start : start + step])
    return {"ok": True}


def recv(names: list[str], timeout: float, size: int | None = None) -> dict[str, Any]:
    """What arrives on ``names`` within ``timeout`` (or once ``size`` bytes came on each), and which saw EOF."""
    deadline = time.monotonic() + timeout
    got = {name: b"" for name in names}
    eof: set[str] = set()
    while True:
        waiting = [
            n for n in names if n not in eof and (size is None or len(got[n]) < size)
        ]
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            break
        readable, _, _ = select.select([connections[n] for n in waiting], [], [], left)
        for name in waiting:
            if connections[name] in readable:
                data = connections[name].recv(65536)
                if data:
                    got[name] += data
                else:
                    eof.add(name)
    return {"data": {n: got[n].decode() for n in names}, "eof": sorted(eof)}


def shutdown(name: str) -> dict[str, Any]:
    connections[name].shutdown(socket.SHUT_WR)
    return {"ok": True}


def echo(name: str) -> dict[str, Any]:
    """Send back everything that arrives on ``name``, until EOF (then pass the EOF on)."""
    connection = connections[name]

    def run() -> None:
        while True:
            data = connection.recv(65536)
            if not data:
                connection.shutdown(socket.SHUT_WR)
                return
            connection.sendall(data)

    threading.Thread(target=run, daemon=True).start()
    return {"ok": True}


def rtt(name: str, data: str, timeout: float) -> dict[str, Any]:
    """Send ``data`` and time until as many bytes came back (from an echoing peer)."""
    connection = connections[name]
    payload = data.encode()
    connection.settimeout(timeout)
    started = time.monotonic()
    connection.sendall(payload)
    back = b""
    try:
        while len(back) < len(payload):
            chunk = connection.recv(65536)
            if not chunk:
                break
            back += chunk
    except OSError as error:
        return {"error": _error(error)}
    finally:
        connection.settimeout(None)
    return {"rtt": time.monotonic() - started, "data": back.decode()}


def main() -> None:
    handlers = {
        "listen": listen,
        "accept": accept,
        "connect": connect,
        "send": send,
        "recv": recv,
        "shutdown": shutdown,
        "echo": echo,
        "rtt": rtt,
    }
    for line in sys.stdin:
        command = json.loads(line)
        operation = command.pop("op")
        try:
            answer = handlers[operation](**command)
        except Exception as error:  # noqa: BLE001 (reported to the test, which fails on it)
            answer = {"exception": repr(error)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
