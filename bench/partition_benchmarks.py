"""
Benchmarks of the cluster under real faults, registered into ``bench/run.py``
with :func:`register`. Packets are really dropped (nftables on loopback, each
node in its own cgroup: revenge.testing.FaultyNetwork); they skip with the
reason where that cannot be done (not root, no nft, no cgroup v2).

- ``failover_partition``: the leader's raft traffic dropped both ways (its
  connections stay open, as in a real partition; SIGKILL instead closes them
  at once, which is why ``failover`` is so much faster): seconds until a
  survivor reports itself leader. Healed and left to idle between runs.
- ``takeover_after_freeze``: three nodes on one PostgreSQL, jobs every 5 s;
  the leader is frozen (SIGSTOP) 0.1 s after a period boundary, in the middle
  of a long activity_cleanup run (300,000 expired rows), so it holds the fence
  row's lock when it stops. Measured on the successor's own log: from
  ``raft: candidate -> leader`` to ``leading with fencing term``: how long
  taking office waited for the frozen session (ended by PostgreSQL after 1 s
  idle inside its transaction).
- ``soak`` / ``soak_quiet``: a 3-node cluster on PostgreSQL with jobs every
  10 s for 30 minutes (``--quick``: 6, still past the 5-minute log
  compaction); ``soak`` injects a fault every 30 s (leader cut both ways,
  each way alone, frozen, cut from the database; 4 s each), ``soak_quiet``
  none. Reported: seconds without exactly one leader (polled every 0.1 s),
  proven moments of two leaders, error lines, the ledger (every period run
  once), RSS and open files per node from the end of warm-up to the end.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from revenge.db import (
    create_database_engine,
    job_runs,
    upgrade_schema,
    write_transaction,
)
from revenge.testing import (
    FaultyNetwork,
    LeaderWatch,
    PostgresServer,
    RaftCluster,
    RaftNode,
    fetch_cluster_status,
    hold,
    network_faults_unavailable,
    wait_until,
)
from revenge.users import create_user

# bench/ is on sys.path when run as a script (bench/run.py imports it so).
from election_benchmarks import (
    DEADLINE_S,
    IDLE_BEFORE_EACH_RUN_S,
    percentile,
    until_a_survivor_leads,
)

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]

POSTGRES_PORT = 5432


class _Skipped(Exception):
    pass


_skipped: type[Exception] = _Skipped


def _distribution(seconds: list[float]) -> Figures:
    return {
        "p50_s": round(statistics.median(seconds), 3),
        "p99_s": round(percentile(seconds, 0.99), 3),
        "max_s": round(max(seconds), 3),
        "min_s": round(min(seconds), 3),
        "runs": len(seconds),
    }


def _require_network_faults() -> None:
    reason = network_faults_unavailable()
    if reason is not None:
        raise _skipped(reason)


# -- failover after a real partition -------------------------------------------


def failover_partition(quick: bool) -> Figures:
    """The leader cut off both ways by dropped packets: seconds until a survivor leads."""
    _require_network_faults()
    runs = 8 if quick else 24
    seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="revenge-bench-partition-") as tmp:
        with FaultyNetwork() as network:
            cluster = RaftCluster(Path(tmp), network=network)
            try:
                cluster.start()
                for _ in range(runs):
                    cluster.wait_warm(DEADLINE_S, settle=IDLE_BEFORE_EACH_RUN_S)
                    leader = cluster.wait_for_leader(timeout=DEADLINE_S)
                    survivors = [node for node in cluster.nodes if node is not leader]
                    started = time.monotonic()
                    network.cut_raft(leader)
                    seconds.append(until_a_survivor_leads(cluster, survivors, started))
                    network.heal()
            finally:
                network.heal()
                cluster.stop()
    return {
        **_distribution(seconds),
        "over_1_s": sum(1 for s in seconds if s > 1.0),
        "samples_s": [round(s, 4) for s in seconds],
    }


# -- clusters on PostgreSQL -----------------------------------------------------


@contextmanager
def _database_cluster(
    root: Path, interval: float, network: FaultyNetwork | None
) -> Iterator[tuple[RaftCluster, Engine, str]]:
    import psycopg

    server = PostgresServer.from_environment()
    try:
        server.check()
    except psycopg.Error as error:
        raise _skipped(f"PostgreSQL is not reachable ({type(error).__name__})") from None
    url = server.create_database()
    engine = create_database_engine(url)
    try:
        upgrade_schema(engine)
        with write_transaction(engine) as connection:
            admin = create_user(connection, "admin", is_admin=True, node_id="bench", actor=None,
                                via="bench")
        cluster = RaftCluster(
            root,
            env={"REVENGE_DATABASE_URL": url, "REVENGE_JOBS_CLEANUP_INTERVAL": f"{interval:g}s"},
            network=network,
        )
        for node in cluster.nodes:
            node.token = admin.token
        try:
            cluster.start()
            cluster.wait_warm(DEADLINE_S, settle=1.0)
            yield cluster, engine, admin.token
        finally:
            cluster.stop()
    finally:
        engine.dispose()
        server.drop_created()


def _log_moment(node: RaftNode, predicate: Callable[[dict[str, Any]], bool],
                after: str) -> float | None:
    """The wall-clock time of ``node``'s first log line after ``after`` (ISO) matching."""
    assert node.process is not None
    for record in node.process.logs():
        if record.get("time", "") > after and predicate(record):
            moment = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
            return moment.timestamp()
    return None


def _seed_expired_activity(engine: Engine, rows: int) -> None:
    with write_transaction(engine) as connection:
        connection.execute(
            text(
                "INSERT INTO activity (created_at, action, node_id) "
                "SELECT now() - interval '400 days' - (n || ' seconds')::interval, "
                "'bench.old', 'bench' FROM generate_series(1, :rows) AS n"
            ),
            {"rows": rows},
        )


def takeover_after_freeze(quick: bool) -> Figures:
    """Seconds from the successor's election to its fencing term, the leader frozen mid-run."""
    interval = 5.0
    runs = 5 if quick else 20
    waits: list[float] = []
    elections: list[float] = []
    with tempfile.TemporaryDirectory(prefix="revenge-bench-freeze-") as tmp:
        with _database_cluster(Path(tmp), interval, None) as (cluster, engine, _):
            for _ in range(runs):
                cluster.wait_warm(DEADLINE_S, settle=1.0)
                leader = cluster.wait_for_leader(timeout=DEADLINE_S)
                _seed_expired_activity(engine, 300_000)
                boundary = (math.floor(time.time() / interval) + 1) * interval
                if boundary - time.time() < 1.0:
                    boundary += interval
                wait_until(lambda: time.time() >= boundary + 0.1, 2 * interval, "the boundary",
                           interval=0.001)
                cut_at = datetime.datetime.now(datetime.timezone.utc).isoformat()[:23]
                frozen_at = time.time()
                cluster.signal(leader, signal.SIGSTOP)
                try:
                    survivors = [n for n in cluster.nodes if n is not leader]
                    successor = cluster.wait_for_leader(survivors, timeout=DEADLINE_S)

                    def took_office() -> float | None:
                        return _log_moment(
                            successor,
                            lambda r: r.get("message", "").startswith("leading with fencing term"),
                            cut_at,
                        )

                    wait_until(took_office, DEADLINE_S, "the successor's fencing term")
                    elected = _log_moment(
                        successor, lambda r: r.get("message") == "raft: candidate -> leader",
                        cut_at,
                    )
                    office = took_office()
                    assert elected is not None and office is not None
                    waits.append(max(0.0, office - elected))
                    elections.append(elected - frozen_at)
                    hold(1.0)
                finally:
                    cluster.signal(leader, signal.SIGCONT)
    return {
        **_distribution(waits),
        "election_after_freeze_p50_s": round(statistics.median(elections), 3),
        # Runs in which the frozen leader held the fence (taking office waited).
        "lock_waits": sum(1 for s in waits if s > 0.1),
        "over_1_s": sum(1 for s in waits if s > 1.0),
        "samples_s": [round(s, 4) for s in waits],
    }


# -- soak -------------------------------------------------------------------------


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _resources(cluster: RaftCluster) -> dict[str, tuple[float, int]]:
    found = {}
    for node in cluster.nodes:
        assert node.process is not None and node.process.process is not None
        pid = node.process.process.pid
        found[node.node_id] = (_rss_mib(pid), _open_files(pid))
    return found


def _ledger_gaps(engine: Engine, interval: float, first: int, last: int) -> int:
    with engine.connect() as connection:
        rows = list(connection.execute(select(job_runs)))
    gaps = 0
    for job in {r.job for r in rows}:
        succeeded = {r.period for r in rows if r.job == job and r.result == "success"}
        gaps += sum(1 for p in range(first, last + 1) if p not in succeeded)
    return gaps


def _soak(quick: bool, faults: bool) -> Figures:
    if faults:
        _require_network_faults()
    duration = 6 * 60.0 if quick else 30 * 60.0
    interval = 10.0
    warmup = 30.0
    fault_every = 30.0
    with tempfile.TemporaryDirectory(prefix="revenge-bench-soak-") as tmp:
        network = FaultyNetwork() if faults else None
        try:
            with _database_cluster(Path(tmp), interval, network) as (cluster, engine, token):

                def fetch(node_id: str) -> dict[str, Any] | None:
                    node = next(n for n in cluster.nodes if n.node_id == node_id)
                    if node.process is None:
                        return None
                    return fetch_cluster_status(node.process.port, token, timeout=0.5)

                with LeaderWatch([n.node_id for n in cluster.nodes], fetch) as watch:
                    hold(warmup)
                    started = time.monotonic()
                    first_period = math.floor(time.time() / interval) + 1
                    before = _resources(cluster)
                    shapes: list[Literal["both", "out", "in", "freeze", "database"]] = [
                        "both", "out", "in", "freeze", "database"
                    ]
                    injected = 0
                    next_fault = started + fault_every
                    while time.monotonic() < started + duration:
                        if faults and network is not None and time.monotonic() >= next_fault:
                            leader = cluster.wait_for_leader(timeout=DEADLINE_S)
                            shape = shapes[injected % len(shapes)]
                            if shape == "freeze":
                                cluster.signal(leader, signal.SIGSTOP)
                                hold(4.0)
                                cluster.signal(leader, signal.SIGCONT)
                            elif shape == "database":
                                network.cut_port(leader, POSTGRES_PORT)
                                hold(4.0)
                                network.heal()
                            else:
                                assert shape in ("both", "out", "in")
                                network.cut_raft(leader, direction=shape)
                                hold(4.0)
                                network.heal()
                            injected += 1
                            next_fault += fault_every
                        hold(1.0)
                    after = _resources(cluster)
                    last_period = math.floor(time.time() / interval) - 2
                    leaderless = watch.seconds_without_one_leader(since=started)
                    overlaps = len(watch.overlaps())
                    changes = watch.leader_changes(since=started)
                errors = sum(
                    1
                    for node in cluster.nodes
                    if node.process is not None
                    for record in node.process.logs()
                    if record.get("level") in ("error", "critical")
                )
                gaps = _ledger_gaps(engine, interval, first_period, last_period)
        finally:
            if network is not None:
                network.close()
    growth = {
        node: round(100 * (after[node][0] - before[node][0]) / before[node][0], 1)
        for node in before
    }
    return {
        "minutes": round(duration / 60, 1),
        "faults": injected,
        "leaderless_s": round(leaderless, 1),
        "two_leaders": overlaps,
        "leader_changes": changes,
        "error_lines": errors,
        "missed_periods": gaps,
        "max_rss_growth_pct": max(growth.values()),
        "rss_mib_end": {node: round(after[node][0], 1) for node in after},
        "fd_growth": max(after[node][1] - before[node][1] for node in after),
    }


def soak(quick: bool) -> Figures:
    """Periodic real faults for 30 minutes (6 with --quick): what broke, what grew."""
    return _soak(quick, faults=True)


def soak_quiet(quick: bool) -> Figures:
    """No faults for 30 minutes (6 with --quick): there must be one leader all along."""
    return _soak(quick, faults=False)


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add these benchmarks to ``bench/run.py``'s registry."""
    global _skipped
    _skipped = skipped
    benchmark(
        "failover_partition",
        target="p99_s <= 1.0",
        met=lambda figures: bool(figures["p99_s"] <= 1.0),
    )(failover_partition)
    benchmark(
        "takeover_after_freeze",
        target="p99_s <= 1.0",
        met=lambda figures: bool(figures["p99_s"] <= 1.0),
    )(takeover_after_freeze)
    benchmark(
        "soak",
        target="two_leaders == 0 and missed_periods == 0 and error_lines == 0",
        met=lambda f: bool(f["two_leaders"] == 0 and f["missed_periods"] == 0
                           and f["error_lines"] == 0),
    )(soak)
    benchmark(
        "soak_quiet",
        target="leaderless_s == 0 and max_rss_growth_pct <= 10",
        met=lambda f: bool(f["leaderless_s"] == 0 and f["max_rss_growth_pct"] <= 10
                           and f["two_leaders"] == 0 and f["missed_periods"] == 0),
    )(soak_quiet)


if __name__ == "__main__":
    quick_mode = "--quick" in sys.argv
    chosen = {
        "failover_partition": failover_partition,
        "takeover_after_freeze": takeover_after_freeze,
        "soak": soak,
        "soak_quiet": soak_quiet,
    }
    names = [arg for arg in sys.argv[1:] if not arg.startswith("--")] or list(chosen)
    for name in names:
        sys.stdout.write(json.dumps({"name": name, **chosen[name](quick_mode)}) + "\n")
