"""
Benchmarks of the ``raft`` election provider, registered into ``bench/run.py``
with :func:`register`. Each runs a cluster of three real ``twistd -n revenge``
processes on loopback (``revenge.testing.RaftCluster``: SQLite and a raft
journal per node) and reads leadership through ``GET /api/v1/cluster``.

- ``failover``: SIGKILL the leader; seconds until a survivor reports itself
  leader. The killed node is restarted and the cluster left to idle before
  the next round (idle links were where pysyncobj's slow tail came from).
- ``handoff``: the same after SIGTERM (the leader hands over as it stops).
- ``failover_pause``: the same after SIGSTOP, the path of a leader that
  vanishes without closing its connections (host lost, partition): the
  survivors only notice by the election timeout. SIGCONT afterwards.

Times run from just before the signal to the arrival of the first answer in
which a survivor says ``"is_leader": true``; survivors are asked in turn,
every 10 ms.
"""

from __future__ import annotations

import json
import math
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from revenge.testing import RaftCluster, RaftNode, wait_until

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]

POLL_INTERVAL_S = 0.01
# Longer than pysyncobj's connection timeout (2 s here): an idle link between
# followers would have gone stale by the time the leader dies.
IDLE_BEFORE_EACH_RUN_S = 2.5
DEADLINE_S = 60.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def until_a_survivor_leads(
    cluster: RaftCluster, survivors: list[RaftNode], started: float
) -> float:
    deadline = started + DEADLINE_S
    while time.monotonic() < deadline:
        for node in survivors:
            status = cluster.status(node, timeout=0.5)
            if status is not None and status.get("is_leader"):
                return time.monotonic() - started
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"no survivor led within {DEADLINE_S}s")


def _measure(
    quick: bool,
    disrupt: Callable[[RaftCluster, RaftNode], None],
    restore: Callable[[RaftCluster, RaftNode], None],
) -> Figures:
    runs = 5 if quick else 30
    seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="revenge-bench-raft-") as tmp:
        cluster = RaftCluster(Path(tmp))
        try:
            cluster.start()
            for _ in range(runs):
                cluster.wait_warm(DEADLINE_S, settle=IDLE_BEFORE_EACH_RUN_S)
                leader = cluster.wait_for_leader(timeout=DEADLINE_S)
                survivors = [node for node in cluster.nodes if node is not leader]
                started = time.monotonic()
                disrupt(cluster, leader)
                seconds.append(until_a_survivor_leads(cluster, survivors, started))
                restore(cluster, leader)
        finally:
            cluster.stop()
    return {
        "p50_s": round(statistics.median(seconds), 3),
        "p99_s": round(percentile(seconds, 0.99), 3),
        "max_s": round(max(seconds), 3),
        "min_s": round(min(seconds), 3),
        "runs": runs,
        "over_1_5_s": sum(1 for s in seconds if s > 1.5),
        # Every run's time, for the plot next to RESULTS.md (bench/_plot.py).
        "samples_s": [round(s, 4) for s in seconds],
    }


def _kill(cluster: RaftCluster, leader: RaftNode) -> None:
    cluster.signal(leader, signal.SIGKILL)


def _restart_after_kill(cluster: RaftCluster, leader: RaftNode) -> None:
    assert leader.process is not None
    leader.process.wait(DEADLINE_S)
    cluster.start_node(leader)


def _terminate(cluster: RaftCluster, leader: RaftNode) -> None:
    cluster.signal(leader, signal.SIGTERM)


def _restart_after_terminate(cluster: RaftCluster, leader: RaftNode) -> None:
    assert leader.process is not None
    code = leader.process.wait(DEADLINE_S)
    if code != 0:
        raise RuntimeError(f"{leader.node_id} exited with {code} after SIGTERM")
    cluster.start_node(leader)


def _pause(cluster: RaftCluster, leader: RaftNode) -> None:
    cluster.signal(leader, signal.SIGSTOP)


def _resume(cluster: RaftCluster, leader: RaftNode) -> None:
    cluster.signal(leader, signal.SIGCONT)
    # Back as a follower before the next round begins.
    wait_until(
        lambda: (s := cluster.status(leader)) is not None and not s["is_leader"],
        DEADLINE_S,
        "the paused node to answer as a follower",
    )


def failover(quick: bool) -> Figures:
    """SIGKILL of the leader: seconds until a survivor reports itself leader."""
    return _measure(quick, _kill, _restart_after_kill)


def handoff(quick: bool) -> Figures:
    """SIGTERM of the leader: seconds until a survivor reports itself leader."""
    return _measure(quick, _terminate, _restart_after_terminate)


def failover_pause(quick: bool) -> Figures:
    """SIGSTOP of the leader (no connection closes): seconds until a survivor leads."""
    return _measure(quick, _pause, _resume)


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add these benchmarks to ``bench/run.py``'s registry."""
    benchmark(
        "failover",
        target="p99_s <= 1.5",
        met=lambda figures: bool(figures["p99_s"] <= 1.5),
    )(failover)
    benchmark(
        "handoff",
        target="p99_s <= 0.5",
        met=lambda figures: bool(figures["p99_s"] <= 0.5),
    )(handoff)
    benchmark(
        "failover_pause",
        target="p99_s <= 1.5",
        met=lambda figures: bool(figures["p99_s"] <= 1.5),
    )(failover_pause)


if __name__ == "__main__":
    # Quick look without bench/run.py: python bench/election_benchmarks.py [--quick] [NAME ...]
    quick_mode = "--quick" in sys.argv
    chosen = {"failover": failover, "handoff": handoff, "failover_pause": failover_pause}
    names = [arg for arg in sys.argv[1:] if not arg.startswith("--")] or list(chosen)
    for name in names:
        sys.stdout.write(json.dumps({"name": name, **chosen[name](quick_mode)}) + "\n")
