"""
Three real ``twistd -n revenge`` processes electing a leader with the ``raft``
backend on loopback, read through ``GET /api/v1/cluster``. Each node has its
own SQLite database and raft journal. Deadlines are generous; how fast things
happen is measured in bench/election_benchmarks.py, not asserted here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from revenge.testing import RaftCluster, RaftNode, twistd_executable, wait_until

DEADLINE_S = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RaftCluster]:
    running = RaftCluster(tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def others(cluster: RaftCluster, node: RaftNode) -> list[RaftNode]:
    return [n for n in cluster.nodes if n is not node]


def term_of(cluster: RaftCluster, node: RaftNode) -> int:
    status = cluster.status(node)
    assert status is not None
    term: int = status["term"]
    return term


def test_sigkill_of_the_leader_elects_exactly_one_survivor(cluster: RaftCluster) -> None:
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    cluster.wait_warm(DEADLINE_S)
    term = term_of(cluster, leader)
    cluster.kill(leader)
    survivors = others(cluster, leader)
    successor = cluster.wait_for_leader(survivors, timeout=DEADLINE_S)
    assert successor in survivors
    assert term_of(cluster, successor) > term
    # Both survivors name it, and only it leads.
    wait_until(
        lambda: all(
            (s := cluster.status(n)) is not None and s["leader"] == successor.node_id
            for n in survivors
        ),
        DEADLINE_S,
        "both survivors to follow the successor",
    )
    assert cluster.leaders(survivors) == [successor]
    # The killed node comes back as a follower of the successor.
    cluster.start_node(leader)
    cluster.wait_warm(DEADLINE_S)
    assert cluster.leaders() == [successor]


@dataclass(frozen=True)
class Sample:
    node: str
    sent: float
    received: float
    is_leader: bool
    term: int


def sample(cluster: RaftCluster, nodes: list[RaftNode], until: float) -> list[Sample]:
    """Ask ``nodes`` one after the other, round after round, until ``until``."""
    samples = []
    while time.monotonic() < until:
        for node in nodes:
            sent = time.monotonic()
            status = cluster.status(node, timeout=0.5)
            received = time.monotonic()
            if status is not None:
                samples.append(
                    Sample(node.node_id, sent, received, status["is_leader"], status["term"])
                )
    return samples


def conflicting_claims(samples: list[Sample]) -> list[tuple[Sample, Sample]]:
    """
    Pairs of leadership claims that cannot both be right. Samples are taken
    one after another, so a handover between two samples is no conflict; a
    conflict is provable only when
      - two different nodes claim the same term (Raft allows one leader per
        term), or
      - a node claims a term lower than a claim already answered before the
        request was sent: that node called itself leader while a newer
        leader existed.
    """
    conflicts = []
    claims: list[Sample] = []
    for current in samples:
        if not current.is_leader:
            continue
        for earlier in claims:
            same_term = earlier.term == current.term and earlier.node != current.node
            stale = earlier.term > current.term and earlier.received < current.sent
            if same_term or stale:
                conflicts.append((earlier, current))
        claims.append(current)
    return conflicts


def test_a_paused_leader_does_not_lead_when_it_wakes(cluster: RaftCluster) -> None:
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    cluster.wait_warm(DEADLINE_S)
    term = term_of(cluster, leader)
    survivors = others(cluster, leader)
    cluster.signal(leader, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # The others elect a successor: the pause outlasts the election timeout.
        successor = cluster.wait_for_leader(survivors, timeout=DEADLINE_S)
        assert term_of(cluster, successor) > term
        # Keep it paused a while longer (past pysyncobj's connection timeout
        # too), watching the survivors.
        during = sample(cluster, survivors, until=stopped_at + 3.0)
    finally:
        cluster.signal(leader, signal.SIGCONT)
    woke_at = time.monotonic()
    after = sample(cluster, cluster.nodes, until=woke_at + 3.0)

    assert conflicting_claims(during + after) == []
    woken = [s for s in after if s.node == leader.node_id and s.sent >= woke_at]
    assert woken, "the woken node never answered"
    # Its log misses the successor's term, so no node would vote for it, and
    # its old lease is long gone: it must never have claimed leadership.
    assert not any(s.is_leader for s in woken)
    # It rejoins as a follower.
    cluster.wait_warm(DEADLINE_S)
    assert leader not in cluster.leaders()


def test_sigterm_of_the_leader_hands_leadership_over(cluster: RaftCluster) -> None:
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    cluster.wait_warm(DEADLINE_S)
    term = term_of(cluster, leader)
    cluster.signal(leader, signal.SIGTERM)
    survivors = others(cluster, leader)
    successor = cluster.wait_for_leader(survivors, timeout=DEADLINE_S)
    assert term_of(cluster, successor) > term
    assert leader.process is not None
    assert leader.process.wait(DEADLINE_S) == 0
    assert leader.process.find_log(
        lambda r: "handed leadership over to " + successor.node_id in r.get("message", "")
    )


def test_a_full_restart_elects_one_leader_in_a_later_term(cluster: RaftCluster) -> None:
    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
    term = term_of(cluster, leader)
    for node in cluster.nodes:
        cluster.signal(node, signal.SIGTERM)
    for node in cluster.nodes:
        assert node.process is not None
        assert node.process.wait(DEADLINE_S) == 0
    cluster.start()
    again = cluster.wait_for_leader(timeout=DEADLINE_S)
    # Each journal kept its term: the new term is higher, never back to 0.
    assert term_of(cluster, again) > term
    cluster.wait_warm(DEADLINE_S)


@pytest.mark.parametrize("secret", [None, "", "a", " ", "password" * 4])
def test_a_node_without_a_strong_secret_refuses_to_start(
    tmp_path: Path, secret: str | None
) -> None:
    raft = RaftCluster(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env.update(raft.node_env(raft.nodes[0]))
    del env["REVENGE_RAFT_SECRET"]
    if secret is not None:
        env["REVENGE_RAFT_SECRET"] = secret
    result = subprocess.run(
        [twistd_executable(), "--nodaemon", "--pidfile=", "revenge"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("revenge: ")
    assert "raft.secret" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    if secret and secret.strip():
        assert "revenge raft secret" in lines[0]  # how to make one
