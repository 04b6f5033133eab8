"""The ``standalone`` election: one node, always leader."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import LogEvent
from zope.interface.verify import verifyObject

from revenge.election import IElection, LeadershipChange
from revenge.election._standalone import StandaloneElection
from revenge.providers import ELECTION_GROUP, create_provider
from revenge.testing import captured_log_events
from revenge.testing.election_contract import ElectionContract

LEADING = LeadershipChange(is_leader=True, leader="node-a", term=1)


@pytest.fixture
def election() -> StandaloneElection:
    return StandaloneElection("node-a")


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    with captured_log_events() as events:
        yield events


def test_provides_interface(election: StandaloneElection) -> None:
    assert verifyObject(IElection, election)
    assert election.name == "standalone"
    assert election.node_id == "node-a"


@pytest_twisted.ensureDeferred
async def test_always_leader_with_term_one(election: StandaloneElection) -> None:
    def leads() -> bool:
        return election.is_leader() and election.leader() == "node-a" and election.term() == 1

    assert leads()
    await election.start()
    assert leads()
    await election.stop()
    assert leads()


def test_status_is_plain_data(election: StandaloneElection) -> None:
    assert election.status() == {"peers": [], "has_quorum": True}


@pytest_twisted.ensureDeferred
async def test_start_announces_leadership_once_on_the_reactor_thread(
    election: StandaloneElection,
) -> None:
    seen: list[tuple[LeadershipChange, threading.Thread]] = []
    election.subscribe(lambda change: seen.append((change, threading.current_thread())))
    await election.start()
    assert seen == [(LEADING, threading.main_thread())]
    await election.start()
    await election.stop()
    assert len(seen) == 1


@pytest_twisted.ensureDeferred
async def test_unsubscribe(election: StandaloneElection) -> None:
    kept: list[LeadershipChange] = []
    dropped: list[LeadershipChange] = []
    election.subscribe(kept.append)
    unsubscribe = election.subscribe(dropped.append)
    unsubscribe()
    unsubscribe()  # harmless the second time
    await election.start()
    assert kept == [LEADING]
    assert dropped == []


@pytest_twisted.ensureDeferred
async def test_unsubscribe_removes_only_its_own_subscription(
    election: StandaloneElection,
) -> None:
    seen: list[LeadershipChange] = []
    election.subscribe(seen.append)
    second = election.subscribe(seen.append)
    second()
    await election.start()
    assert seen == [LEADING]


@pytest_twisted.ensureDeferred
async def test_a_subscriber_may_unsubscribe_while_being_notified(
    election: StandaloneElection,
) -> None:
    seen: list[str] = []

    def first(change: LeadershipChange) -> None:
        seen.append("first")
        unsubscribe_first()

    unsubscribe_first = election.subscribe(first)
    election.subscribe(lambda change: seen.append("second"))
    await election.start()
    assert seen == ["first", "second"]


@pytest_twisted.ensureDeferred
async def test_a_failing_subscriber_does_not_silence_the_others(
    election: StandaloneElection, logged: list[LogEvent]
) -> None:
    seen: list[LeadershipChange] = []

    def broken(change: LeadershipChange) -> None:
        raise RuntimeError("subscriber bug")

    election.subscribe(broken)
    election.subscribe(seen.append)
    await election.start()
    assert seen == [LEADING]
    failures = [event for event in logged if "log_failure" in event]
    assert len(failures) == 1
    assert failures[0]["log_failure"].check(RuntimeError)


def test_factory_through_the_entry_point() -> None:
    config = SimpleNamespace(node_id="node-b")
    provider = create_provider(ELECTION_GROUP, "standalone", IElection, config, reactor)  # type: ignore[arg-type]
    assert isinstance(provider, StandaloneElection)
    assert provider.node_id == "node-b"
    assert provider.leader() == "node-b"


class TestStandaloneElectionContract(ElectionContract):
    # Nothing is elected: this node leads before start() and after stop().
    always_leader = True

    @pytest.fixture
    def election(self) -> IElection:
        return StandaloneElection("node-a")
