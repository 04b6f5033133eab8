"""
A large file streamed to a slow client keeps the server's memory flat: a
real ``twistd revenge`` process, a 256 MiB sparse file, and a client with a
small receive buffer that stops reading several times. While it does not
read, the server must stop reading the file too (backpressure), and its
resident memory must not grow with the file.

The bounds are memory bounds, generous on purpose; no timing is asserted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from revenge.testing import ServerProcess, wait_until

MiB = 1024 * 1024
FILE_SIZE = 256 * MiB
# What the server may hold beyond its idle size, and read ahead of a stalled client.
MEMORY_BOUND = 64 * MiB
READ_AHEAD_BOUND = 64 * MiB
MARKERS = {0: b"first-bytes-here", 128 * MiB: b"in-the-middle-xx", FILE_SIZE - 16: b"the-very-end-xxx"}
STALL_AT = (0, 64 * MiB, 160 * MiB)


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def bytes_read_by(pid: int) -> int:
    # rchar: every byte the process got from read(2), pread(2) and friends.
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar line")


def wait_until_settled(sample: Callable[[], int], what: str) -> int:
    """Wait until ``sample()`` gives the same value several times running."""
    history: list[int] = []

    def settled() -> bool:
        history.append(sample())
        return len(history) >= 5 and len(set(history[-5:])) == 1

    wait_until(settled, 60, what, interval=0.05)
    return history[-1]


def add_user(workdir: Path, name: str) -> str:
    revenge = Path(sys.executable).with_name("revenge")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env["REVENGE_DATA_DIR"] = str(workdir / "data")
    result = subprocess.run(
        [str(revenge), "user", "add", name],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def read_head(connection: socket.socket) -> tuple[bytes, bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        assert chunk, f"connection closed in the headers: {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc")
def test_memory_stays_flat_for_a_slow_client(tmp_path: Path) -> None:
    movies = tmp_path / "movies"
    movies.mkdir()
    big = movies / "big.mkv"
    with big.open("wb") as file:
        file.truncate(FILE_SIZE)  # sparse: no disk used
        for offset, marker in MARKERS.items():
            file.seek(offset)
            file.write(marker)

    with ServerProcess(tmp_path / "node", env={"REVENGE_MEDIA_MOVIE_PATHS": str(movies)}) as node:
        node.wait_ready()
        token = add_user(node.workdir, "viewer")
        assert node.process is not None
        pid = node.process.pid
        request = (
            f"GET /media/movies/big.mkv HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: Bearer {token}\r\n"
        )

        # Warm up the code paths (and the worker threads) with one ranged request.
        with socket.create_connection(("127.0.0.1", node.port), timeout=30) as warm:
            warm.sendall((request + f"Range: bytes=0-{MiB - 1}\r\nConnection: close\r\n\r\n").encode())
            head, rest = read_head(warm)
            assert head.startswith(b"HTTP/1.1 206"), head
            received = len(rest)
            while chunk := warm.recv(65536):
                received += len(chunk)
            assert received == MiB
        idle = wait_until_settled(lambda: resident_bytes(pid), "the idle server's memory to settle")

        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive window, set before connecting so that it applies.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.settimeout(30)
        client.connect(("127.0.0.1", node.port))
        try:
            client.sendall((request + "\r\n").encode())
            head, body = read_head(client)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert f"content-length: {FILE_SIZE}".encode() in head.lower()
            position = 0
            collected = {offset: b"" for offset in MARKERS}
            peak = idle
            stalls = list(STALL_AT)

            def consume(data: bytes) -> None:
                nonlocal position
                for offset in MARKERS:
                    start = max(offset, position)
                    end = min(offset + 16, position + len(data))
                    if start < end:
                        collected[offset] += data[start - position : end - position]
                position += len(data)

            consume(body)
            while position < FILE_SIZE:
                if stalls and position >= stalls[0]:
                    stalls.pop(0)
                    # The client stops reading: the server must stop reading too.
                    before = bytes_read_by(pid)
                    read_then = wait_until_settled(
                        lambda: bytes_read_by(pid), "the server to stop reading the file"
                    )
                    assert read_then - before < READ_AHEAD_BOUND, (
                        f"the server read {(read_then - before) / MiB:.1f} MiB "
                        "while the client read nothing"
                    )
                    peak = max(peak, resident_bytes(pid))
                chunk = client.recv(256 * 1024)
                assert chunk, f"the connection closed after {position} bytes"
                consume(chunk)
                if position % (8 * MiB) < len(chunk):
                    peak = max(peak, resident_bytes(pid))
            assert position == FILE_SIZE
            assert collected == MARKERS
        finally:
            client.close()
        growth = peak - idle
        assert growth < MEMORY_BOUND, (
            f"resident memory grew by {growth / MiB:.1f} MiB streaming {FILE_SIZE // MiB} MiB"
        )
