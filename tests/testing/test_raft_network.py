"""
A :class:`RaftCluster` on a :class:`FaultyNetwork`: real ``twistd`` nodes in
their own cgroups, partitioned by real packet drops. Cutting the leader from
both peers makes them elect another leader; healing brings the cluster back
to one leader that every node follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from revenge.testing import FaultyNetwork, RaftCluster

DEADLINE_S = 30.0


@pytest.fixture
def cluster(netfaults: None, tmp_path: Path) -> Iterator[RaftCluster]:
    with FaultyNetwork() as network:
        running = RaftCluster(tmp_path, network=network)
        try:
            running.start()
            yield running
        finally:
            running.stop()


def test_a_leader_cut_from_its_peers_is_replaced_and_the_cluster_heals(cluster: RaftCluster) -> None:
    network = cluster.network
    assert network is not None
    for node in cluster.nodes:
        assert node.process is not None and node.process.process is not None
        assert network.cgroups[node.node_id].pids() == [node.process.process.pid]
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    cluster.wait_warm(DEADLINE_S)
    before = cluster.status(leader)
    assert before is not None

    network.cut_raft(leader)
    # Without the cut the others would keep following the leader and this would time out.
    others = [node for node in cluster.nodes if node is not leader]
    successor = cluster.wait_for_leader(among=others, timeout=DEADLINE_S)
    after = cluster.status(successor)
    assert after is not None and after["term"] > before["term"], network.describe()

    network.heal()
    cluster.wait_warm(DEADLINE_S)
    assert cluster.leaders() != [] and network.faults() == []
