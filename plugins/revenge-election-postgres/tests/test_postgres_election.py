"""
The ``postgres`` election provider in process: the IElection contract kit,
then what only a lease in PostgreSQL can show. Several providers share one
lease table in the test's reactor; the database is real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import implementer

from revenge.config import ConfigError, load_config, redacted
from revenge.election import IElection
from revenge.providers import ELECTION_GROUP, ProviderError, create_provider, installed_names
from revenge.testing import TcpProxy
from revenge.testing.election_contract import ElectionContract, eventually, stop_all
from revenge_election_postgres import (
    SECTION,
    LeaseTable,
    PostgresElection,
    PostgresElectionError,
    PostgresElectionSettings,
)

# Short enough to keep the tests quick, long enough that a busy machine does
# not miss renewals; the defaults are measured in bench/.
FAST = {"lease": 2.0, "renew_interval": 0.25}
DEADLINE_S = 15.0


def make(conninfo: str, table: str, node_id: str, **overrides: Any) -> PostgresElection:
    settings = PostgresElectionSettings(table=table, **{**FAST, **overrides})
    return PostgresElection(node_id, conninfo=conninfo, reactor=reactor, settings=settings)


def read_lease_row(conninfo: str, table: str) -> tuple[Any, ...] | None:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        return connection.execute(
            psycopg.sql.SQL(
                "SELECT holder, term, instance IS NOT NULL, renewed_at FROM {}"
            ).format(psycopg.sql.Identifier(table))
        ).fetchone()


async def lease_row(conninfo: str, table: str) -> tuple[Any, ...] | None:
    """(holder, term, held, renewed_at), read off the reactor thread."""
    row: tuple[Any, ...] | None = await deferToThread(read_lease_row, conninfo, table)
    return row


@implementer(ILogObserver)
class LogRecorder:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_namespace") == "revenge.election.postgres":
            from twisted.logger import formatEvent

            self.messages.append(formatEvent(event))


@pytest.fixture
def logged() -> Any:
    recorder = LogRecorder()
    globalLogPublisher.addObserver(recorder)
    try:
        yield recorder.messages
    finally:
        globalLogPublisher.removeObserver(recorder)


class TestPostgresElectionContract(ElectionContract):
    deadline_s = DEADLINE_S

    @pytest.fixture
    def election(self, conninfo: str, table: str) -> IElection:
        return make(conninfo, table, "node-a")

    @pytest.fixture
    def members(self, conninfo: str, table: str) -> list[IElection]:
        return [make(conninfo, table, f"node-{index}") for index in range(3)]

    @pytest.fixture
    def secrets(self, password: str) -> list[str]:
        return [password]


@pytest_twisted.async_yield_fixture
async def pair(conninfo: str, table: str) -> AsyncIterator[list[PostgresElection]]:
    nodes = [make(conninfo, table, "node-a"), make(conninfo, table, "node-b")]
    try:
        yield nodes
    finally:
        await stop_all(nodes)


def single_leader(nodes: list[PostgresElection]) -> PostgresElection | None:
    leading = [node for node in nodes if node.is_leader()]
    return leading[0] if len(leading) == 1 else None


# -- the lease in the database ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_creates_its_table_and_every_acquisition_takes_a_new_term(
    conninfo: str, table: str
) -> None:
    first = make(conninfo, table, "node-a")
    await first.start()
    try:
        await eventually(first.is_leader, "the first node to lead", DEADLINE_S)
        assert first.term() == 1
        row = await lease_row(conninfo, table)
        assert row is not None and row[:3] == ("node-a", 1, True)
    finally:
        await first.stop()
    # Released: the holder stays for people to read, the instance is gone.
    row = await lease_row(conninfo, table)
    assert row is not None and row[:3] == ("node-a", 1, False)
    # The same node id, restarted: a new acquisition, a new term.
    again = make(conninfo, table, "node-a")
    await again.start()
    try:
        await eventually(again.is_leader, "the restarted node to lead", DEADLINE_S)
        assert again.term() == 2
    finally:
        await again.stop()


@pytest_twisted.ensureDeferred
async def test_renewals_keep_the_term(conninfo: str, table: str) -> None:
    # A long lease: a renewal delayed on a busy machine must not let it lapse.
    node = make(conninfo, table, "node-a", lease=10.0)
    await node.start()
    try:
        await eventually(node.is_leader, "leadership", DEADLINE_S)
        renewals: set[Any] = set()
        deadline = time.monotonic() + DEADLINE_S
        while len(renewals) < 3:
            assert time.monotonic() < deadline, "timed out waiting for three renewals"
            row = await lease_row(conninfo, table)
            assert row is not None
            holder, term, held, renewed_at = row
            assert (holder, term, held) == ("node-a", 1, True)
            renewals.add(renewed_at)
            assert node.is_leader() and node.term() == 1
            await deferLater(reactor, 0.05)
    finally:
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_a_standby_names_the_leader_and_its_term(pair: list[PostgresElection]) -> None:
    for node in pair:
        await node.start()
    leader = await eventually(lambda: single_leader(pair), "one leader", DEADLINE_S)
    standby = next(node for node in pair if node is not leader)
    await eventually(
        lambda: standby.leader() == leader.node_id and standby.term() == leader.term(),
        "the standby to know the leader",
        DEADLINE_S,
    )
    status = standby.status()
    assert status["is_leader"] is False
    assert status["leader"] == leader.node_id
    assert status["has_quorum"] is True
    assert status["postgres"]["database_reachable"] is True
    assert status["postgres"]["lease_remaining_seconds"] is None
    remaining = leader.status()["postgres"]["lease_remaining_seconds"]
    assert 0 < remaining <= FAST["lease"]


@pytest_twisted.ensureDeferred
async def test_stop_releases_and_notifies(
    pair: list[PostgresElection], conninfo: str, table: str, logged: list[str]
) -> None:
    # A renew interval far longer than any deadline here: only the
    # notification can make the standby take over this soon.
    slow = [make(conninfo, table, node.node_id, lease=120.0, renew_interval=60.0) for node in pair]
    try:
        for node in slow:
            await node.start()
        leader = await eventually(lambda: single_leader(slow), "one leader", DEADLINE_S)
        standby = next(node for node in slow if node is not leader)
        await eventually(
            lambda: standby.leader() == leader.node_id, "the standby to see it", DEADLINE_S
        )
        term = leader.term()
        await leader.stop()
        await eventually(standby.is_leader, "the standby to take over", DEADLINE_S)
        assert standby.term() == term + 1
        assert any(f"released the lease of term {term} in" in m for m in logged)
    finally:
        await stop_all(slow)


@pytest_twisted.ensureDeferred
async def test_a_holder_that_loses_the_database_stops_leading_and_is_replaced(
    pair: list[PostgresElection], conninfo: str, table: str, postgres_server: Any
) -> None:
    proxy = TcpProxy(postgres_server.host, postgres_server.port).start()
    try:
        through_proxy = conninfo.replace(
            f"@{postgres_server.host}:{postgres_server.port}/", f"@127.0.0.1:{proxy.port}/"
        )
        assert through_proxy != conninfo
        cut_off = make(through_proxy, table, "node-a")
        other = pair[1]
        await cut_off.start()
        await eventually(cut_off.is_leader, "the proxied node to lead", DEADLINE_S)
        await other.start()
        await eventually(lambda: other.leader() == "node-a", "the other to see it", DEADLINE_S)
        term = cut_off.term()
        changes: list[bool] = []
        cut_off.subscribe(lambda change: changes.append(change.is_leader))
        proxy.cut()
        # It cannot renew: by its own clock the lease runs out, and it says so.
        await eventually(lambda: not cut_off.is_leader(), "the cut-off node to step down", DEADLINE_S)
        await eventually(lambda: changes == [False], "its subscribers to hear it", DEADLINE_S)
        assert cut_off.status()["has_quorum"] is False
        # The other takes the expired lease, in a higher term.
        await eventually(other.is_leader, "the other node to take over", DEADLINE_S)
        assert other.term() == term + 1
        proxy.restore()
        # Back in touch, it follows the new leader.
        await eventually(
            lambda: cut_off.leader() == "node-b" and cut_off.term() == term + 1,
            "the reconnected node to follow",
            DEADLINE_S,
        )
        assert not cut_off.is_leader()
        await cut_off.stop()
    finally:
        proxy.cut()


class Gate:
    """Holds one of a provider's statements on its worker thread until the test opens it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.reached_at = 0.0
        self.opened = threading.Event()

    def hold(self) -> None:
        self.reached_at = time.monotonic()
        self.reached.set()
        # Bounded, so that a broken test cannot hang the worker for ever.
        self.opened.wait(timeout=60)


def gate_claims(node: PostgresElection, *where: str) -> list[Gate]:
    """
    Hold ``node``'s next claims, one gate each: ``"before"`` it is sent (its
    start time already taken), or ``"after"`` it was answered, before the
    answer returns. Later claims pass.
    """
    gates = [Gate() for _ in where]
    pending = list(zip(where, gates))
    table: LeaseTable = node._table
    real_claim: Callable[..., int | None] = table.claim

    def claim(*args: Any) -> int | None:
        if not pending:
            return real_claim(*args)
        moment, gate = pending.pop(0)
        if moment == "after":
            term = real_claim(*args)
            gate.hold()
            return term
        gate.hold()
        return real_claim(*args)

    table.claim = claim  # type: ignore[method-assign]
    return gates


@pytest_twisted.ensureDeferred
async def test_a_paused_holder_is_replaced_and_does_not_lead_when_it_resumes(
    pair: list[PostgresElection],
) -> None:
    stale, other = pair
    await stale.start()
    await eventually(stale.is_leader, "the first node to lead", DEADLINE_S)
    term = stale.term()
    await other.start()
    # Its renewal stalls (as in a paused process) after taking its start time.
    (gate,) = gate_claims(stale, "before")
    await eventually(gate.reached.is_set, "the renewal to stall", DEADLINE_S)
    await eventually(lambda: not stale.is_leader(), "the stalled node to stop leading", DEADLINE_S)
    await eventually(other.is_leader, "the other node to take over", DEADLINE_S)
    assert other.term() == term + 1
    claims: list[bool] = []
    stale.subscribe(lambda change: claims.append(change.is_leader))
    gate.opened.set()
    # The stalled claim finds the lease taken; it follows, never leading.
    await eventually(
        lambda: stale.leader() == other.node_id and stale.term() == term + 1,
        "the resumed node to follow the new leader",
        DEADLINE_S,
    )
    assert not stale.is_leader()
    assert True not in claims


@pytest_twisted.ensureDeferred
async def test_a_late_answer_renews_nothing(pair: list[PostgresElection]) -> None:
    node = pair[0]
    await node.start()
    await eventually(node.is_leader, "leadership", DEADLINE_S)
    term = node.term()
    # A renewal reaches the database, but its answer comes back after the
    # lease it would have renewed has run out here; the claim after it is
    # held before it is sent, so that only the late answer is in play.
    late, next_claim = gate_claims(node, "after", "before")
    await eventually(late.reached.is_set, "the renewal to be answered", DEADLINE_S)
    # Later than the lease this very renewal would give, counted from its start.
    await eventually(
        lambda: time.monotonic() > late.reached_at + FAST["lease"],
        "the renewed lease to run out here too",
        DEADLINE_S,
    )
    assert not node.is_leader()
    late.opened.set()
    await eventually(next_claim.reached.is_set, "the late answer to be handled", DEADLINE_S)
    # The late answer did not make it leader again...
    assert not node.is_leader()
    assert node.status()["postgres"]["lease_remaining_seconds"] is None
    next_claim.opened.set()
    # ...the next, timely claim does. By then the lease had run out in the
    # database too, so it is a new acquisition, in a new term.
    await eventually(node.is_leader, "a timely claim", DEADLINE_S)
    assert node.term() == term + 1


@pytest_twisted.ensureDeferred
async def test_one_node_id_twice_still_has_one_holder(
    conninfo: str, table: str
) -> None:
    twins = [make(conninfo, table, "twin"), make(conninfo, table, "twin")]
    try:
        for node in twins:
            await node.start()
        await eventually(lambda: single_leader(twins), "one of the twins to lead", DEADLINE_S)
        other = next(node for node in twins if not node.is_leader())
        await eventually(lambda: other.leader() == "twin", "the other twin to see it", DEADLINE_S)
        assert not other.is_leader()
    finally:
        await stop_all(twins)


# -- packaging and configuration -------------------------------------------------


def environ(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_NODE_ID": "node-cfg",
        "REVENGE_ELECTION_BACKEND": "postgres",
        "REVENGE_DATABASE_URL": database_url,
        **extra,
    }


def test_registered_beside_the_built_ins() -> None:
    assert "postgres" in installed_names(ELECTION_GROUP)


def test_factory_reads_its_section(election_database_url: str, tmp_path: Path) -> None:
    config = load_config(
        None,
        environ(
            election_database_url,
            tmp_path,
            REVENGE_POSTGRES_ELECTION_LEASE="3s",
            REVENGE_POSTGRES_ELECTION_RENEW_INTERVAL="500ms",
            REVENGE_POSTGRES_ELECTION_TABLE="custom_lease",
        ),
        cwd=str(tmp_path),
    )
    election = create_provider(ELECTION_GROUP, "postgres", IElection, config, reactor)
    assert isinstance(election, PostgresElection)
    assert election.node_id == "node-cfg"
    status = election.status()["postgres"]
    assert (status["table"], status["lease_seconds"], status["renew_interval_seconds"]) == (
        "custom_lease", 3.0, 0.5,
    )  # fmt: skip
    shown = redacted(config, sections=True)[SECTION]
    assert shown == {"url": "", "table": "custom_lease", "lease": "3s", "renew_interval": "500ms"}


def test_its_own_url_is_secret(
    election_database_url: str, tmp_path: Path, password: str
) -> None:
    user = election_database_url.split("://", 1)[1].partition("@")[0]
    own = election_database_url.replace(f"://{user}@", f"://{user}:{password}@")
    assert own != election_database_url
    config = load_config(
        None,
        environ("sqlite:///" + str(tmp_path / "revenge.db"), tmp_path, REVENGE_POSTGRES_ELECTION_URL=own),
        cwd=str(tmp_path),
    )
    election = create_provider(ELECTION_GROUP, "postgres", IElection, config, reactor)
    assert password not in repr(election) + repr(config) + str(election.status())
    assert password not in str(redacted(config, sections=True))
    assert redacted(config, sections=True)[SECTION]["url"].startswith(f"postgresql://{user}:***@")


def test_a_sqlite_database_is_refused_in_one_line(tmp_path: Path) -> None:
    config = load_config(None, environ("sqlite:///" + str(tmp_path / "revenge.db"), tmp_path))
    with pytest.raises(PostgresElectionError) as raised:
        create_provider(ELECTION_GROUP, "postgres", IElection, config, reactor)
    assert isinstance(raised.value, ProviderError)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("database.url is not a PostgreSQL URL")
    assert "postgres_election.url" in message


@pytest.mark.parametrize(
    "extra, key, detail",
    [
        ({"LEASE": "1s", "RENEW_INTERVAL": "1s"}, "lease", "must be at least twice"),
        ({"RENEW_INTERVAL": "0"}, "renew_interval", "must be greater than 0"),
        ({"TABLE": "Robert'); DROP TABLE users;--"}, "table", "lower-case PostgreSQL identifier"),
        ({"URL": "mysql://user:hunter2@db/x"}, "url", "expected a postgresql:// URL"),
        ({"LEASSE": "1s"}, None, None),
    ],
)
def test_bad_settings_stop_loading_in_one_line(
    tmp_path: Path, extra: dict[str, str], key: str | None, detail: str | None
) -> None:
    variables = {f"REVENGE_POSTGRES_ELECTION_{name}": value for name, value in extra.items()}
    if key is None:
        # An unknown variable is ignored, like every REVENGE_* that sets no key...
        load_config(None, environ("postgresql://db/x", tmp_path, **variables))
        return
    with pytest.raises(ConfigError) as raised:
        load_config(None, environ("postgresql://db/x", tmp_path, **variables))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"config key '{SECTION}.{key}'")
    assert detail is not None and detail in message
    assert "hunter2" not in message


def test_unknown_key_in_the_file_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "revenge.yaml"
    path.write_text("postgres_election:\n  leases: 5s\n")
    with pytest.raises(ConfigError) as raised:
        load_config(str(path), {})
    assert str(raised.value) == (
        "config key 'postgres_election.leases': unknown key "
        "(did you mean 'postgres_election.lease'?)"
    )
