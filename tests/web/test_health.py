from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from revenge.web import HealthChecks


def test_a_check_that_never_answers_fails_after_the_timeout(captured_log):
    clock = Clock()
    health = HealthChecks(clock, check_timeout=2.0)
    health.register("hung", lambda: Deferred())
    health.register("fine", _done)
    outcome = ensureDeferred(health.evaluate())
    assert not outcome.called
    clock.advance(1.9)
    assert not outcome.called
    clock.advance(0.2)
    readiness = outcome.result
    assert readiness.failing == ["hung"]
    assert not readiness.ready
    warnings = [r for r in captured_log.records if r.get("check") == "hung"]
    assert len(warnings) == 1


def _done() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.callback(None)
    return d


def test_duplicate_names_are_refused():
    health = HealthChecks(Clock())
    health.register("db", _done)
    try:
        health.register("db", _done)
    except ValueError as error:
        assert "db" in str(error)
    else:
        raise AssertionError("a second check named db was accepted")


@pytest_twisted.ensureDeferred
async def test_failing_check_logs_once_and_recovery_once(captured_log):
    clock = Clock()
    health = HealthChecks(clock)
    state = {"up": False}

    async def check() -> None:
        if not state["up"]:
            raise RuntimeError("down")

    health.register("db", check)
    for _ in range(3):
        assert (await health.evaluate()).failing == ["db"]
    state["up"] = True
    assert (await health.evaluate()).ready
    assert (await health.evaluate()).ready
    lines = [r["message"] for r in captured_log.records if r.get("check") == "db"]
    assert lines == ["readiness check db failing: down", "readiness check db passing again"]


@pytest_twisted.ensureDeferred
async def test_draining_wins_over_passing_checks():
    health = HealthChecks(Clock())
    health.register("ok", _done)
    assert (await health.evaluate()).ready
    health.start_draining()
    readiness = await health.evaluate()
    assert readiness.draining and not readiness.ready
