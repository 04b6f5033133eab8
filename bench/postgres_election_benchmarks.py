"""
Benchmarks of the ``postgres`` election plugin (plugins/revenge-election-postgres),
registered into ``bench/run.py`` with :func:`register`. Two real
``twistd -n revenge`` nodes share one fresh PostgreSQL database
(``revenge.testing.SharedDatabaseCluster``) with the plugin's default settings
(lease 5 s, renewed every second); leadership is read through
``GET /api/v1/cluster``.

- ``postgres_handoff``: SIGTERM the leader; seconds until the other node
  reports itself leader. The leader releases its lease and NOTIFYs; the
  standby, LISTENing, claims at once instead of at its next poll.
- ``postgres_failover``: SIGKILL the leader; the same. Nothing is released,
  so the standby waits for the lease to expire: the promise is
  lease + renew_interval (6 s).

Times run from just before the signal to the first answer in which the
other node says ``"is_leader": true``, asked every 10 ms. The stopped node is
started again, as a standby, before the next round. Skipped when PostgreSQL
(``REVENGE_TEST_POSTGRES_DSN``) or the plugin is missing.
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

from revenge.providers import ELECTION_GROUP, installed_names
from revenge.testing import ClusterNode, PostgresServer, SharedDatabaseCluster

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]

POLL_INTERVAL_S = 0.01
DEADLINE_S = 60.0
# The plugin's defaults, stated so that a change of them shows here.
LEASE_S = 5.0
RENEW_INTERVAL_S = 1.0
SETTINGS = {
    "REVENGE_ELECTION_BACKEND": "postgres",
    "REVENGE_POSTGRES_ELECTION_LEASE": f"{LEASE_S:g}s",
    "REVENGE_POSTGRES_ELECTION_RENEW_INTERVAL": f"{RENEW_INTERVAL_S:g}s",
}

_skipped: type[Exception] = RuntimeError


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _server() -> PostgresServer:
    if "postgres" not in installed_names(ELECTION_GROUP):
        raise _skipped("the postgres election plugin is not installed (pip install -e plugins/*)")
    server = PostgresServer.from_environment()
    try:
        server.check()
    except Exception as error:
        raise _skipped(f"PostgreSQL is not reachable ({type(error).__name__})") from None
    return server


def _until_it_leads(cluster: SharedDatabaseCluster, node: ClusterNode, started: float) -> float:
    deadline = started + DEADLINE_S
    while time.monotonic() < deadline:
        status = cluster.status(node, timeout=0.5)
        if status is not None and status.get("is_leader"):
            return time.monotonic() - started
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"{node.node_id} did not lead within {DEADLINE_S}s")


def _measure(rounds: int, signum: int) -> Figures:
    server = _server()
    seconds: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="revenge-bench-pg-election-") as tmp:
            cluster = SharedDatabaseCluster(Path(tmp), server.create_database(), env=SETTINGS)
            try:
                cluster.start()
                for _ in range(rounds):
                    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
                    standby = next(node for node in cluster.nodes if node is not leader)
                    started = time.monotonic()
                    cluster.signal(leader, signum)
                    seconds.append(_until_it_leads(cluster, standby, started))
                    assert leader.process is not None
                    leader.process.wait(DEADLINE_S)
                    cluster.start_node(leader)
            finally:
                cluster.stop()
    finally:
        server.drop_created()
    return {
        "p50_s": round(statistics.median(seconds), 3),
        "p99_s": round(percentile(seconds, 0.99), 3),
        "max_s": round(max(seconds), 3),
        "min_s": round(min(seconds), 3),
        "runs": rounds,
    }


def postgres_handoff(quick: bool) -> Figures:
    """SIGTERM of the leader: seconds until the standby reports itself leader."""
    return _measure(3 if quick else 10, signal.SIGTERM)


def postgres_failover(quick: bool) -> Figures:
    """SIGKILL of the leader: seconds until the standby reports itself leader."""
    return _measure(2 if quick else 5, signal.SIGKILL)


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add these benchmarks to ``bench/run.py``'s registry."""
    global _skipped
    _skipped = skipped
    benchmark(
        "postgres_handoff",
        target="p99_s <= 1.0",
        met=lambda figures: bool(figures["p99_s"] <= 1.0),
    )(postgres_handoff)
    limit = LEASE_S + RENEW_INTERVAL_S
    benchmark(
        "postgres_failover",
        target=f"p99_s <= {limit:g} (lease + renew_interval)",
        met=lambda figures: bool(figures["p99_s"] <= limit),
    )(postgres_failover)


if __name__ == "__main__":
    # Quick look without bench/run.py: python bench/postgres_election_benchmarks.py [--quick] [NAME ...]
    quick_mode = "--quick" in sys.argv
    chosen = {"postgres_handoff": postgres_handoff, "postgres_failover": postgres_failover}
    names = [arg for arg in sys.argv[1:] if not arg.startswith("--")] or list(chosen)
    for name in names:
        sys.stdout.write(json.dumps({"name": name, **chosen[name](quick_mode)}) + "\n")
