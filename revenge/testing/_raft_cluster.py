"""
A cluster of real ``twistd -n revenge`` processes electing a leader with the
``raft`` backend on loopback, for tests and benchmarks.

Every node has its own working directory (its SQLite database and raft
journal), an admin token made with ``revenge user add`` before its first
start, and a raft port on one loopback address chosen per cluster
(``127.x.y.z``), so that clusters running side by side never share a port.
"""

from __future__ import annotations

import random
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from revenge.testing._cluster import ClusterNode, ProcessCluster, add_admins
from revenge.testing._waiting import wait_until

if TYPE_CHECKING:
    from revenge.testing._faulty_network import FaultyNetwork


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


@dataclass
class RaftNode(ClusterNode):
    """One member: its identity, its files, its raft address and (while running) its process."""

    _: KW_ONLY
    index: int
    raft_address: str
    token: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


class RaftCluster(ProcessCluster[RaftNode]):
    """
    ``size`` nodes that list each other as peers; nothing runs until :meth:`start`.

    With ``network`` (a :class:`~revenge.testing.FaultyNetwork`), every node
    gets its own cgroup and firewall mark now and runs inside that cgroup,
    so that the test can cut or delay its traffic; the cluster does not
    close the network (close it after :meth:`stop`).
    """

    leader_wanted = "exactly one raft leader"

    def __init__(
        self,
        root: Path,
        size: int = 3,
        secret: str | None = None,
        env: Mapping[str, str] | None = None,
        network: FaultyNetwork | None = None,
    ) -> None:
        super().__init__(root, env)
        self.secret = secret if secret is not None else secrets.token_urlsafe(32)
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

    def make_admins(self, nodes: list[RaftNode]) -> None:
        """``revenge user add admin --admin`` in the database of each node without a token."""
        missing = [node for node in nodes if not node.token]
        tokens = add_admins([(n.node_id, n.workdir, self.node_env(n)) for n in missing])
        for node, token in zip(missing, tokens):
            node.token = token

    def admin_token(self, node: RaftNode) -> str:
        return node.token

    def current_leader(self, among: list[RaftNode] | None = None) -> RaftNode | None:
        """Exactly one node of ``among`` says it leads (whether the others know yet or not)."""
        return self.sole_leader(among)

    def command_prefix(self, node: RaftNode) -> list[str]:
        """What goes in front of ``node``'s twistd command: its cgroup wrapper with a network."""
        return self.network.command_prefix(node) if self.network is not None else []

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


class FixedPortCluster(RaftCluster):
    """
    A :class:`RaftCluster` whose nodes keep their HTTP port across restarts,
    for a load generator or a balancer that knows the nodes by their URLs
    (:meth:`url`), which a restart must not change.
    """

    def __init__(
        self,
        root: Path,
        size: int = 3,
        secret: str | None = None,
        env: Mapping[str, str] | None = None,
        network: FaultyNetwork | None = None,
    ) -> None:
        super().__init__(root, size, secret, env, network)
        self.ports = {node.node_id: _free_port("127.0.0.1") for node in self.nodes}

    def url(self, node: RaftNode) -> str:
        return f"http://127.0.0.1:{self.ports[node.node_id]}"

    def server_args(self, node: RaftNode) -> list[str]:
        return ["--listen", f"tcp:{self.ports[node.node_id]}:interface=127.0.0.1"]
