"""revenge.jobs.Eligibility with a fake clock: probes, the bound, what the election hears."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from revenge.election import IYieldingElection
from revenge.jobs import Eligibility
from revenge.metrics import Metrics

from .helpers import FakeElection

BOUND = 2.0


@implementer(IYieldingElection)
class ListeningElection(FakeElection):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.heard: list[tuple[bool, str | None]] = []

    def set_eligible(self, eligible: bool, reason: str | None) -> None:
        self.heard.append((eligible, reason))


class Check:
    """A check the test controls: passing, failing, or hanging until released."""

    def __init__(self) -> None:
        self.mode = "pass"
        self.hanging: list[Deferred[None]] = []

    def __call__(self) -> Any:
        if self.mode == "fail":
            raise ConnectionError("connection refused (test)")
        if self.mode == "hang":
            waiting: Deferred[None] = Deferred()
            self.hanging.append(waiting)
            return waiting
        return succeed(None)


def gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("revenge_election_eligible")


class Counting(Check):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return super().__call__()


def make(
    clock: Clock, follower_intervals: dict[str, float] | None = None, **checks: Check
) -> tuple[Eligibility, ListeningElection, Metrics]:
    election = ListeningElection("a")
    metrics = Metrics()

    async def probe(check: Check) -> None:
        await check()

    eligibility = Eligibility(
        {name: (lambda check=check: probe(check)) for name, check in checks.items()},
        election=election,
        metrics=metrics,
        clock=clock,
        bound=BOUND,
        follower_intervals=follower_intervals,
    )
    return eligibility, election, metrics


def advance(clock: Clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


@pytest_twisted.ensureDeferred
async def test_a_failing_database_makes_the_node_ineligible_after_the_bound() -> None:
    clock = Clock()
    database, storage = Check(), Check()
    eligibility, election, metrics = make(clock, database=database, storage=storage)
    eligibility.startService()
    try:
        advance(clock, 3)
        assert eligibility.status() == {"eligible": True, "ineligible_reason": None}
        assert gauge(metrics) == 1.0
        database.mode = "fail"
        advance(clock, BOUND - 0.6)
        assert eligibility.eligible  # not yet: the bound has not passed
        advance(clock, 1.2)
        assert not eligibility.eligible
        assert gauge(metrics) == 0.0
        ((eligible, reason),) = election.heard
        assert eligible is False
        assert reason is not None and "database" in reason and "connection refused" in reason
        assert "storage" not in reason
        assert eligibility.status()["ineligible_reason"].startswith("database has not answered")
        # It answers again: eligible at the next probe.
        database.mode = "pass"
        advance(clock, 0.6)
        assert eligibility.eligible
        assert election.heard[-1] == (True, None)
        assert gauge(metrics) == 1.0
    finally:
        eligibility.stopService()


@pytest_twisted.ensureDeferred
async def test_a_probe_that_hangs_counts_as_failing_and_is_not_repeated() -> None:
    clock = Clock()
    storage = Check()
    eligibility, election, _ = make(clock, storage=storage)
    eligibility.startService()
    try:
        advance(clock, 1)
        storage.mode = "hang"
        advance(clock, BOUND + 1)
        assert not eligibility.eligible
        assert "still waiting" in (eligibility.status()["ineligible_reason"] or "")
        # One probe in flight at a time, however long it hangs.
        assert len(storage.hanging) == 1
        storage.mode = "pass"
        storage.hanging[0].callback(None)
        assert eligibility.eligible
        assert [eligible for eligible, _ in election.heard] == [False, True]
    finally:
        eligibility.stopService()


@pytest_twisted.ensureDeferred
async def test_a_follower_probes_the_storage_rarely_and_a_leader_often() -> None:
    clock = Clock()
    database, storage = Counting(), Counting()
    eligibility, election, _ = make(
        clock, follower_intervals={"storage": 10.0}, database=database, storage=storage
    )
    eligibility.startService()
    try:
        advance(clock, 20)
        # A follower: the database four times per bound, the storage every 10 s.
        assert 38 <= database.calls <= 42
        assert 2 <= storage.calls <= 3
        # Leading, it probes the storage at the database's pace, and a
        # failure is noticed within the bound.
        election.leading = True
        before = storage.calls
        advance(clock, 5)
        assert storage.calls - before >= 9
        storage.mode = "fail"
        advance(clock, BOUND + 0.6)
        assert not eligibility.eligible
        assert "storage" in (eligibility.status()["ineligible_reason"] or "")
    finally:
        eligibility.stopService()


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Eligibility({}, election=FakeElection("a"), metrics=Metrics(), clock=Clock(), bound=0)
