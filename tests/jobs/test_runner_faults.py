"""
The scheduler when the database is slow, cut off or lies about a commit, with
a fake clock against a real database (SQLite and PostgreSQL): no period runs
after its end, no run is left unfinished, and a run counts as what the ledger
says it was (docs/jobs.md, "Counts you can trust", "Abandoned runs").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest_twisted
from sqlalchemy import insert
from sqlalchemy.engine import Connection
from twisted.internet.task import Clock

from revenge.db import Database, DatabaseUnavailable, job_runs, utc_now
from revenge.jobs import take_office
from revenge.jobs._ledger import ABANDONED, ERROR, SUCCESS

from .helpers import (
    FIRST_PERIOD,
    INTERVAL,
    PROBE,
    Cluster,
    ProbeJob,
    activity_rows,
    boundary,
    ledger,
)

P = FIRST_PERIOD


class UnreliableDatabase(Database):
    """
    Writes as usual, except the one armed with :meth:`on_write`: its number
    (1 = the next write) and what goes wrong with it.
    """

    clock: Clock
    _armed: dict[int, str] = {}
    _writes = 0

    def on_write(self, number: int, trouble: str) -> None:
        """``trouble``: ``late`` (the period ends while it runs), ``late_after``
        (it ends right after the commit), ``lost`` (fails, nothing applied),
        ``commit_then_fail`` (applied, but reported as failed)."""
        self._armed = {self._writes + number: trouble}

    async def write(self, work: Callable[[Connection], Any]) -> Any:
        self._writes += 1
        trouble = self._armed.pop(self._writes, None)
        if trouble == "lost":
            raise DatabaseUnavailable("test: the connection was lost")
        if trouble == "late":

            def slow(connection: Connection) -> Any:
                self.clock.rightNow += INTERVAL  # the database took a whole period
                return work(connection)

            return await super().write(slow)
        result = await super().write(work)
        if trouble == "late_after":
            self.clock.rightNow += INTERVAL
        if trouble == "commit_then_fail":
            raise DatabaseUnavailable("test: the connection was lost after COMMIT")
        return result


def unreliable(cluster: Cluster, node_id: str, job: ProbeJob) -> tuple[Any, UnreliableDatabase]:
    node = cluster.add(node_id, [job], database_class=UnreliableDatabase)
    database = node.database
    assert isinstance(database, UnreliableDatabase)
    database.clock = cluster.clock
    return node, database


@pytest_twisted.ensureDeferred
async def test_a_claim_that_comes_after_its_period_writes_nothing(cluster: Cluster) -> None:
    job = ProbeJob(steps=0)
    node, database = unreliable(cluster, "a", job)
    node.scheduler.startService()
    node.election.win()
    await cluster.settle()
    database.on_write(1, "late")  # P + 1's claim: the database answers in P + 2
    await cluster.advance_into(P + 1)
    await cluster.advance_into(P + 3)
    rows = await ledger(node.database)
    # P + 1 was never run late; P + 2 and P + 3 ran on time.
    assert [(r.period, r.result) for r in rows] == [(P, SUCCESS), (P + 2, SUCCESS),
                                                     (P + 3, SUCCESS)]
    assert job.runs == 3


@pytest_twisted.ensureDeferred
async def test_a_claim_committed_after_its_period_ended_is_abandoned_unrun(
    cluster: Cluster, captured_log: Any
) -> None:
    job = ProbeJob(steps=0)
    node, database = unreliable(cluster, "a", job)
    node.scheduler.startService()
    node.election.win()
    await cluster.settle()
    database.on_write(1, "late_after")
    await cluster.advance_into(P + 1)
    await cluster.settle()
    await cluster.advance_into(P + 3)
    rows = await ledger(node.database)
    assert [(r.period, r.result) for r in rows] == [
        (P, SUCCESS), (P + 1, ABANDONED), (P + 2, SUCCESS), (P + 3, SUCCESS)
    ]
    assert "after its period had ended" in (rows[1].reason or "")
    assert rows[1].finished_at is not None
    assert job.runs == 3  # P, P + 2, P + 3: P + 1's body never ran
    assert captured_log.matching(namespace="revenge.jobs", level="warn")


@pytest_twisted.ensureDeferred
async def test_taking_office_closes_the_stale_runs_of_past_periods(cluster: Cluster) -> None:
    now = utc_now()

    def dead_leader(connection: Connection) -> int:
        # A leader killed in P - 2 and another run of it in P, both open.
        term = take_office(connection, "dead", [PROBE])
        for period in (P - 2, P):
            connection.execute(
                insert(job_runs).values(job=PROBE, period=period, node_id="dead", term=term,
                                        started_at=now)
            )
        return term

    b = cluster.add("b", [ProbeJob()])
    await b.database.write(dead_leader)
    b.scheduler.startService()
    b.election.win()
    await cluster.settle()
    rows = await ledger(b.database)
    assert [(r.period, r.node_id, r.result) for r in rows] == [
        (P - 2, "dead", ABANDONED),
        (P, "b", SUCCESS),
    ]
    assert "never finished it" in (rows[0].reason or "")
    assert rows[0].to_json()["reason"] == rows[0].reason


@pytest_twisted.ensureDeferred
async def test_an_end_that_could_not_be_written_counts_error_and_the_period_runs_again(
    cluster: Cluster,
) -> None:
    job = ProbeJob(steps=0)
    node, database = unreliable(cluster, "a", job)
    node.scheduler.startService()
    node.election.win()
    await cluster.settle()
    database.on_write(2, "lost")  # P + 1: its claim works, its end record does not
    await cluster.advance_into(P + 1)
    await cluster.advance_to(boundary(P + 1) + 20)
    rows = await ledger(node.database)
    assert [(r.period, r.result) for r in rows] == [(P, SUCCESS), (P + 1, SUCCESS)]
    assert job.runs == 3  # P, the lost end of P + 1, P + 1 again
    # Success counts only what the ledger holds; the lost end is an error.
    assert node.count(SUCCESS) == 2
    assert node.count(ERROR) == 1


@pytest_twisted.ensureDeferred
async def test_an_end_committed_but_reported_lost_counts_as_the_ledger_says(
    cluster: Cluster,
) -> None:
    job = ProbeJob(steps=0)
    node, database = unreliable(cluster, "a", job)
    node.scheduler.startService()
    node.election.win()
    await cluster.settle()
    database.on_write(2, "commit_then_fail")
    await cluster.advance_into(P + 1)
    await cluster.advance_to(boundary(P + 1) + 20)
    rows = await ledger(node.database)
    assert [(r.period, r.result) for r in rows] == [(P, SUCCESS), (P + 1, SUCCESS)]
    assert job.runs == 2  # not run again: the ledger says it ended
    assert node.count(SUCCESS) == 2
    assert node.count(ERROR) == 0


@pytest_twisted.ensureDeferred
async def test_periods_without_any_leader_are_covered_by_the_next_run(
    cluster: Cluster, captured_log: Any
) -> None:
    a = cluster.add("a", [ProbeJob()])
    b = cluster.add("b", [ProbeJob()])
    a.scheduler.startService()
    b.scheduler.startService()
    a.election.win()
    await cluster.settle()
    a.election.lose(None)
    await cluster.advance_into(P + 3)  # nobody leads in P + 1 and P + 2
    b.election.win()
    await cluster.settle()
    rows = await ledger(b.database)
    assert [(r.period, r.node_id) for r in rows] == [(P, "a"), (P + 3, "b")]
    (summary,) = [
        row for row in await activity_rows(b.database, f"job.{PROBE}") if row.node_id == "b"
    ]
    assert summary.details["covers_periods"] == [P + 1, P + 2]
    assert any(
        f"periods {P + 1}-{P + 2}" in line["message"]
        for line in captured_log.matching(namespace="revenge.jobs")
    )
