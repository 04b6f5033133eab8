"""
Two real ``twistd -n revenge`` nodes with ``election.backend: postgres`` on
one fresh PostgreSQL database, read through ``GET /api/v1/cluster``.
Deadlines are generous; how fast things happen is measured in
bench/postgres_election_benchmarks.py, not asserted here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from revenge.db import create_database_engine, election_terms, write_transaction
from revenge.jobs import ACTIVITY_CLEANUP, AVATAR_SWEEP, LEADER_TERM_COUNTER, Fenced, pass_fence
from revenge.testing import (
    ClusterNode,
    PostgresServer,
    SharedDatabaseCluster,
    twistd_executable,
    wait_until,
)

DEADLINE_S = 30.0
# Shorter than the defaults (5 s, 1 s) to keep the suite quick.
SETTINGS = {
    "REVENGE_ELECTION_BACKEND": "postgres",
    "REVENGE_POSTGRES_ELECTION_LEASE": "2s",
    "REVENGE_POSTGRES_ELECTION_RENEW_INTERVAL": "500ms",
}
LEASE_AND_RENEW_S = 2.5


@pytest.fixture
def cluster(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[SharedDatabaseCluster]:
    running = SharedDatabaseCluster(tmp_path, postgres_server.create_database(), env=SETTINGS)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def other(cluster: SharedDatabaseCluster, node: ClusterNode) -> ClusterNode:
    return next(n for n in cluster.nodes if n is not node)


def read_fencing_counter(database_url: str) -> tuple[int, str | None]:
    """The jobs' fencing counter: (term, the node that took it)."""
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(election_terms.c.term, election_terms.c.holder).where(
                    election_terms.c.name == LEADER_TERM_COUNTER
                )
            ).one_or_none()
    finally:
        engine.dispose()
    return (0, None) if row is None else (int(row.term), row.holder)


def fenced_jobs(database_url: str, term: int) -> list[str]:
    """The jobs whose fence refuses a write of ``term`` (each tried, then rolled back)."""
    refused = []
    engine = create_database_engine(database_url)
    try:
        for job in (ACTIVITY_CLEANUP, AVATAR_SWEEP):
            try:
                with write_transaction(engine) as connection:
                    pass_fence(connection, job, term)
                    raise RuntimeError("not fenced: roll back")
            except Fenced:
                refused.append(job)
            except RuntimeError:
                pass
    finally:
        engine.dispose()
    return refused


def test_one_leader_then_a_fast_hand_over_on_sigterm(cluster: SharedDatabaseCluster) -> None:
    leader = cluster.wait_for_leader(cluster.nodes)
    term = cluster.term(leader)
    standby = other(cluster, leader)
    assert cluster.term(standby) == term
    cluster.signal(leader, signal.SIGTERM)
    assert cluster.wait_for_leader([standby]) is standby
    assert cluster.term(standby) == term + 1
    assert leader.process is not None
    assert leader.process.wait(DEADLINE_S) == 0
    assert leader.process.find_log(
        lambda r: f"released the lease of term {term} in" in r.get("message", "")
    )
    # It comes back as a standby of the new leader.
    cluster.start_node(leader)
    assert cluster.wait_for_leader(cluster.nodes) is standby


def test_takeover_after_sigkill(cluster: SharedDatabaseCluster) -> None:
    leader = cluster.wait_for_leader(cluster.nodes)
    term = cluster.term(leader)
    survivor = other(cluster, leader)
    cluster.signal(leader, signal.SIGKILL)
    assert leader.process is not None
    leader.process.wait(DEADLINE_S)
    # Nothing was released: the survivor waits for the lease to expire.
    assert cluster.wait_for_leader([survivor]) is survivor
    assert cluster.term(survivor) == term + 1


def test_a_paused_leader_is_fenced_and_does_not_lead_when_it_resumes(
    cluster: SharedDatabaseCluster,
) -> None:
    stale = cluster.wait_for_leader(cluster.nodes)
    election_term = cluster.term(stale)
    successor = other(cluster, stale)
    # The jobs' fencing term it took as it became leader.
    stale_fencing_term, holder = wait_until(
        lambda: (counter := read_fencing_counter(cluster.database_url))[1] == stale.node_id
        and counter,
        DEADLINE_S,
        "the leader to take a fencing term",
    )
    assert holder == stale.node_id
    cluster.signal(stale, signal.SIGSTOP)
    try:
        assert cluster.wait_for_leader([successor]) is successor
        assert cluster.term(successor) == election_term + 1
        new_fencing_term, _ = wait_until(
            lambda: (counter := read_fencing_counter(cluster.database_url))[1]
            == successor.node_id
            and counter,
            DEADLINE_S,
            "the successor to take a fencing term",
        )
        assert new_fencing_term > stale_fencing_term
        # Whatever the stale leader still tries to write under its old term
        # is refused by every job's fence.
        assert fenced_jobs(cluster.database_url, stale_fencing_term) == [
            ACTIVITY_CLEANUP,
            AVATAR_SWEEP,
        ]
    finally:
        cluster.signal(stale, signal.SIGCONT)
    resumed_at = time.monotonic()
    # Watch both for longer than a lease and a renewal: the resumed node never
    # claims leadership, and comes to name the successor and its term.
    seen: list[tuple[str, bool, str | None, int]] = []
    while time.monotonic() < resumed_at + 2 * LEASE_AND_RENEW_S:
        for node in cluster.nodes:
            status = cluster.status(node)
            if status is not None:
                seen.append((node.node_id, status["is_leader"], status["leader"], status["term"]))
    from_stale = [entry for entry in seen if entry[0] == stale.node_id]
    assert from_stale, "the resumed node never answered"
    assert not any(is_leader for _, is_leader, _, _ in from_stale)
    assert all(term <= election_term + 1 for _, _, _, term in seen)
    assert from_stale[-1][2:] == (successor.node_id, election_term + 1)
    assert [entry[0] for entry in seen if entry[1]] == [successor.node_id] * sum(
        1 for entry in seen if entry[1]
    )
    assert cluster.agreed_leader(cluster.nodes) is successor


def test_an_unknown_backend_lists_the_installed_ones(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env.update({"REVENGE_DATA_DIR": str(tmp_path / "data"), "REVENGE_ELECTION_BACKEND": "etcd"})
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
    assert lines[0].startswith("revenge: config key 'election.backend'")
    assert "no provider named 'etcd' in entry point group 'revenge.election'" in lines[0]
    installed = lines[0].rpartition("(installed: ")[2].rstrip(")").split(", ")
    assert {"postgres", "raft", "standalone"} <= set(installed)
