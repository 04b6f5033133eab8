"""
A cluster of real ``twistd -n revenge`` processes electing a leader with the
``raft`` backend on loopback, for tests and benchmarks.

Every node has its own working directory (its SQLite database and raft
journal), an admin token made with ``revenge user add`` before its first
start, and a raft port on one loopback address chosen per cluster
(``127.x.y.z``), so that clusters running side by side never share a port.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revenge.testing._process import ServerProcess, fetch_cluster_status, wait_until

if TYPE_CHECKING:
    from revenge.testing._faulty_network import FaultyNetwork

Status = dict[str, Any]


def _loopback_host() -> str:
    """A random 127.x.y.z (not 127.0.0.1): Linux routes all of 127/8 to loopback."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def free_raft_addresses(count: int) -> list[str]:
    """``count`` free ``HOST:PORT`` addresses on one random loopback address."""
    host = _loopback_host()
    return [f"{host}:{_free_port(host)}" for _ in range(count)]


def revenge_executable() -> str:
    return str(Path(sys.executable).with_name("revenge"))


@dataclass
class RaftNode:
    """One member: its identity, its files and (while running) its process."""

    index: int
    node_id: str
    raft_address: str
    workdir: Path
    token: str = ""
    process: ServerProcess | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return (
            self.process is not None
            and self.process.process is not None
            and self.process.process.poll() is None
        )


class RaftCluster:
    """
    ``size`` nodes that list each other as peers; nothing runs until :meth:`start`.

    With ``network`` (a :class:`~revenge.testing.FaultyNetwork`), every node
    gets its own cgroup and firewall mark now and runs inside that cgroup,
    so that the test can cut or delay its traffic; the cluster does not
    close the network (close it after :meth:`stop`).
    """

    def __init__(
        self,
        root: Path,
        size: int = 3,
        secret: str | None = None,
        env: Mapping[str, str] | None = None,
        network: FaultyNetwork | None = None,
    ) -> None:
        self.root = Path(root)
        self.secret = secret if secret is not None else secrets.token_urlsafe(32)
        self.env = dict(env or {})
        self.nodes = [
            RaftNode(
                index=index,
                node_id=f"node-{index}",
                raft_address=address,
                workdir=self.root / f"node-{index}",
            )
            for index, address in enumerate(free_raft_addresses(size))
        ]
        self.network = network
        if network is not None:
            for node in self.nodes:
                network.add(node)

    def node_env(self, node: RaftNode) -> dict[str, str]:
        return {
            "REVENGE_NODE_ID": node.node_id,
            "REVENGE_DATA_DIR": str(node.workdir / "data"),
            "REVENGE_ELECTION_BACKEND": "raft",
            "REVENGE_RAFT_SECRET": self.secret,
            "REVENGE_RAFT_BIND_ADDR": node.raft_address,
            "REVENGE_RAFT_ADVERTISE_ADDR": node.raft_address,
            # Every node gets the full list; each drops its own address.
            "REVENGE_RAFT_PEERS": ",".join(n.raft_address for n in self.nodes),
            **self.env,
            **node.extra_env,
        }

    def _make_admins(self, nodes: list[RaftNode]) -> None:
        """``revenge user add admin --admin`` in each node's database, all at once."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
        running = []
        for node in nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            running.append(
                subprocess.Popen(
                    [revenge_executable(), "user", "add", "admin", "--admin"],
                    cwd=node.workdir,
                    env={**base, **self.node_env(node)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for node, process in zip(nodes, running):
            out, err = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"revenge user add failed for {node.node_id}: {err}")
            node.token = out.strip()

    def start(self) -> RaftCluster:
        """Start every node (making admin tokens first) and wait until each serves HTTP."""
        self._make_admins([node for node in self.nodes if not node.token])
        for node in self.nodes:
            self.start_node(node, wait=False)
        for node in self.nodes:
            assert node.process is not None
            node.process.port  # noqa: B018 (waits for the listener)
        return self

    def command_prefix(self, node: RaftNode) -> list[str]:
        """What goes in front of ``node``'s twistd command: its cgroup wrapper with a network."""
        return self.network.command_prefix(node) if self.network is not None else []

    def start_node(self, node: RaftNode, wait: bool = True) -> ServerProcess:
        if not node.token:
            self._make_admins([node])
        process = ServerProcess(
            node.workdir, env=self.node_env(node), command_prefix=self.command_prefix(node)
        )
        node.process = process
        process.start()
        if wait:
            process.port  # noqa: B018 (waits for the listener)
        return process

    def signal(self, node: RaftNode, signum: int) -> None:
        assert node.process is not None
        node.process.signal(signum)

    def kill(self, node: RaftNode) -> None:
        """SIGKILL and reap."""
        self.signal(node, signal.SIGKILL)
        assert node.process is not None
        node.process.wait(30)

    def stop(self) -> None:
        """Stop every node still running: SIGCONT (it may be stopped), then SIGKILL."""
        for node in self.nodes:
            if node.running:
                assert node.process is not None
                node.process.kill()

    def __enter__(self) -> RaftCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Reading the election through the API.

    def status(self, node: RaftNode, timeout: float = 1.0) -> Status | None:
        """The node's ``GET /api/v1/cluster``, or None when it does not answer in time."""
        if not node.running:
            return None
        assert node.process is not None
        try:
            port = node.process.port
        except (RuntimeError, TimeoutError):
            return None
        return fetch_cluster_status(port, node.token, timeout)

    def leaders(self, among: list[RaftNode] | None = None, timeout: float = 1.0) -> list[RaftNode]:
        """The nodes (of ``among``, default all running) that now say they lead."""
        candidates = among if among is not None else [n for n in self.nodes if n.running]
        found = []
        for node in candidates:
            status = self.status(node, timeout)
            if status is not None and status.get("is_leader"):
                found.append(node)
        return found

    def wait_for_leader(
        self, among: list[RaftNode] | None = None, timeout: float = 30.0
    ) -> RaftNode:
        """Wait until exactly one node of ``among`` says it leads; return it."""

        def single() -> RaftNode | None:
            found = self.leaders(among)
            return found[0] if len(found) == 1 else None

        leader: RaftNode = wait_until(single, timeout, "exactly one raft leader", interval=0.02)
        return leader

    def is_warm(self) -> bool:
        """Every running node follows the same leader and is connected to every running peer."""
        running = [n for n in self.nodes if n.running]
        statuses = [self.status(n) for n in running]
        if any(s is None for s in statuses):
            return False
        leaders = {s["leader"] for s in statuses if s is not None}
        if len(leaders) != 1 or None in leaders:
            return False
        if sum(1 for s in statuses if s is not None and s["is_leader"]) != 1:
            return False
        addresses = {n.raft_address for n in running}
        for status in statuses:
            assert status is not None
            for peer in status["peers"]:
                if peer["address"] in addresses and not peer["connected"]:
                    return False
        return True

    def wait_warm(self, timeout: float = 30.0, settle: float = 0.0) -> None:
        """Wait until :meth:`is_warm`, and still so ``settle`` seconds later."""
        wait_until(self.is_warm, timeout, "a warm raft cluster", interval=0.05)
        if settle:
            deadline = time.monotonic() + settle
            wait_until(lambda: time.monotonic() >= deadline, settle + 1, "settling")
            wait_until(self.is_warm, timeout, "a warm raft cluster", interval=0.05)
