"""
Real faults on one three-node cluster, one after the other: packets dropped
both ways and each way alone, a follower cut off, flapping links, the leader
cut from PostgreSQL while the others keep it (also in the middle of a long
run, so that its final write fails too), the leader frozen (SIGSTOP) right
after a period boundary, later in a period, and in the middle of a long run. After each: never two leaders at once (at every 100 ms poll), a leader
again, and the jobs' ledger and counts as harness.py describes. Nothing here
asserts how fast anything is (bench/ does).
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from revenge.testing import PostgresServer, hold, wait_until

from .harness import (
    DEADLINE_S,
    INTERVAL_S,
    POSTGRES_PORT,
    Partitioned,
    metric,
    partitioned_cluster,
    skip_without_network_faults,
    wait_for_offset,
)

pytestmark = pytest.mark.partition


@pytest.fixture(scope="module")
def net(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Partitioned]:
    skip_without_network_faults()
    with partitioned_cluster(
        Path(tmp_path_factory.mktemp("partition")),
        postgres_server,
        # Compaction runs all along too: it must never disturb anything.
        env={"REVENGE_RAFT_COMPACTION_INTERVAL": "2s"},
    ) as made:
        made.begin_jobs_checks()
        yield made
        made.assert_never_two_leaders()


def after_fault(net: Partitioned) -> None:
    """Healed: a warm cluster, never two leaders, every period run once."""
    net.network.heal()
    net.warm()
    net.assert_never_two_leaders()
    # The ledger so far, for the record (pytest -rP shows it).
    print("ledger since the cluster came up:", net.check_jobs())


def test_the_leader_cut_off_both_ways_is_replaced(net: Partitioned) -> None:
    leader = net.warm()
    net.network.cut_raft(leader)
    successor = net.leader(net.others(leader))
    # The cut-off node no longer says it leads.
    wait_until(lambda: not (net.status(leader) or {}).get("is_leader"), DEADLINE_S,
               "the cut-off leader to step down")
    term = net.raft_term(successor)
    hold(INTERVAL_S)
    after_fault(net)
    # The heal did not depose the leader that kept its quorum.
    assert net.leader() is successor
    assert net.raft_term(successor) == term


@pytest.mark.parametrize("direction", ["out", "in"])
def test_the_leader_cut_off_one_way_is_replaced(net: Partitioned, direction: str) -> None:
    leader = net.warm()
    net.network.cut_raft(leader, direction=direction)
    successor = net.leader(net.others(leader))
    term = net.raft_term(successor)
    wait_for_offset(INTERVAL_S / 2)
    after_fault(net)
    assert net.leader() is successor
    assert net.raft_term(successor) == term


def test_a_follower_cut_off_changes_nothing(net: Partitioned) -> None:
    leader = net.warm()
    term = net.raft_term(leader)
    follower = net.others(leader)[0]
    net.network.cut_raft(follower)
    wait_until(lambda: not (net.status(follower) or {}).get("has_quorum"), DEADLINE_S,
               "the follower to notice it is cut off")
    hold(INTERVAL_S)
    assert net.leader() is leader
    after_fault(net)
    # Neither the cut nor the heal cost the leader its leadership or its term:
    # the cut-off follower never raised its term (pre-vote).
    assert net.leader() is leader
    assert net.raft_term(leader) == term
    assert net.raft_term(follower) == term


def test_flapping_links(net: Partitioned) -> None:
    shuffle = random.Random(12)
    for _ in range(4):
        leader = net.leader()
        net.network.cut_raft(leader, direction=shuffle.choice(["both", "out", "in"]))
        hold(shuffle.uniform(1.0, 3.0))
        net.network.heal()
        hold(shuffle.uniform(1.0, 3.0))
    after_fault(net)


def test_the_leader_cut_from_the_database_hands_over(net: Partitioned) -> None:
    leader = net.warm()
    wait_for_offset(0.5)
    net.network.cut_port(leader, POSTGRES_PORT)
    # It cannot do the work: within step_down_after (2 s) plus a hand-over,
    # a node that reaches the database leads, and the cut one says why not.
    successor = net.leader(net.others(leader))
    # Its /api/v1/cluster needs the database to check the admin token; the
    # gauge and the log say it.
    wait_until(lambda: metric(leader, "revenge_election_eligible", {}) == 0.0, DEADLINE_S,
               "the cut-off node to say it is not eligible")
    assert leader.process is not None
    line = leader.process.wait_for_log(
        lambda r: "cannot do the leader's work" in r.get("message", ""), DEADLINE_S
    )
    assert "database" in line["message"]
    hold(2 * INTERVAL_S)
    assert net.leader() is successor
    after_fault(net)
    wait_until(lambda: (net.status(leader) or {}).get("eligible") is True, DEADLINE_S,
               "the node to be eligible again")
    assert metric(leader, "revenge_election_eligible", {}) == 1.0


def freeze_the_leader(net: Partitioned, offset: float, seconds: float = 3.0) -> None:
    """SIGSTOP the leader ``offset`` after the next period boundary; SIGCONT once replaced."""
    leader = net.warm()
    wait_for_offset(offset)
    net.cluster.signal(leader, signal.SIGSTOP)
    try:
        net.leader(net.others(leader))
        hold(seconds)  # frozen well past the election timeout
    finally:
        net.cluster.signal(leader, signal.SIGCONT)
    after_fault(net)


@pytest.mark.parametrize("offset", [0.005, 0.03, 2.5])
def test_the_leader_frozen_after_a_boundary(net: Partitioned, offset: float) -> None:
    freeze_the_leader(net, offset)


def test_the_leader_frozen_in_the_middle_of_a_long_run(net: Partitioned) -> None:
    # activity_cleanup of the next period deletes these in many batches.
    net.seed_expired_activity(300_000)
    freeze_the_leader(net, 0.15)


def test_a_leader_cut_from_the_database_mid_run_cannot_write_its_end(net: Partitioned) -> None:
    leader = net.warm()
    net.seed_expired_activity(300_000)
    wait_for_offset(0.15)
    # In the middle of activity_cleanup: its next batch fails (the
    # connection gives up on the silent server after about 8 s), and so does
    # its final write (the end of the run) a few seconds later; meanwhile it
    # has handed leadership over.
    net.network.cut_port(leader, POSTGRES_PORT)
    net.leader(net.others(leader))
    hold(20.0)
    net.network.heal()
    assert leader.process is not None
    leader.process.wait_for_log(
        lambda r: "the end of the run could not be recorded" in r.get("message", "")
        or "its end could not be recorded" in r.get("message", ""),
        DEADLINE_S,
        "the cut-off leader to say its end was not recorded",
    )
    after_fault(net)
