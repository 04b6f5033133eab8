"""
The network of a :class:`~revenge.testing.RaftCluster` as a test can break it:
each node in its own cgroup, registered with a :class:`LoopbackFirewall`, and
optionally its raft links through a :class:`DelayProxy`, all addressed by
:class:`~revenge.testing.RaftNode` rather than by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from revenge.testing._delay_proxy import Delay, DelayProxy
from revenge.testing._netfaults import Direction, Fault, LoopbackFirewall, NodeCgroups

if TYPE_CHECKING:
    from revenge.testing._raft_cluster import RaftNode


class FaultyNetwork:
    """
    Cgroups, a firewall and (with ``delays=True``) a delay proxy for the
    nodes of one cluster. Make it before the cluster starts, pass it as
    ``RaftCluster(..., network=...)``, and close it after the cluster stopped::

        with FaultyNetwork() as network, RaftCluster(tmp_path, network=network) as cluster:
            network.cut_raft(cluster.wait_for_leader())
    """

    def __init__(self, delays: bool = False) -> None:
        self.cgroups = NodeCgroups()
        try:
            self.firewall = LoopbackFirewall()
        except BaseException:
            self.cgroups.close()
            raise
        try:
            self.proxy = DelayProxy().start() if delays else None
        except BaseException:
            self.firewall.close()
            self.cgroups.close()
            raise
        self._added: set[str] = set()

    def add(self, node: RaftNode) -> None:
        """Give ``node`` its cgroup, its mark and (with delays) its proxy route, before it starts."""
        if node.node_id in self._added:
            return
        cgroup = self.cgroups.add(node.node_id)
        self.firewall.register(node.node_id, cgroup, node.raft_address)
        if self.proxy is not None:
            self.proxy.add_node(node.node_id, cgroup, node.raft_address)
        self._added.add(node.node_id)

    def command_prefix(self, node: RaftNode) -> list[str]:
        """What to put in front of ``node``'s command so that it runs in its cgroup."""
        return self.cgroups[node.node_id].command_prefix

    # Faults (see LoopbackFirewall).

    def cut_raft(
        self,
        node: RaftNode,
        peers: Iterable[RaftNode] | None = None,
        direction: Direction = "both",
    ) -> Fault:
        """Drop raft traffic between ``node`` and ``peers`` (default all others), one way or both."""
        names = None if peers is None else [peer.node_id for peer in peers]
        return self.firewall.cut_raft(node.node_id, names, direction)

    def cut_port(self, node: RaftNode, port: int, host: str | None = None) -> Fault:
        """Drop the connections ``node`` opens to TCP ``port`` (PostgreSQL, S3), both ways."""
        return self.firewall.cut_port(node.node_id, port, host)

    def heal(self, node: RaftNode | None = None) -> None:
        """Remove every fault, or those made for ``node``."""
        self.firewall.heal(None if node is None else node.node_id)

    def faults(self) -> list[Fault]:
        return self.firewall.faults()

    # Delays (see DelayProxy).

    def set_delay(self, node: RaftNode, delay: Delay, to: Iterable[RaftNode] | None = None) -> None:
        """Delay what ``node`` sends over raft to ``to`` (default all others); needs delays=True."""
        if self.proxy is None:
            raise RuntimeError("this FaultyNetwork was made without delays=True")
        names = None if to is None else [peer.node_id for peer in to]
        self.proxy.set_delay(node.node_id, delay, names)

    def clear_delays(self) -> None:
        if self.proxy is not None:
            self.proxy.clear_delays()

    def describe(self) -> str:
        """Active faults and delays, one per line (for a failure message)."""
        lines = [str(fault) for fault in self.faults()]
        if self.proxy is not None:
            for source in self._added:
                for target in self._added:
                    delay = self.proxy.delay(source, target) if source != target else 0.0
                    if delay:
                        lines.append(f"delay {source} -> {target}: {delay}")
        return "\n".join(lines) or "no faults"

    def close(self) -> None:
        """Undo everything; the nodes must have stopped (their cgroups are removed)."""
        try:
            try:
                if self.proxy is not None:
                    self.proxy.close()
            finally:
                self.firewall.close()
        finally:
            self.cgroups.close()

    def __enter__(self) -> FaultyNetwork:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
