"""LeadershipListeners: the one subscribe/notify every election provider uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.logger import LogEvent, Logger

from revenge.election import LeadershipChange, LeadershipListeners
from revenge.testing import captured_log_events

LEADING = LeadershipChange(is_leader=True, leader="node-a", term=3)
FOLLOWING = LeadershipChange(is_leader=False, leader="node-b", term=4)


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    with captured_log_events() as events:
        yield events


def failures(events: list[LogEvent]) -> list[LogEvent]:
    return [event for event in events if "log_failure" in event]


def test_every_change_reaches_the_subscribers_in_the_order_they_subscribed() -> None:
    listeners = LeadershipListeners()
    seen: list[tuple[str, LeadershipChange]] = []
    listeners.subscribe(lambda change: seen.append(("first", change)))
    listeners.subscribe(lambda change: seen.append(("second", change)))
    listeners.notify(LEADING)
    listeners.notify(FOLLOWING)
    assert seen == [
        ("first", LEADING),
        ("second", LEADING),
        ("first", FOLLOWING),
        ("second", FOLLOWING),
    ]


def test_unsubscribe_removes_only_its_own_subscription_and_is_harmless_twice() -> None:
    listeners = LeadershipListeners()
    seen: list[LeadershipChange] = []
    listeners.subscribe(seen.append)
    second = listeners.subscribe(seen.append)
    second()
    second()
    listeners.notify(LEADING)
    assert seen == [LEADING]


def test_a_subscriber_may_unsubscribe_itself_while_being_notified() -> None:
    listeners = LeadershipListeners()
    seen: list[str] = []

    def first(change: LeadershipChange) -> None:
        seen.append("first")
        unsubscribe_first()

    unsubscribe_first = listeners.subscribe(first)
    listeners.subscribe(lambda change: seen.append("second"))
    listeners.notify(LEADING)
    listeners.notify(FOLLOWING)
    assert seen == ["first", "second", "second"]


def test_a_failing_subscriber_is_logged_under_the_providers_logger(
    logged: list[LogEvent],
) -> None:
    listeners = LeadershipListeners(Logger(namespace="revenge.election.mine"))
    seen: list[LeadershipChange] = []

    def broken(change: LeadershipChange) -> None:
        raise RuntimeError("subscriber bug")

    listeners.subscribe(broken)
    listeners.subscribe(seen.append)
    listeners.notify(LEADING)
    assert seen == [LEADING]
    (failure,) = failures(logged)
    assert failure["log_failure"].check(RuntimeError)
    assert failure["log_namespace"] == "revenge.election.mine"
    assert failure["log_format"] == "leadership subscriber {callback!r} failed"
    assert failure["callback"] is broken


def test_without_a_logger_failures_go_to_the_election_namespace(
    logged: list[LogEvent],
) -> None:
    listeners = LeadershipListeners()

    def broken(change: LeadershipChange) -> None:
        raise RuntimeError("subscriber bug")

    listeners.subscribe(broken)
    listeners.notify(LEADING)
    (failure,) = failures(logged)
    assert failure["log_namespace"] == "revenge.election"
