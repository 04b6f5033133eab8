"""
Slow links (a userspace delay proxy in every raft link: the kernel here has
no netem): a leader whose sends take 200-500 ms cannot hold its lease, and
must give up Raft leadership too, so that a node with healthy links is
elected and the jobs go on. Never two leaders; every period runs once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from revenge.testing import PostgresServer, hold, wait_until

from .harness import (
    DEADLINE_S,
    INTERVAL_S,
    Partitioned,
    partitioned_cluster,
    skip_without_network_faults,
)

pytestmark = pytest.mark.partition


@pytest.fixture(scope="module")
def net(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Partitioned]:
    skip_without_network_faults()
    with partitioned_cluster(
        Path(tmp_path_factory.mktemp("slow")), postgres_server, delays=True
    ) as made:
        made.begin_jobs_checks()
        yield made
        made.assert_never_two_leaders()


@pytest.mark.parametrize("delay", [(0.35, 0.5), (0.2, 0.5)])
def test_a_leader_with_slow_links_gives_way(net: Partitioned, delay: tuple[float, float]) -> None:
    leader = net.warm()
    net.network.set_delay(leader, delay)
    successor = net.leader(net.others(leader))
    # And it stays with the healthy node while the slow one stays slow.
    hold(INTERVAL_S)
    assert net.leader() is successor
    assert not (net.status(leader) or {}).get("is_leader")
    net.network.clear_delays()
    net.warm()
    net.assert_never_two_leaders()
    print("ledger since the cluster came up:", net.check_jobs())


def test_slow_links_to_one_follower_change_nothing(net: Partitioned) -> None:
    leader = net.warm()
    term = net.raft_term(leader)
    follower = net.others(leader)[0]
    net.network.set_delay(follower, (0.35, 0.5))
    hold(INTERVAL_S)
    # The leader keeps its quorum through the other follower.
    wait_until(lambda: net.leader() is leader, DEADLINE_S, "the same leader")
    net.network.clear_delays()
    net.warm()
    assert net.leader() is leader
    assert net.raft_term(leader) == term
    net.assert_never_two_leaders()
    net.check_jobs()
