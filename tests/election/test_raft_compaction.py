"""
Raft log compaction on three real nodes, forced every second
(``raft.compaction_interval: 1s``; the default is 5 minutes, which no test
would wait for). pysyncobj's own compaction pickled its instance state and
failed on every tick from the first compaction on, and the cluster lost its
leader for good. Here: ten rounds, each adding a log entry (a new leader
after a pause of the old one, SIGSTOP/SIGCONT) and compacting it on every
node; one node restarts with its raft directory wiped and catches up from a
leader's snapshot; never two leaders at once, one leader after each round,
and not one error line.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revenge.testing import (
    LeaderWatch,
    RaftCluster,
    RaftNode,
    fetch_cluster_status,
    hold,
    wait_until,
)

DEADLINE_S = 30.0
ROUNDS = 10
PAUSE_S = 0.8


def compactions(node: RaftNode) -> int:
    assert node.process is not None
    return sum(
        1 for r in node.process.logs() if r.get("message", "").startswith("raft log compacted")
    )


def error_lines(node: RaftNode) -> list[dict[str, Any]]:
    if node.process is None:
        return []
    return [r for r in node.process.logs() if r.get("level") in ("error", "critical")]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RaftCluster]:
    running = RaftCluster(tmp_path, env={"REVENGE_RAFT_COMPACTION_INTERVAL": "1s"})
    try:
        running.start()
        running.wait_warm(DEADLINE_S, settle=0.5)
        yield running
    finally:
        running.stop()


def test_leadership_holds_through_many_compactions(cluster: RaftCluster) -> None:
    def fetch(node_id: str) -> dict[str, Any] | None:
        node = next(n for n in cluster.nodes if n.node_id == node_id)
        if not node.running or node.process is None:
            return None
        return fetch_cluster_status(node.process.port, node.token, timeout=0.5)

    done: dict[str, int] = {}
    wiped: RaftNode | None = None
    with LeaderWatch([n.node_id for n in cluster.nodes], fetch) as watch:
        for round_ in range(ROUNDS):
            leader = cluster.wait_for_leader(timeout=DEADLINE_S)
            before = {n.node_id: compactions(n) for n in cluster.nodes if n.running}
            cluster.signal(leader, signal.SIGSTOP)
            try:
                cluster.wait_for_leader([n for n in cluster.nodes if n is not leader],
                                        timeout=DEADLINE_S)
                hold(PAUSE_S)
            finally:
                cluster.signal(leader, signal.SIGCONT)
            cluster.wait_warm(DEADLINE_S)
            # The new leader's entry is compacted on every node.
            wait_until(
                lambda: all(compactions(n) > before[n.node_id] for n in cluster.nodes),
                DEADLINE_S,
                f"a compaction on every node in round {round_}",
            )
            if round_ == ROUNDS // 2:
                # A follower loses its raft directory: it must catch up from
                # the leader's snapshot (sent as JSON, loaded as JSON).
                current = cluster.wait_for_leader(timeout=DEADLINE_S)
                follower = wiped = next(n for n in cluster.nodes if n is not current)
                assert follower.process is not None
                assert follower.process.stop() == 0
                shutil.rmtree(follower.workdir / "data" / "raft")
                cluster.start_node(follower)
                cluster.wait_warm(DEADLINE_S)
        done = {n.node_id: compactions(n) for n in cluster.nodes}
        overlaps = watch.overlaps()
    assert not overlaps, [str(o) for o in overlaps]
    assert len(cluster.leaders()) == 1
    # Every node compacted once a round (the wiped one since its restart,
    # whose process logged the rounds after it).
    assert wiped is not None
    for node_id, count in done.items():
        wanted = ROUNDS - (ROUNDS // 2 + 1) if node_id == wiped.node_id else ROUNDS
        assert count >= wanted, done
    for node in cluster.nodes:
        assert error_lines(node) == [], (node.node_id, error_lines(node))
        snapshot = json.loads((node.workdir / "data" / "raft" / "snapshot.json").read_text())
        assert snapshot["version"] == 1
        assert sorted(snapshot["members"]) == sorted(n.raft_address for n in cluster.nodes)
