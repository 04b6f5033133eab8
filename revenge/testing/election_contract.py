"""
The ``IElection`` contract kit: the tests every election provider passes, the
built-ins (``standalone``, ``raft``) and third-party ones alike.

Use it from a provider's own test suite (pytest with pytest-twisted, both in
Revenge's ``test`` extra)::

    import pytest
    from revenge.election import IElection
    from revenge.testing.election_contract import ElectionContract

    class TestMyElection(ElectionContract):
        @pytest.fixture
        def election(self) -> IElection:
            # A new, unstarted provider that can win an election on its own
            # (a cluster of one).
            return MyElection("node-a", ...)

        @pytest.fixture
        def members(self) -> list[IElection]:
            # Optional: two or more new, unstarted providers of one election
            # (peers of each other, or sharing one database), for the
            # hand-over test. Without it that test is skipped.
            return [MyElection(f"node-{i}", ...) for i in range(3)]

        @pytest.fixture
        def secrets(self) -> list[str]:
            # Optional: values the providers were configured with that must
            # never appear in status() or repr() (passwords, shared secrets).
            return ["the shared secret"]

The kit starts and stops the providers itself (stopping them even when a test
fails) and waits for things with deadlines, never fixed sleeps. Set
``always_leader = True`` on the class for a backend that elects nothing (like
``standalone``): it leads before ``start()`` and after ``stop()``, so the
tests that expect leadership to end are adapted. Raise ``deadline_s`` for a
backend that needs longer than 10 s to elect itself.

What is checked: the interface (``verifyObject``), leadership of a cluster
of one, subscribers called on the reactor thread (including unsubscribing,
twice or from inside a callback, and a failing subscriber not silencing the
others), a term that never decreases, a ``status()`` that is plain JSON,
agrees with the interface's answers and carries no secret, ``stop()`` ending
leadership (and being harmless twice), and with ``members`` a hand-over to
another member in a higher term, with never two leaders at once.

This module imports pytest: import it from tests only, never from code the
server runs (``import revenge.testing`` alone does not import it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any, ClassVar

import pytest
from zope.interface.verify import verifyObject

from revenge.election import IElection, LeadershipChange, cluster_status
from revenge.testing._pytest_twisted import twisted_test
from revenge.testing._waiting import eventually

__all__ = ["ElectionContract", "SubscriberLog", "eventually", "stop_all"]

# The fields of /api/v1/cluster that the interface answers; a provider's
# status() may restate them, and must then agree.
INTERFACE_FIELDS = ("node_id", "backend", "is_leader", "leader", "term")


async def stop_all(elections: Iterable[IElection]) -> None:
    """Stop every provider, each even when another one's stop fails; then re-raise."""
    failures: list[BaseException] = []
    for election in elections:
        try:
            await election.stop()
        except Exception as error:
            failures.append(error)
    if failures:
        raise failures[0]


class SubscriberLog:
    """A subscriber that records each change with the thread it arrived on."""

    def __init__(self) -> None:
        self.changes: list[LeadershipChange] = []
        self.threads: set[threading.Thread] = set()

    def __call__(self, change: LeadershipChange) -> None:
        self.changes.append(change)
        self.threads.add(threading.current_thread())


def _json_round_trip(status: dict[str, Any]) -> Any:
    return json.loads(json.dumps(status, allow_nan=False))


class ElectionContract:
    """Every IElection provider passes these; subclass and provide the fixtures."""

    # True for a backend that elects nothing: it leads from construction on,
    # and after stop() too.
    always_leader: ClassVar[bool] = False
    # The longest anything may take that the provider does in its own time.
    deadline_s: ClassVar[float] = 10.0

    @pytest.fixture
    def election(self) -> IElection:
        raise NotImplementedError("a provider's test class overrides the election fixture")

    @pytest.fixture
    def members(self) -> list[IElection]:
        pytest.skip("this provider's tests give no members of one election to hand over between")

    @pytest.fixture
    def secrets(self) -> list[str]:
        return []

    async def _until_leading(self, election: IElection) -> None:
        await eventually(
            lambda: election.is_leader()
            and election.leader() == election.node_id
            and election.term() >= 1,
            f"{election.node_id} to lead alone",
            self.deadline_s,
        )

    def test_provides_interface(self, election: IElection) -> None:
        assert verifyObject(IElection, election)
        assert isinstance(election.name, str) and election.name
        assert isinstance(election.node_id, str) and election.node_id

    @twisted_test
    async def test_a_cluster_of_one_elects_itself(self, election: IElection) -> None:
        try:
            await election.start()
            await self._until_leading(election)
            assert isinstance(election.term(), int)
        finally:
            await election.stop()

    @twisted_test
    async def test_subscribers_hear_of_leadership_on_the_reactor_thread(
        self, election: IElection
    ) -> None:
        reactor_thread = threading.current_thread()
        log = SubscriberLog()
        election.subscribe(log)
        try:
            await election.start()
            await self._until_leading(election)
            await eventually(
                lambda: LeadershipChange(True, election.node_id, election.term())
                in log.changes,
                "the subscriber to hear that this node leads",
                self.deadline_s,
            )
        finally:
            await election.stop()
        assert all(isinstance(change, LeadershipChange) for change in log.changes)
        assert log.threads == {reactor_thread}

    @twisted_test
    async def test_unsubscribe(self, election: IElection) -> None:
        kept = SubscriberLog()
        dropped = SubscriberLog()
        twice = SubscriberLog()
        election.subscribe(kept)
        unsubscribe_dropped = election.subscribe(dropped)
        election.subscribe(twice)
        unsubscribe_second = election.subscribe(twice)
        unsubscribe_dropped()
        unsubscribe_dropped()  # harmless the second time
        # The same callback subscribed twice: only that subscription goes.
        unsubscribe_second()
        try:
            await election.start()
            await self._until_leading(election)
            await eventually(
                lambda: any(change.is_leader for change in kept.changes),
                "the kept subscriber to hear of leadership",
                self.deadline_s,
            )
        finally:
            await election.stop()
        assert dropped.changes == []
        assert twice.changes == kept.changes

    @twisted_test
    async def test_a_subscriber_may_unsubscribe_while_being_notified(
        self, election: IElection
    ) -> None:
        calls: list[str] = []

        def once(change: LeadershipChange) -> None:
            calls.append("once")
            unsubscribe_once()

        unsubscribe_once = election.subscribe(once)
        after = SubscriberLog()
        election.subscribe(after)
        try:
            await election.start()
            await self._until_leading(election)
            await eventually(
                lambda: after.changes, "the second subscriber to be called", self.deadline_s
            )
        finally:
            await election.stop()
        assert calls == ["once"]

    @twisted_test
    async def test_a_failing_subscriber_does_not_silence_the_others(
        self, election: IElection
    ) -> None:
        def broken(change: LeadershipChange) -> None:
            raise RuntimeError("a subscriber's bug")

        election.subscribe(broken)
        after = SubscriberLog()
        election.subscribe(after)
        try:
            await election.start()
            await self._until_leading(election)
            await eventually(
                lambda: any(change.is_leader for change in after.changes),
                "the subscriber after the failing one to hear of leadership",
                self.deadline_s,
            )
        finally:
            await election.stop()

    @twisted_test
    async def test_the_term_never_decreases(self, election: IElection) -> None:
        seen: list[int] = [election.term()]
        announced = SubscriberLog()
        election.subscribe(announced)

        def sample() -> bool:
            seen.append(election.term())
            return False

        try:
            await election.start()
            await eventually(
                lambda: sample() or election.is_leader(),
                "leadership",
                self.deadline_s,
            )
            leading_term = election.term()
        finally:
            await election.stop()
        seen.append(election.term())
        assert seen == sorted(seen), seen
        assert election.term() >= leading_term >= 1
        terms = [change.term for change in announced.changes]
        assert terms == sorted(terms), terms

    @twisted_test
    async def test_status_is_plain_json_that_agrees_and_keeps_secrets(
        self, election: IElection, secrets: list[str]
    ) -> None:
        def check(moment: str) -> None:
            status = election.status()
            assert isinstance(status, dict), moment
            # Plain JSON: serialisable, and unchanged by the round trip (no
            # tuples, no non-string keys, no NaN).
            assert _json_round_trip(status) == status, moment
            body = cluster_status(election)
            assert _json_round_trip(body) == body, moment
            text = json.dumps(body) + repr(election)
            for secret in secrets:
                assert secret not in text, f"a secret shows {moment}"

        check("before start")
        try:
            await election.start()
            await self._until_leading(election)
            check("while leading")
            # While leading alone nothing changes, so the restated fields
            # must agree with the interface's answers.
            body = cluster_status(election)
            answers = {
                "node_id": election.node_id,
                "backend": election.name,
                "is_leader": election.is_leader(),
                "leader": election.leader(),
                "term": election.term(),
            }
            assert {name: body[name] for name in INTERFACE_FIELDS} == answers
        finally:
            await election.stop()
        check("after stop")

    @twisted_test
    async def test_stop_ends_leadership(self, election: IElection) -> None:
        log = SubscriberLog()
        election.subscribe(log)
        await election.start()
        try:
            await self._until_leading(election)
        except BaseException:
            await election.stop()
            raise
        term = election.term()
        stopping = election.stop()
        if not self.always_leader:
            # At once, before any successor could be elected.
            assert not election.is_leader()
        await stopping
        # Stopping twice is harmless.
        await election.stop()
        assert election.term() >= term
        if self.always_leader:
            assert election.is_leader()
            return
        assert not election.is_leader()
        await eventually(
            lambda: log.changes and not log.changes[-1].is_leader,
            "the subscriber to hear that this node no longer leads",
            self.deadline_s,
        )

    @twisted_test
    async def test_stop_hands_leadership_to_another_member(
        self, members: list[IElection]
    ) -> None:
        assert len(members) >= 2, "members: two or more providers of one election"
        claims: list[list[str]] = []

        def leaders() -> list[IElection]:
            found = [member for member in members if member.is_leader()]
            claims.append([member.node_id for member in found])
            return found

        def single_leader() -> IElection | None:
            found = leaders()
            return found[0] if len(found) == 1 else None

        try:
            for member in members:
                await member.start()
            leader: IElection = await eventually(
                single_leader, "one member to lead", self.deadline_s
            )
            term = leader.term()
            others = [member for member in members if member is not leader]
            stopping = leader.stop()
            assert not leader.is_leader()
            await stopping
            successor: IElection = await eventually(
                lambda: next((m for m in others if m in leaders()), None),
                "another member to lead",
                self.deadline_s,
            )
            assert successor.term() > term
            assert leader.term() >= term
            assert not leader.is_leader()
            await eventually(
                lambda: all(m.leader() == successor.node_id for m in others),
                "the remaining members to name the successor",
                self.deadline_s,
            )
        finally:
            await stop_all(members)
        # Sampled on the reactor, one instant at a time: never two at once.
        assert all(len(found) <= 1 for found in claims), [c for c in claims if len(c) > 1]
