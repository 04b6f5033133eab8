"""
Three real ``twistd -n revenge`` nodes electing with raft on one PostgreSQL
database, each in its own cgroup so that a test can drop its packets for real
(nftables on loopback, revenge.testing.FaultyNetwork), watched all along by a
LeaderWatch (revenge.testing): never two leaders at once.

The jobs run every INTERVAL_S; after each fault the ledger must show, for
every period since the cluster came up, exactly one successful run that
started inside its period, no run left unfinished, and the success counts of
all nodes must add up to the ledger's success rows.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from revenge.db import (
    create_database_engine,
    job_runs,
    upgrade_schema,
    write_transaction,
)
from revenge.jobs import ACTIVITY_CLEANUP, AVATAR_SWEEP
from revenge.jobs._ledger import SUCCESS
from revenge.testing import (
    FaultyNetwork,
    LeaderWatch,
    PostgresServer,
    RaftCluster,
    RaftNode,
    fetch_cluster_status,
    network_faults_unavailable,
    wait_until,
)
from revenge.users import create_user

INTERVAL_S = 5.0
JOBS = (ACTIVITY_CLEANUP, AVATAR_SWEEP)
DEADLINE_S = 30.0
POSTGRES_PORT = 5432


def skip_without_network_faults() -> None:
    reason = network_faults_unavailable()
    if reason is not None:
        pytest.skip(reason)


def current_period(interval: float = INTERVAL_S) -> int:
    return math.floor(time.time() / interval)


def wait_for_offset(offset: float, interval: float = INTERVAL_S) -> float:
    """Wait until ``offset`` seconds after the next period boundary; returns the boundary."""
    boundary = (current_period(interval) + 1) * interval
    if boundary + offset - time.time() < 0.3:
        boundary += interval  # too close to act on: the one after
    wait_until(lambda: time.time() >= boundary + offset, interval * 3, "a period boundary",
               interval=0.001)
    return boundary


@dataclass
class Partitioned:
    """The cluster, its network, its database and its watch."""

    cluster: RaftCluster
    network: FaultyNetwork
    engine: Engine
    token: str
    watch: LeaderWatch
    interval: float = INTERVAL_S
    # The first period the ledger checks cover (set once the cluster runs jobs).
    first_period: int = 0
    notes: list[str] = field(default_factory=list)

    # The election.

    def status(self, node: RaftNode, timeout: float = 1.0) -> dict[str, Any] | None:
        return self.cluster.status(node, timeout)

    def leader(self, among: list[RaftNode] | None = None) -> RaftNode:
        return self.cluster.wait_for_leader(among, timeout=DEADLINE_S)

    def others(self, node: RaftNode) -> list[RaftNode]:
        return [n for n in self.cluster.nodes if n is not node]

    def raft_term(self, node: RaftNode) -> int:
        status = self.status(node)
        assert status is not None, f"{node.node_id} does not answer"
        term: int = status["raft"]["term"]
        return term

    def warm(self) -> RaftNode:
        """Every node connected, one leader that all follow; returns it."""
        self.cluster.wait_warm(DEADLINE_S, settle=0.5)
        return self.leader()

    def assert_never_two_leaders(self) -> None:
        overlaps = self.watch.overlaps()
        assert not overlaps, [str(o) for o in overlaps]

    # The jobs.

    def ledger(self) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(job_runs).order_by(job_runs.c.period)))

    def wait_for_success(self, period: int) -> None:
        def done() -> bool:
            rows = [r for r in self.ledger() if r.period == period and r.result == SUCCESS]
            return {r.job for r in rows} == set(JOBS)

        try:
            wait_until(done, DEADLINE_S, f"a successful run of each job in period {period}",
                       interval=0.05)
        except TimeoutError as timeout:
            raise AssertionError(f"{timeout}\n{self.diagnosis()}") from None

    def begin_jobs_checks(self) -> None:
        """From the current period on, every period must run once."""
        period = current_period(self.interval)
        self.wait_for_success(period)
        self.first_period = period

    def check_jobs(self) -> dict[str, Any]:
        """
        The ledger since ``first_period`` (every ended period: one success,
        started inside it; nothing unfinished) and the success counts; returns
        the figures.
        """
        last = current_period(self.interval) - 1
        # The last period's run and its count may still be on their way.
        self.wait_for_success(last)
        rows = self.ledger()
        problems = []
        for job in JOBS:
            by_period = {r.period: r for r in rows if r.job == job}
            for period in range(self.first_period, last + 1):
                row = by_period.get(period)
                if row is None:
                    problems.append(f"{job} {period}: no run")
                elif row.result != SUCCESS:
                    problems.append(f"{job} {period}: {row.result} ({row.reason})")
                else:
                    started = row.started_at.timestamp()
                    if not period * self.interval <= started < (period + 1) * self.interval:
                        problems.append(f"{job} {period}: started at {started}, outside it")
            for row in by_period.values():
                if row.finished_at is None and row.period <= last:
                    problems.append(f"{job} {row.period}: left unfinished by {row.node_id}")
        assert not problems, "\n".join(problems) + "\n" + self.diagnosis()

        def counts_match() -> bool:
            ledger = self.ledger()
            return all(
                self.success_count(job)
                == sum(1 for r in ledger if r.job == job and r.result == SUCCESS)
                for job in JOBS
            )

        try:
            wait_until(counts_match, DEADLINE_S, "the success counts to match the ledger",
                       interval=0.2)
        except TimeoutError:
            ledger = self.ledger()
            raise AssertionError(
                {
                    job: (self.success_count(job),
                          sum(1 for r in ledger if r.job == job and r.result == SUCCESS))
                    for job in JOBS
                }
            ) from None
        return {
            "periods": last - self.first_period + 1,
            "abandoned": sum(1 for r in rows if r.result == "abandoned"),
            "successes": len({(r.job, r.period) for r in rows if r.result == SUCCESS}),
        }

    def success_count(self, job: str) -> float:
        """revenge_job_runs_total{job, result="success"} summed over the running nodes."""
        total = 0.0
        for node in self.cluster.nodes:
            total += metric(node, "revenge_job_runs_total", {"job": job, "result": SUCCESS})
        return total

    def diagnosis(self) -> str:
        lines = [f"faults: {self.network.describe()}"]
        rows = self.ledger()
        recent = [r for r in rows if r.period >= current_period(self.interval) - 8]
        lines += [
            f"{r.job} {r.period} {r.node_id} t{r.term} {r.result} {r.reason or ''}" for r in recent
        ]
        for node in self.cluster.nodes:
            if node.process is None:
                continue
            for record in node.process.logs()[-400:]:
                namespace = record.get("namespace", "")
                message = record.get("message", "")
                if namespace.startswith(("revenge.jobs", "revenge.election")) and (
                    record.get("level") != "info" or "lead" in message or "->" in message
                ):
                    lines.append(f"{node.node_id} {record.get('time')} {message[:200]}")
        return "\n".join(lines[-150:])

    def seed_expired_activity(self, rows: int) -> None:
        """Rows a year old: the next activity_cleanup takes a while (many batches)."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                text(
                    "INSERT INTO activity (created_at, action, node_id) "
                    "SELECT now() - interval '400 days' - (n || ' seconds')::interval, "
                    "'test.old', 'test' FROM generate_series(1, :rows) AS n"
                ),
                {"rows": rows},
            )


def metric(node: RaftNode, name: str, labels: Mapping[str, str]) -> float:
    """One sample of ``node``'s /metrics (0 when absent or the node does not answer)."""
    if node.process is None:
        return 0.0
    return node.process.metric(name, labels) or 0.0


@contextlib.contextmanager
def partitioned_cluster(
    root: Path,
    postgres: PostgresServer,
    *,
    delays: bool = False,
    env: Mapping[str, str] | None = None,
    interval: float = INTERVAL_S,
) -> Iterator[Partitioned]:
    """Start it all; stop it all, whatever happens."""
    url = postgres.create_database()
    engine = create_database_engine(url)
    upgrade_schema(engine)
    with write_transaction(engine) as connection:
        admin = create_user(connection, "admin", is_admin=True, node_id="test", actor=None,
                            via="test")
    try:
        with FaultyNetwork(delays=delays) as network:
            cluster = RaftCluster(
                root,
                env={
                    "REVENGE_DATABASE_URL": url,
                    "REVENGE_JOBS_CLEANUP_INTERVAL": f"{interval:g}s",
                    **(env or {}),
                },
                network=network,
            )
            for node in cluster.nodes:
                node.token = admin.token

            def fetch(node_id: str) -> dict[str, Any] | None:
                node = next(n for n in cluster.nodes if n.node_id == node_id)
                if not node.running or node.process is None:
                    return None
                try:
                    port = node.process.port
                except (RuntimeError, TimeoutError):
                    return None
                return fetch_cluster_status(port, admin.token, timeout=0.5)

            watch = LeaderWatch([n.node_id for n in cluster.nodes], fetch)
            try:
                cluster.start()
                watch.start()
                made = Partitioned(cluster, network, engine, admin.token, watch, interval)
                made.warm()
                yield made
            finally:
                watch.stop()
                network.heal()
                cluster.stop()
    finally:
        engine.dispose()


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
