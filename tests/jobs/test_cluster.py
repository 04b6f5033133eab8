"""
Three real ``twistd -n revenge`` processes electing a leader with raft on
loopback, sharing one PostgreSQL database, running both jobs every 2 s. After
each disturbance: exactly one leader, and the ledger shows exactly one
successful run of each job in every period, without a gap.

The scenarios run in order on one cluster (starting three servers is the
slow part). Waits have deadlines; nothing here asserts how fast anything is
(bench/ measures that).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from revenge.db import create_database_engine, job_runs, read_term, upgrade_schema, write_transaction
from revenge.jobs import ACTIVITY_CLEANUP, AVATAR_SWEEP, LEADER_TERM_COUNTER
from revenge.jobs._ledger import SUCCESS
from revenge.testing import RaftCluster, RaftNode, wait_until
from revenge.users import create_user

INTERVAL_S = 2.0
JOBS = (ACTIVITY_CLEANUP, AVATAR_SWEEP)
DEADLINE_S = 30.0
# Periods watched after each disturbance, once a new leader runs jobs.
PERIODS_AFTER = 2


@dataclass
class Shared:
    url: str
    engine: Engine
    admin_token: str


@pytest.fixture(scope="module")
def shared(postgres_server) -> Iterator[Shared]:
    """A fresh PostgreSQL database for this module, migrated, with an admin."""
    url = postgres_server.create_database()
    engine = create_database_engine(url)
    try:
        upgrade_schema(engine)
        with write_transaction(engine) as connection:
            admin = create_user(
                connection, "admin", is_admin=True, node_id="test", actor=None, via="test"
            )
        yield Shared(url, engine, admin.token)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, shared: Shared) -> Iterator[RaftCluster]:
    raft = RaftCluster(
        Path(tmp_path_factory.mktemp("raft-jobs")),
        env={
            "REVENGE_DATABASE_URL": shared.url,
            "REVENGE_JOBS_CLEANUP_INTERVAL": f"{INTERVAL_S:g}s",
        },
    )
    # One database: the admin exists once, for every node.
    for node in raft.nodes:
        node.token = shared.admin_token
    try:
        raft.start()
        yield raft
    finally:
        raft.stop()


def current_period() -> int:
    return math.floor(time.time() / INTERVAL_S)


def ledger(engine: Engine) -> dict[str, dict[int, tuple[str, int, str | None]]]:
    """Per job: period -> (node_id, term, result)."""
    found: dict[str, dict[int, tuple[str, int, str | None]]] = {job: {} for job in JOBS}
    with engine.connect() as connection:
        for row in connection.execute(select(job_runs)):
            found.setdefault(row.job, {})[int(row.period)] = (row.node_id, int(row.term), row.result)
    return found


def fencing_term(engine: Engine) -> int:
    with engine.connect() as connection:
        return read_term(connection, LEADER_TERM_COUNTER)


def succeeded(engine: Engine, period: int) -> bool:
    runs = ledger(engine)
    return all(runs[job].get(period, ("", 0, None))[2] == SUCCESS for job in JOBS)


def diagnosis(cluster: RaftCluster, engine: Engine, period: int) -> str:
    """The ledger around ``period`` and what the nodes logged about leadership and jobs."""
    runs = ledger(engine)
    lines = [
        f"{job}: " + ", ".join(f"{p}={runs[job].get(p)}" for p in range(period - 4, period + 2))
        for job in JOBS
    ]
    for node in cluster.nodes:
        if node.process is None:
            continue
        for record in node.process.logs():
            message = record.get("message", "")
            namespace = record.get("namespace", "")
            if namespace in ("revenge.jobs", "revenge.server") and (
                record.get("level") != "info" or "lead" in message or "finished" in message
            ):
                lines.append(f"{node.node_id} {record.get('time')} {message}")
    return "\n".join(lines[-200:])


def wait_for_success(engine: Engine, period: int, cluster: RaftCluster | None = None) -> None:
    try:
        wait_until(
            lambda: succeeded(engine, period),
            DEADLINE_S,
            f"a successful run of every job in period {period}",
            interval=0.05,
        )
    except TimeoutError as timeout:
        details = "" if cluster is None else diagnosis(cluster, engine, period)
        raise AssertionError(f"{timeout}\n{details}") from None


def assert_every_period_ran_once(engine: Engine, first: int, last: int) -> None:
    """Periods first..last: one row each (the ledger is unique), each a success."""
    runs = ledger(engine)
    for job in JOBS:
        window = {p: r for p, r in runs[job].items() if first <= p <= last}
        missing = sorted(set(range(first, last + 1)) - set(window))
        failed = {p: r for p, r in window.items() if r[2] != SUCCESS}
        assert not missing and not failed, (job, missing, failed, window)
        # A later period never carries an older fencing term.
        terms = [window[p][1] for p in sorted(window)]
        assert terms == sorted(terms), (job, window)


def single_leader(cluster: RaftCluster, among: list[RaftNode] | None = None) -> RaftNode:
    leader = cluster.wait_for_leader(among, timeout=DEADLINE_S)
    assert cluster.leaders() == [leader]
    return leader


def steady(cluster: RaftCluster, engine: Engine) -> tuple[RaftNode, int]:
    """A warm cluster whose leader has run the current period; returns both."""
    cluster.wait_warm(DEADLINE_S)
    leader = single_leader(cluster)
    period = current_period()
    wait_for_success(engine, period, cluster)
    return leader, period


def at_mid_period() -> None:
    """Wait for the middle of a period: the runs that follow a boundary are long done."""
    wait_until(
        lambda: 0.4 <= (time.time() / INTERVAL_S) % 1 <= 0.6,
        INTERVAL_S * 2,
        "the middle of a period",
        interval=0.01,
    )


def others(cluster: RaftCluster, node: RaftNode) -> list[RaftNode]:
    return [n for n in cluster.nodes if n is not node]


def test_the_leader_alone_runs_every_period(cluster: RaftCluster, shared: Shared) -> None:
    leader, first = steady(cluster, shared.engine)
    wait_for_success(shared.engine, first + PERIODS_AFTER, cluster)
    assert_every_period_ran_once(shared.engine, first, first + PERIODS_AFTER)
    runs = ledger(shared.engine)
    assert {runs[job][first][0] for job in JOBS} == {leader.node_id}


def test_sigkill_of_the_leader(cluster: RaftCluster, shared: Shared) -> None:
    leader, first = steady(cluster, shared.engine)
    term = fencing_term(shared.engine)
    at_mid_period()
    cluster.kill(leader)
    successor = single_leader(cluster, others(cluster, leader))
    wait_until(
        lambda: fencing_term(shared.engine) > term, DEADLINE_S, "a new fencing term"
    )
    last = current_period() + PERIODS_AFTER
    wait_for_success(shared.engine, last, cluster)
    assert_every_period_ran_once(shared.engine, first, last)
    assert ledger(shared.engine)[ACTIVITY_CLEANUP][last][0] == successor.node_id
    # The killed node rejoins as a follower.
    cluster.start_node(leader)
    cluster.wait_warm(DEADLINE_S)
    assert cluster.leaders() == [successor]


def test_sigstop_of_the_leader_then_sigcont(cluster: RaftCluster, shared: Shared) -> None:
    leader, first = steady(cluster, shared.engine)
    at_mid_period()
    cluster.signal(leader, signal.SIGSTOP)
    try:
        successor = single_leader(cluster, others(cluster, leader))
        # Paused well past the election timeout: the successor has run a
        # period before the old leader wakes up.
        wait_for_success(shared.engine, current_period() + 1, cluster)
    finally:
        cluster.signal(leader, signal.SIGCONT)
    last = current_period() + PERIODS_AFTER
    wait_for_success(shared.engine, last, cluster)
    assert_every_period_ran_once(shared.engine, first, last)
    cluster.wait_warm(DEADLINE_S)
    assert cluster.leaders() == [successor]
    # The woken node ran nothing after its pause.
    runs = ledger(shared.engine)
    resumed = [p for p in range(first + 2, last + 1) if runs[ACTIVITY_CLEANUP][p][0] == leader.node_id]
    assert resumed == []


def test_restart_of_all_three(cluster: RaftCluster, shared: Shared) -> None:
    _, first = steady(cluster, shared.engine)
    term = fencing_term(shared.engine)
    stopped_at = time.time()
    for node in cluster.nodes:
        cluster.signal(node, signal.SIGTERM)
    for node in cluster.nodes:
        assert node.process is not None
        assert node.process.wait(DEADLINE_S) == 0
    before = max(p for p, r in ledger(shared.engine)[ACTIVITY_CLEANUP].items() if r[2] == SUCCESS)
    assert_every_period_ran_once(shared.engine, first, before)

    cluster.start()
    single_leader(cluster)
    # The fencing term keeps growing across the restart of every node.
    wait_until(
        lambda: fencing_term(shared.engine) > term, DEADLINE_S, "a fencing term after restart"
    )
    leading_at = time.time()
    resumed = current_period()
    wait_for_success(shared.engine, resumed, cluster)
    last = resumed + PERIODS_AFTER
    wait_for_success(shared.engine, last, cluster)
    assert_every_period_ran_once(shared.engine, resumed, last)
    # Nobody ran while every node was down; those periods, and only those,
    # have no run.
    runs = ledger(shared.engine)
    for job in JOBS:
        skipped = [p for p in range(before + 1, resumed) if p not in runs[job]]
        for period in skipped:
            assert stopped_at - INTERVAL_S <= period * INTERVAL_S <= leading_at, (
                job, period, stopped_at, leading_at
            )
        ran = [p for p in range(before + 1, resumed) if p in runs[job]]
        assert all(runs[job][p][2] == SUCCESS for p in ran), runs[job]
    cluster.wait_warm(DEADLINE_S)
    assert len(cluster.leaders()) == 1
