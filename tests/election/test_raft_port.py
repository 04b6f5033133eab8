"""
The raft port of a live three-node cluster against a stranger (who does not
know raft.secret) doing everything at once: a frame announced as 2 GiB
followed by a stream of zeros, 200 silent connections, random garbage, and
pickles framed like pysyncobj's, plain and encrypted with another key. The
leader keeps its quorum and its term throughout, nothing is executed, memory
stays flat, silent connections are closed, and the failures are counted and
logged (rate-limited, with the address).
"""

from __future__ import annotations

import pickle
import random
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from revenge.testing import RaftCluster, RaftNode, wait_until

from .payloads import CreatesAFile, frame

DEADLINE_S = 30.0
ATTACK_S = 6.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def auth_failures(node: RaftNode) -> dict[str, float]:
    assert node.process is not None
    return {
        reason: node.process.metric("revenge_raft_auth_failures_total", {"reason": reason}) or 0.0
        for reason in ("bad_token", "bad_frame", "oversized_frame", "timeout", "crowded")
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaftCluster]:
    running = RaftCluster(Path(tmp_path_factory.mktemp("raft-port")))
    try:
        running.start()
        running.wait_warm(DEADLINE_S, settle=0.5)
        yield running
    finally:
        running.stop()


class Stranger:
    """Threads that attack one address until stopped; what they saw is in ``seen``."""

    def __init__(self, host: str, port: int, marker: Path) -> None:
        self.host = host
        self.port = port
        self.marker = marker
        self.stop = threading.Event()
        self.seen: dict[str, Any] = {}
        self.idle: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=5)

    def run(self, *attacks: Callable[[], None]) -> None:
        for attack in attacks:
            thread = threading.Thread(target=attack, daemon=True)
            self._threads.append(thread)
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(DEADLINE_S)

    def huge_frame_of_zeros(self) -> None:
        sent = 0
        with self.connect() as connection:
            try:
                connection.sendall(struct.pack("i", 0x7FFFFFFF))
                while not self.stop.is_set():
                    connection.sendall(b"\0" * 65536)
                    sent += 65536
            except OSError:
                pass
        self.seen["zeros_sent_before_close"] = sent

    def silent_connections(self) -> None:
        for _ in range(200):
            try:
                self.idle.append(self.connect())
            except OSError:
                self.seen["silent_refused"] = self.seen.get("silent_refused", 0) + 1

    def garbage(self) -> None:
        count = 0
        noise = random.Random(7)
        while not self.stop.is_set():
            try:
                with self.connect() as connection:
                    connection.sendall(noise.randbytes(noise.randint(1, 6000)))
                count += 1
            except OSError:
                pass
        self.seen["garbage"] = count

    def pickles(self) -> None:
        evil = zlib.compress(pickle.dumps(CreatesAFile(str(self.marker)), protocol=2), 3)
        wrong_key = Fernet(Fernet.generate_key())
        count = 0
        while not self.stop.is_set():
            for payload in (evil, wrong_key.encrypt_at_time(evil, int(time.monotonic()))):
                try:
                    with self.connect() as connection:
                        connection.sendall(frame(payload))
                        connection.recv(16)
                    count += 1
                except OSError:
                    pass
        self.seen["pickles"] = count


def closed_by_peer(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_stranger_doing_everything_at_once_changes_nothing(
    cluster: RaftCluster, tmp_path: Path
) -> None:
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    status = cluster.status(leader)
    assert status is not None
    term = status["raft"]["term"]
    assert leader.process is not None and leader.process.process is not None
    pid = leader.process.process.pid
    before = rss_mib(pid)
    host, _, port = leader.raft_address.rpartition(":")
    stranger = Stranger(host, int(port), tmp_path / "pwned")
    stranger.run(
        stranger.huge_frame_of_zeros,
        stranger.silent_connections,
        stranger.garbage,
        stranger.pickles,
    )
    # Throughout: the same leader, in the same term, with its quorum.
    lapses = []
    end = time.monotonic() + ATTACK_S
    while time.monotonic() < end:
        next_poll = time.monotonic() + 0.1
        now = cluster.status(leader, timeout=2.0)
        if now is None or not now["is_leader"] or now["raft"]["term"] != term:
            lapses.append(now)
        wait_until(lambda: time.monotonic() >= next_poll, 5, "the next poll", interval=0.01)
    stranger.join()
    assert lapses == []
    assert stranger.seen.get("pickles", 0) > 0 and stranger.seen.get("garbage", 0) > 0
    # The 2 GiB frame was refused at its header: the zeros met a closed door.
    assert stranger.seen["zeros_sent_before_close"] < 64 << 20
    # Nothing ran, nothing grew.
    assert not stranger.marker.exists()
    assert rss_mib(pid) - before < 20
    failures = auth_failures(leader)
    assert failures["bad_token"] > 0 and failures["oversized_frame"] > 0
    # One warning line about all of it, not one per connection.
    warnings = [
        r for r in leader.process.logs()
        if "failed to authenticate" in r.get("message", "")
    ]
    assert 1 <= len(warnings) <= 2, warnings
    assert "127.0.0.1" in warnings[0]["message"]
    # Every silent connection was closed by the node (evicted or timed out).
    wait_until(lambda: all(closed_by_peer(c) for c in stranger.idle), DEADLINE_S,
               "the silent connections to be closed")
    for connection in stranger.idle:
        connection.close()
    cluster.wait_warm(DEADLINE_S)


def test_silent_connections_are_closed_after_the_auth_timeout(cluster: RaftCluster) -> None:
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    host, _, port = leader.raft_address.rpartition(":")
    before = auth_failures(leader).get("timeout", 0)
    opened = time.monotonic()
    silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(5)]
    try:
        wait_until(lambda: all(closed_by_peer(c) for c in silent), DEADLINE_S,
                   "the node to close them")
        # Not before the auth timeout (3 s), which is what closed them.
        assert time.monotonic() - opened >= 2.5
        wait_until(lambda: auth_failures(leader).get("timeout", 0) >= before + 5, DEADLINE_S,
                   "the timeouts to be counted")
    finally:
        for connection in silent:
            connection.close()
