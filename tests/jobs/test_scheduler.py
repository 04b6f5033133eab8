"""
The tick algorithm of docs/design.md ("Periodic jobs"), row by row, with a fake
clock and a fake election against a real database (SQLite and PostgreSQL).
Several schedulers sharing the database stand for the nodes of a cluster.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from sqlalchemy import insert
from twisted.internet.defer import Deferred

from revenge.db import job_runs, read_term, utc_now
from revenge.jobs import (
    LEADER_TERM_COUNTER,
    JobScheduler,
    take_office,
)
from revenge.jobs._ledger import ERROR, SUCCESS
from revenge.jobs._outcomes import (
    FENCED,
    SKIPPED_ALREADY_RAN,
    SKIPPED_NOT_LEADER,
    JobBusy,
    NoFencingTerm,
    NotLeader,
    UnknownJob,
)
from revenge.jobs._periods import MAX_TICK_S, period_of, tick_interval, tick_lag
from revenge.metrics import Metrics
from revenge.storage import StorageError
from revenge.testing import eventually

from .helpers import (
    DEADLINE_S,
    FIRST_PERIOD,
    INTERVAL,
    PROBE,
    Cluster,
    FlakyDatabase,
    ProbeJob,
    activity_rows,
    boundary,
    ledger,
)

P = FIRST_PERIOD


def successes(rows: list) -> dict[int, list]:
    found: dict[int, list] = {}
    for row in rows:
        if row.result == SUCCESS:
            found.setdefault(row.period, []).append(row)
    return found


# -- tick design -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "tick"),
    [(3600.0, 5.0), (60.0, 5.0), (30.0, 5.0), (21.0, 4.2), (7.0, 1.75), (2.0, 0.5)],
)
def test_the_tick_divides_the_interval_at_least_four_times_and_is_at_most_max_tick(
    interval, tick
):
    assert tick_interval(interval) == pytest.approx(tick)
    assert tick_interval(interval) <= MAX_TICK_S
    assert interval / tick_interval(interval) >= 4
    # A whole number of ticks per period: every boundary is a tick.
    ticks = interval / tick_interval(interval)
    assert ticks == pytest.approx(round(ticks))


def test_the_period_is_the_floor_of_unix_seconds_over_the_interval():
    assert period_of(119.999, 60) == 1
    assert period_of(120.0, 60) == 2
    assert period_of(boundary(P) + tick_lag(5.0), INTERVAL) == P


def test_job_names_must_be_unique(database_url):
    with pytest.raises(ValueError, match="unique"):
        JobScheduler(
            [ProbeJob(), ProbeJob()],
            database=None,  # type: ignore[arg-type]
            election=None,  # type: ignore[arg-type]
            metrics=Metrics(),
            node_id="a",
            clock=None,  # type: ignore[arg-type]
        )


# -- 1. not leader ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_follower_counts_skipped_not_leader_once_per_period_and_claims_nothing(
    cluster: Cluster,
):
    follower = cluster.add("a", [ProbeJob()])
    follower.scheduler.startService()
    await cluster.advance_to(boundary(P) + 30)
    assert follower.count(SKIPPED_NOT_LEADER) == 1
    await cluster.advance_into(P + 1)
    await cluster.advance_to(boundary(P + 1) + 30)
    assert follower.count(SKIPPED_NOT_LEADER) == 2
    assert follower.count(SUCCESS) == 0
    assert await ledger(follower.database) == []
    assert follower.scheduler.fencing_term is None


@pytest_twisted.ensureDeferred
async def test_a_leader_without_a_fencing_term_runs_nothing_until_it_has_one(cluster: Cluster):
    leader = cluster.add("a", [ProbeJob()], database_class=FlakyDatabase)
    assert isinstance(leader.database, FlakyDatabase)
    leader.database.failing = True
    leader.scheduler.startService()
    leader.election.win()
    await cluster.advance_to(boundary(P) + 20)
    assert leader.scheduler.fencing_term is None
    assert leader.count(SKIPPED_NOT_LEADER) == 1
    assert leader.count(SUCCESS) == 0
    assert await ledger(leader.database) == []
    # The database answers again: the next retry takes a term and the
    # current period runs at once, without waiting for a period boundary.
    leader.database.failing = False
    await cluster.advance_to(boundary(P) + 26)
    assert leader.scheduler.fencing_term is not None
    rows = await ledger(leader.database)
    assert [(r.period, r.result) for r in rows] == [(P, SUCCESS)]


# -- 2. one success row per period ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_leader_runs_each_period_once(cluster: Cluster):
    job = ProbeJob()
    leader = cluster.add("a", [job])
    leader.scheduler.startService()
    leader.election.win()
    await cluster.settle()
    term = leader.scheduler.fencing_term
    assert term is not None
    for period in (P, P + 1, P + 2):
        # Every tick of the period, the last one included.
        await cluster.advance_to(boundary(period + 1) - 0.5)
        await cluster.advance_into(period + 1)
    rows = await ledger(leader.database)
    assert [r.period for r in rows] == [P, P + 1, P + 2, P + 3]
    for row in rows:
        assert (row.node_id, row.term, row.result) == ("a", term, SUCCESS)
        assert row.finished_at is not None and row.finished_at >= row.started_at
    assert job.runs == 4
    assert leader.count(SUCCESS) == 4
    assert leader.count(SKIPPED_ALREADY_RAN) == 0
    assert leader.count(SKIPPED_NOT_LEADER) == 0
    last_success = leader.metrics.registry.get_sample_value(
        "revenge_job_last_success_timestamp_seconds", {"job": PROBE}
    )
    assert last_success == pytest.approx(boundary(P + 3) + tick_lag(5.0))
    duration_count = leader.metrics.registry.get_sample_value(
        "revenge_job_duration_seconds_count", {"job": PROBE}
    )
    assert duration_count == 4


@pytest_twisted.ensureDeferred
async def test_each_period_is_attempted_at_its_first_tick(cluster: Cluster):
    job = ProbeJob()
    leader = cluster.add("a", [job])
    leader.scheduler.startService()
    leader.election.win()
    await cluster.settle()
    await cluster.advance_to(boundary(P + 1) - 0.01)
    assert job.runs == 1
    await cluster.advance_to(boundary(P + 1) + tick_lag(5.0))
    assert job.runs == 2


# -- 2'. another node in the same period ----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_second_node_in_the_same_period_skips_already_ran(cluster: Cluster):
    a = cluster.add("a", [ProbeJob()])
    b = cluster.add("b", [ProbeJob()])
    a.scheduler.startService()
    b.scheduler.startService()
    a.election.win()
    await cluster.settle()
    # Leadership moves within the period that a has already run.
    a.election.lose("b")
    b.election.win()
    await cluster.settle()
    assert b.count(SKIPPED_ALREADY_RAN) == 1
    assert b.count(SUCCESS) == 0
    await cluster.advance_to(boundary(P) + 55)
    assert b.count(SKIPPED_ALREADY_RAN) == 1  # once per period, not per tick
    await cluster.advance_into(P + 1)
    rows = await ledger(a.database)
    assert [(r.period, r.node_id, r.result) for r in rows] == [
        (P, "a", SUCCESS),
        (P + 1, "b", SUCCESS),
    ]
    assert rows[1].term > rows[0].term
    # a counts the rest of P and then P + 1, once each.
    assert a.count(SKIPPED_NOT_LEADER) == 2


# -- 3. a stale leader is fenced -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_paused_leader_that_resumes_is_fenced_and_changes_nothing(cluster: Cluster):
    stale_job = ProbeJob(steps=2)
    stale_job.gate = Deferred()
    a = cluster.add("a", [stale_job])
    b = cluster.add("b", [ProbeJob(steps=2)])
    a.scheduler.startService()
    b.scheduler.startService()
    a.election.win()
    # a runs period P and stops between its two writes: paused.
    await eventually(lambda: stale_job.waiting, "a's run to pause", timeout=DEADLINE_S)
    old_term = a.scheduler.fencing_term
    # Meanwhile b is elected. a's election knows it no longer leads, but the
    # news has not reached a's scheduler: only the fence can stop it.
    a.election.leading = False
    b.election.win()
    await b.settle()
    new_term = b.scheduler.fencing_term
    assert new_term is not None and old_term is not None and new_term > old_term
    # b took over a's unfinished row and finished it.
    rows = await ledger(b.database)
    assert [(r.period, r.node_id, r.term, r.result) for r in rows] == [
        (P, "b", new_term, SUCCESS)
    ]
    before = await activity_rows(b.database, "probe.step")
    # a wakes up and carries on: its write is refused.
    stale_job.gate.callback(None)
    await cluster.settle()
    assert a.count(FENCED) == 1
    assert a.count(SUCCESS) == 0
    assert await activity_rows(b.database, "probe.step") == before
    assert all(row.details["term"] == new_term for row in before[1:])
    # a's end of run did not touch the ledger either.
    assert [(r.node_id, r.result) for r in await ledger(b.database)] == [("b", SUCCESS)]
    # And a, not leading, did not take a new term to fight back.
    assert a.scheduler.fencing_term == old_term


@pytest_twisted.ensureDeferred
async def test_a_leader_fenced_at_its_claim_changes_nothing(cluster: Cluster):
    a = cluster.add("a", [ProbeJob()])
    b = cluster.add("b", [ProbeJob()])
    a.scheduler.startService()
    b.scheduler.startService()
    a.election.win()
    await cluster.settle()
    # b takes office without a hearing of it (a partition): both think they lead.
    b.election.win()
    await cluster.settle()
    await cluster.advance_to(boundary(P + 1) - 0.01)
    cluster.clock.advance(0.01 + tick_lag(5.0))  # both tick; a claims as leader
    # Then a's election concludes that it lost, unannounced: only the fence
    # has stopped a (and a does not take a new term to fight back).
    a.election.leading = False
    await cluster.settle()
    assert a.count(FENCED) == 1
    rows = await ledger(a.database)
    assert [(r.period, r.node_id) for r in rows] == [(P, "a"), (P + 1, "b")]
    # a's body never ran for P + 1: the claim itself was refused.
    steps = await activity_rows(a.database, "probe.step")
    assert [(s.details["period"], s.node_id) for s in steps] == [(P, "a"), (P + 1, "b")]


@pytest_twisted.ensureDeferred
async def test_a_term_overtaken_while_still_leading_is_replaced(cluster: Cluster):
    # A node that lost leadership while taking office can raise the fences
    # above the real leader's term; the leader takes a new term, not a lockout.
    leader = cluster.add("a", [ProbeJob()])
    leader.scheduler.startService()
    leader.election.win()
    await cluster.settle()
    first_term = leader.scheduler.fencing_term

    def late_take_office(connection):
        return take_office(connection, "ghost", [PROBE])

    await leader.database.write(late_take_office)
    await cluster.advance_into(P + 1)
    assert leader.count(FENCED) == 1
    second_term = leader.scheduler.fencing_term
    assert second_term is not None and first_term is not None
    assert second_term > first_term + 1
    rows = await ledger(leader.database)
    assert [(r.period, r.result, r.term) for r in rows] == [
        (P, SUCCESS, first_term),
        (P + 1, SUCCESS, second_term),
    ]


# -- 4. takeover and catching up ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_unfinished_row_of_a_lower_term_is_taken_over_and_finished_once(
    cluster: Cluster,
):
    now = utc_now()

    def killed_leader(connection):
        # What a leader killed mid-run leaves: its term, its fence, an open row.
        term = take_office(connection, "dead", [PROBE])
        connection.execute(
            insert(job_runs).values(
                job=PROBE, period=P, node_id="dead", term=term, started_at=now
            )
        )
        return term

    b = cluster.add("b", [ProbeJob()])
    dead_term = await b.database.write(killed_leader)
    b.scheduler.startService()
    b.election.win()
    await cluster.settle()
    rows = await ledger(b.database)
    assert len(rows) == 1
    (row,) = rows
    assert (row.period, row.node_id, row.result) == (P, "b", SUCCESS)
    assert row.term == b.scheduler.fencing_term
    assert row.term == dead_term + 1
    assert b.count(SUCCESS) == 1
    assert b.count(FENCED) == 0
    await cluster.advance_to(boundary(P) + 59)
    assert b.count(SUCCESS) == 1


@pytest_twisted.ensureDeferred
async def test_a_run_of_a_higher_term_in_progress_is_not_taken_over(cluster: Cluster):
    # The only open row a claimer can meet with a higher term is one it
    # cannot claim anyway: the fence stops it first.
    now = utc_now()

    a = cluster.add("a", [ProbeJob()])
    a.scheduler.startService()
    a.election.win()
    await cluster.settle()
    await cluster.advance_to(boundary(P + 1) - 0.01)

    def newer_leader(connection):
        term = take_office(connection, "newer", [PROBE])
        connection.execute(
            insert(job_runs).values(
                job=PROBE, period=P + 1, node_id="newer", term=term, started_at=now
            )
        )

    await a.database.write(newer_leader)
    cluster.clock.advance(0.01 + tick_lag(5.0))  # a claims, believing it leads
    a.election.leading = False  # its election finds out, unannounced
    await cluster.settle()
    assert a.count(FENCED) == 1
    rows = await ledger(a.database)
    assert [(r.node_id, r.result) for r in rows] == [("a", SUCCESS), ("newer", None)]


@pytest_twisted.ensureDeferred
async def test_becoming_leader_runs_the_current_period_at_once(cluster: Cluster):
    job = ProbeJob()
    b = cluster.add("b", [job])
    b.scheduler.startService()
    await cluster.advance_to(boundary(P) + 40)
    assert job.runs == 0
    moment = cluster.clock.seconds()
    b.election.win()
    await cluster.settle()
    assert cluster.clock.seconds() == moment  # no tick was needed
    assert job.runs == 1
    assert [(r.period, r.result) for r in await ledger(b.database)] == [(P, SUCCESS)]


@pytest_twisted.ensureDeferred
async def test_no_period_is_missed_across_leader_changes(cluster: Cluster):
    a = cluster.add("a", [ProbeJob()])
    b = cluster.add("b", [ProbeJob()])
    a.scheduler.startService()
    b.scheduler.startService()
    a.election.win()
    await cluster.advance_into(P + 1)
    # Leadership moves mid-period: b finds the period done.
    await cluster.advance_to(boundary(P + 1) + 20)
    a.election.lose("b")
    b.election.win()
    await cluster.advance_into(P + 2)
    # b loses just before a boundary; nobody leads at the boundary; a is
    # elected a second after it, well before its next tick.
    await cluster.advance_to(boundary(P + 3) - 1)
    b.election.lose(None)
    await cluster.advance_into(P + 3)
    await cluster.advance_to(boundary(P + 3) + 1)
    a.election.win()
    await cluster.settle()
    await cluster.advance_into(P + 4)
    rows = await ledger(a.database)
    by_period = successes(rows)
    assert sorted(by_period) == list(range(P, P + 5))
    assert all(len(runs) == 1 for runs in by_period.values())
    assert len(rows) == 5
    assert [r.node_id for r in rows] == ["a", "a", "b", "a", "a"]
    terms = [r.term for r in rows]
    assert terms == sorted(terms)


@pytest_twisted.ensureDeferred
async def test_the_fencing_term_grows_across_a_restart_of_every_node(cluster: Cluster):
    first = cluster.add("a", [ProbeJob()])
    first.scheduler.startService()
    first.election.win()
    await cluster.settle()
    first_term = first.scheduler.fencing_term
    await first.scheduler.stopService()
    # A new process, an election whose own term starts again from 1.
    again = cluster.add("a", [ProbeJob()])
    again.scheduler.startService()
    again.election.win()
    assert again.election.term() == 1
    await cluster.settle()
    assert first_term is not None
    assert again.scheduler.fencing_term == first_term + 1
    assert await again.database.read(
        lambda connection: read_term(connection, LEADER_TERM_COUNTER)
    ) == first_term + 1


@pytest_twisted.ensureDeferred
async def test_shutdown_stops_a_run_at_its_next_write_and_the_next_leader_takes_over(
    cluster: Cluster,
):
    stopping_job = ProbeJob(steps=2)
    stopping_job.gate = Deferred()
    a = cluster.add("a", [stopping_job])
    b = cluster.add("b", [ProbeJob(steps=2)])
    a.scheduler.startService()
    b.scheduler.startService()
    a.election.win()
    await eventually(
        lambda: stopping_job.waiting, "a's run to reach its second step", timeout=DEADLINE_S
    )
    stopped = a.scheduler.stopService()
    assert not stopped.called  # it waits for the run
    stopping_job.gate.callback(None)
    await stopped
    assert [r.result for r in await ledger(a.database)] == [None]
    assert a.count(SUCCESS) + a.count(ERROR) + a.count(FENCED) == 0
    b.election.win()
    await cluster.settle()
    rows = await ledger(b.database)
    assert [(r.period, r.node_id, r.result) for r in rows] == [(P, "b", SUCCESS)]


# -- metrics, request ids, activity -----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_result_series_exists_from_the_start(cluster: Cluster):
    node = cluster.add("a", [ProbeJob()])
    for result in (SUCCESS, ERROR, SKIPPED_NOT_LEADER, SKIPPED_ALREADY_RAN, FENCED):
        assert node.metrics.registry.get_sample_value(
            "revenge_job_runs_total", {"job": PROBE, "result": result}
        ) == 0
    assert node.metrics.registry.get_sample_value(
        "revenge_job_last_success_timestamp_seconds", {"job": PROBE}
    ) == 0


class FailingJob(ProbeJob):
    async def run(self, run):
        await super().run(run)
        raise RuntimeError("the job broke")


@pytest_twisted.ensureDeferred
async def test_a_failing_job_is_recorded_as_error_once_for_its_period(cluster: Cluster):
    job = FailingJob()
    node = cluster.add("a", [job])
    node.scheduler.startService()
    node.election.win()
    await cluster.advance_to(boundary(P) + 40)
    assert node.count(ERROR) == 1
    assert job.runs == 1
    assert [(r.period, r.result) for r in await ledger(node.database)] == [(P, ERROR)]
    (row,) = await activity_rows(node.database, f"job.{PROBE}")
    assert row.details["result"] == ERROR


class StorageDownJob(ProbeJob):
    async def run(self, run):
        await super().run(run)
        raise StorageError("S3 bucket 'media' at http://s3 does not exist (run 'revenge storage init')")


@pytest_twisted.ensureDeferred
async def test_a_storage_that_is_not_there_fails_a_job_in_one_line(cluster: Cluster, captured_log):
    # Before `revenge storage init` the sweep finds no bucket: an operator's
    # to-do, said once as a warning, not a traceback at error level.
    node = cluster.add("a", [StorageDownJob()])
    node.scheduler.startService()
    node.election.win()
    await cluster.advance_to(boundary(P) + 40)
    assert node.count(ERROR) == 1
    (line,) = [r for r in captured_log.matching(namespace="revenge.jobs") if "failed" in r["message"]]
    assert line["level"] == "warn"
    assert "revenge storage init" in line["message"]
    assert "traceback" not in line


@pytest_twisted.ensureDeferred
async def test_each_run_has_its_own_request_id_in_its_log_lines_and_activity_rows(
    cluster: Cluster, captured_log
):
    node = cluster.add("a", [ProbeJob()])
    node.scheduler.startService()
    node.election.win()
    await cluster.advance_into(P + 1)
    summaries = await activity_rows(node.database, f"job.{PROBE}")
    steps = await activity_rows(node.database, "probe.step")
    assert [s.details["period"] for s in summaries] == [P, P + 1]
    ids = [s.request_id for s in summaries]
    assert len(set(ids)) == 2 and None not in ids
    # The job's own rows carry the id too, without passing it.
    assert [s.request_id for s in steps] == ids
    for request_id, period in zip(ids, (P, P + 1)):
        lines = captured_log.matching(namespace="revenge.jobs", request_id=request_id)
        messages = [line["message"] for line in lines]
        assert any(f"period {period}" in m and "started" in m for m in messages), messages
        assert any("finished: success" in m for m in messages), messages


@pytest_twisted.ensureDeferred
async def test_a_run_that_changes_nothing_writes_no_activity_row(cluster: Cluster):
    job = ProbeJob(steps=0)
    node = cluster.add("a", [job])
    node.scheduler.startService()
    node.election.win()
    await cluster.settle()
    assert job.runs == 1
    assert await activity_rows(node.database) == []
    assert [r.result for r in await ledger(node.database)] == [SUCCESS]


# -- manual runs ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_manual_run_goes_through_the_fence_without_a_ledger_row(cluster: Cluster):
    job = ProbeJob()
    node = cluster.add("a", [job])
    node.scheduler.startService()
    node.election.win()
    await cluster.settle()
    report = await node.scheduler.run_now(PROBE, actor="root")
    assert report.result == SUCCESS
    assert report.period is None
    assert report.term == node.scheduler.fencing_term
    assert job.runs == 2
    # The period's run stays the scheduled one.
    assert [(r.period, r.result) for r in await ledger(node.database)] == [(P, SUCCESS)]
    manual = [
        row for row in await activity_rows(node.database, f"job.{PROBE}")
        if row.details["manual"]
    ]
    assert len(manual) == 1
    assert manual[0].actor == "root"
    assert node.count(SUCCESS) == 2


@pytest_twisted.ensureDeferred
async def test_a_manual_run_needs_a_leader_with_a_term_and_a_known_idle_job(cluster: Cluster):
    job = ProbeJob(steps=2)
    node = cluster.add("a", [job])
    node.scheduler.startService()
    node.election.current_leader = "b"
    with pytest.raises(NotLeader) as raised:
        await node.scheduler.run_now(PROBE)
    assert raised.value.leader == "b"
    with pytest.raises(UnknownJob):
        await node.scheduler.run_now("nope")
    job.gate = Deferred()
    node.election.win()
    await eventually(lambda: job.waiting, "the scheduled run to pause", timeout=DEADLINE_S)
    with pytest.raises(JobBusy):
        await node.scheduler.run_now(PROBE)
    job.gate.callback(None)
    await cluster.settle()


@pytest_twisted.ensureDeferred
async def test_a_manual_run_on_a_leader_without_a_term_is_refused(cluster: Cluster):
    node = cluster.add("a", [ProbeJob()], database_class=FlakyDatabase)
    assert isinstance(node.database, FlakyDatabase)
    node.database.failing = True
    node.scheduler.startService()
    node.election.win()
    with pytest.raises(NoFencingTerm):
        await node.scheduler.run_now(PROBE)
    node.database.failing = False
