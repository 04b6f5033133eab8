"""
The ``raft`` election provider, in process: three RaftElection objects on
loopback in the test's reactor, each with its own pysyncobj thread.
"""

from __future__ import annotations

import json
import pickle
import socket
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from cryptography.fernet import Fernet
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from zope.interface.verify import verifyObject

from revenge.election import (
    IElection,
    LeadershipChange,
    RaftTuning,
)
from revenge.election._raft import RaftElection, RaftSetupError, resolve_host
from revenge.metrics import Metrics
from revenge.providers import ELECTION_GROUP, create_provider
from revenge.server._server import _track_election
from revenge.testing import eventually, free_raft_addresses
from revenge.testing.election_contract import ElectionContract

from .payloads import CreatesAFile, frame

# Long and random enough for revenge.config.secret_problem.
SECRET = "correct horse battery staple, 7Vq2hZt9wKx3mPb0LrYcN5sJ"
# Generous: these are deadlines for things that take well under a second.
DEADLINE_S = 10.0


def make_node(
    tmp_path: Path, index: int, addresses: list[str], **overrides: Any
) -> RaftElection:
    settings: dict[str, Any] = {
        "advertise_addr": addresses[index],
        "peers": addresses,
        "secret": SECRET,
        "reactor": reactor,
        "state_dir": tmp_path / f"raft-{index}",
    }
    settings.update(overrides)
    return RaftElection(f"node-{index}", **settings)


class Cluster:
    def __init__(self, nodes: list[RaftElection]) -> None:
        self.nodes = nodes
        self.changes: dict[str, list[tuple[LeadershipChange, threading.Thread]]] = {}
        for node in nodes:
            seen: list[tuple[LeadershipChange, threading.Thread]] = []
            self.changes[node.node_id] = seen
            node.subscribe(
                lambda change, seen=seen: seen.append((change, threading.current_thread()))
            )

    def leaders(self) -> list[RaftElection]:
        return [node for node in self.nodes if node.is_leader()]

    def single_leader(self) -> RaftElection | None:
        leaders = self.leaders()
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        # Everyone agrees, in the same term.
        if all(n.leader() == leader.node_id and n.term() == leader.term() for n in self.nodes):
            return leader
        return None


@pytest_twisted.async_yield_fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    addresses = free_raft_addresses(3)
    running = Cluster([make_node(tmp_path, index, addresses) for index in range(3)])
    try:
        for node in running.nodes:
            await node.start()
        yield running
    finally:
        for node in running.nodes:
            await node.stop()


def test_provides_interface(tmp_path: Path) -> None:
    election = make_node(tmp_path, 0, free_raft_addresses(3))
    assert verifyObject(IElection, election)
    assert election.name == "raft"
    assert election.node_id == "node-0"
    assert not election.is_leader()
    assert election.leader() is None


@pytest.mark.parametrize("secret", ["", None])
def test_refuses_an_empty_secret(tmp_path: Path, secret: str | None) -> None:
    with pytest.raises(RaftSetupError, match="raft.secret"):
        make_node(tmp_path, 0, free_raft_addresses(3), secret=secret or "")
    # Nothing was created for a node that cannot run.
    assert not (tmp_path / "raft-0").exists()


def raft_config(tmp_path: Path, addresses: list[str], secret: str = SECRET) -> SimpleNamespace:
    return SimpleNamespace(
        node_id="node-b",
        raft=SimpleNamespace(
            bind_addr=addresses[1],
            advertise_addr=addresses[1],
            peers=tuple(addresses),
            data_dir=str(tmp_path / "raft"),
            secret=secret,
            compaction_interval=300.0,
        ),
    )


def test_factory_through_the_entry_point(tmp_path: Path) -> None:
    addresses = free_raft_addresses(3)
    config: Any = raft_config(tmp_path, addresses)
    provider = create_provider(ELECTION_GROUP, "raft", IElection, config, reactor)
    assert isinstance(provider, RaftElection)
    assert provider.node_id == "node-b"
    # Its own address is dropped from the peers.
    assert [peer["address"] for peer in provider.status()["peers"]] == sorted(
        [addresses[0], addresses[2]]
    )
    assert (tmp_path / "raft").is_dir()


def test_factory_refuses_an_empty_secret_in_one_line(tmp_path: Path) -> None:
    config: Any = raft_config(tmp_path, free_raft_addresses(3), secret="")
    with pytest.raises(RaftSetupError) as raised:
        create_provider(ELECTION_GROUP, "raft", IElection, config, reactor)
    assert "\n" not in str(raised.value)


def test_two_nodes_cannot_share_a_data_dir(tmp_path: Path) -> None:
    addresses = free_raft_addresses(3)
    first = make_node(tmp_path, 0, addresses, state_dir=tmp_path / "shared")
    with pytest.raises(RaftSetupError, match="in use by another running node"):
        make_node(tmp_path, 1, addresses, state_dir=tmp_path / "shared")
    assert first.node_id == "node-0"


def test_refuses_timings_pysyncobj_would_reject(tmp_path: Path) -> None:
    tuning = RaftTuning(election_timeout_min=0.2, heartbeat_interval=0.1)
    with pytest.raises(RaftSetupError, match="3 heartbeat intervals"):
        make_node(tmp_path, 0, free_raft_addresses(3), tuning=tuning)


@pytest_twisted.ensureDeferred
async def test_three_nodes_elect_exactly_one_leader(cluster: Cluster) -> None:
    leader = await eventually(cluster.single_leader, "one leader that every node follows")
    term = leader.term()
    assert term >= 1
    for node in cluster.nodes:
        status = node.status()
        assert status["backend"] == "raft"
        assert status["has_quorum"] is True
        assert status["is_leader"] is (node is leader)
        assert status["leader"] == leader.node_id
        # Node ids were exchanged: every peer is known by its id, and connected.
        assert {p["node_id"] for p in status["peers"]} == {
            n.node_id for n in cluster.nodes if n is not node
        }
        assert all(p["connected"] for p in status["peers"])
    # The leader hears about its own leadership, on the reactor thread.
    changes = cluster.changes[leader.node_id]
    await eventually(
        lambda: (LeadershipChange(True, leader.node_id, term), threading.main_thread())
        in changes,
        "the leader's subscriber to hear of it",
    )
    assert all(thread is threading.main_thread() for _, thread in changes)


@pytest_twisted.ensureDeferred
async def test_metrics_follow_leadership_and_quorum(cluster: Cluster) -> None:
    metrics = {node.node_id: Metrics() for node in cluster.nodes}
    for node in cluster.nodes:
        _track_election(node, metrics[node.node_id])

    def gauges(node: RaftElection) -> tuple[float, float, float]:
        registry = metrics[node.node_id].registry
        return (
            registry.get_sample_value("revenge_election_is_leader") or 0.0,
            registry.get_sample_value("revenge_election_has_quorum") or 0.0,
            registry.get_sample_value("revenge_election_term") or 0.0,
        )

    def settled() -> RaftElection | None:
        leader = cluster.single_leader()
        if leader is None:
            return None
        expected = {
            node.node_id: (1.0 if node is leader else 0.0, 1.0, float(leader.term()))
            for node in cluster.nodes
        }
        actual = {node.node_id: gauges(node) for node in cluster.nodes}
        return leader if actual == expected else None

    leader = await eventually(settled, "the gauges to show one leader and a quorum everywhere")
    followers = [node for node in cluster.nodes if node is not leader]
    for follower in followers:
        await follower.stop()
    # Alone, the former leader has no quorum, and its gauges say so.
    await eventually(lambda: gauges(leader)[:2] == (0.0, 0.0), "the gauges to drop")


@pytest_twisted.ensureDeferred
async def test_an_isolated_leader_stops_leading(cluster: Cluster) -> None:
    leader = await eventually(cluster.single_leader, "one leader")
    term = leader.term()
    for node in cluster.nodes:
        if node is not leader:
            await node.stop()
    # Within about one election timeout (deadline generous; bench/ measures).
    await eventually(lambda: not leader.is_leader(), "the isolated leader to step down")
    status = leader.status()
    assert status["has_quorum"] is False
    assert status["leader"] is None
    assert leader.term() >= term
    # Subscribers hear of it too (on the reactor, a moment later).
    await eventually(
        lambda: LeadershipChange(False, None, leader.term())
        in [change for change, _ in cluster.changes[leader.node_id]],
        "the subscribers to hear that it no longer leads",
    )


@pytest_twisted.ensureDeferred
async def test_stop_hands_leadership_over(cluster: Cluster) -> None:
    leader = await eventually(cluster.single_leader, "one leader")
    term = leader.term()
    others = [node for node in cluster.nodes if node is not leader]
    stopping = leader.stop()
    # It stops calling itself leader before anyone can succeed it.
    assert not leader.is_leader()
    await stopping
    successor = await eventually(
        lambda: next((n for n in others if n.is_leader()), None), "a successor"
    )
    assert successor.term() > term
    await eventually(
        lambda: all(n.leader() == successor.node_id for n in others), "both to follow it"
    )
    # term() never goes backwards, even on a stopped node.
    assert leader.term() >= term
    assert not leader.is_leader()


@pytest_twisted.ensureDeferred
async def test_term_survives_a_restart(tmp_path: Path) -> None:
    (address,) = free_raft_addresses(1)
    first = make_node(tmp_path, 0, [address])
    await first.start()
    try:
        await eventually(first.is_leader, "a cluster of one to elect itself")
        term = first.term()
    finally:
        await first.stop()
    again = make_node(tmp_path, 0, [address])
    await again.start()
    try:
        # The journal in raft.data_dir kept the term (and the vote).
        await eventually(lambda: again.term() >= term, "the stored term")
        await eventually(again.is_leader, "re-election")
        assert again.term() > term
    finally:
        await again.stop()


@pytest_twisted.ensureDeferred
async def test_peers_that_do_not_resolve_do_not_stop_the_node(tmp_path: Path) -> None:
    (address,) = free_raft_addresses(1)
    lookups: list[str] = []

    def counting_resolve(host: str) -> str:
        lookups.append(host)
        return resolve_host(host)  # the real lookup: .invalid never resolves

    node = make_node(
        tmp_path,
        0,
        [address, "revenge-1.raft.invalid:7000", "revenge-2.raft.invalid:7000"],
        tuning=RaftTuning(resolve_interval=0.05),
        resolve=counting_resolve,
    )
    await node.start()
    try:
        # It keeps trying, and keeps running, alone: no quorum, not leader.
        await eventually(
            lambda: len(lookups) >= 6 and node.status()["raft"]["state"] != "stopped",
            "several rounds of lookups, with Raft running",
        )
        status = node.status()
        assert status["raft"]["state"] in ("follower", "candidate")
        assert not node.is_leader()
        assert status["has_quorum"] is False
        assert [p["resolved"] for p in status["peers"]] == [False, False]
        assert all(not p["connected"] for p in status["peers"])
    finally:
        await node.stop()


@pytest_twisted.ensureDeferred
async def test_peers_are_found_once_their_names_resolve(tmp_path: Path) -> None:
    addresses = free_raft_addresses(3)
    host = addresses[0].rpartition(":")[0]
    # The peers are listed by name, as a StatefulSet's headless service does.
    names = [f"revenge-{i}.raft.test:{a.rpartition(':')[2]}" for i, a in enumerate(addresses)]
    published = threading.Event()
    failed_lookups: list[str] = []

    def resolve(name: str) -> str:
        if not published.is_set():
            failed_lookups.append(name)
            raise OSError(f"{name} does not resolve yet")
        return host

    nodes = Cluster(
        [
            make_node(
                tmp_path,
                index,
                names,
                bind_addr=addresses[index],
                tuning=RaftTuning(resolve_interval=0.05),
                resolve=resolve,
            )
            for index in range(3)
        ]
    )
    try:
        for node in nodes.nodes:
            await node.start()
        await eventually(
            lambda: len(failed_lookups) >= 12
            and all(n.status()["raft"]["state"] != "stopped" for n in nodes.nodes),
            "every node to run and look its peers up a few times",
        )
        # Alone, nobody can lead.
        assert nodes.leaders() == []
        assert not any(n.status()["has_quorum"] for n in nodes.nodes)
        published.set()
        await eventually(nodes.single_leader, "a leader once the names resolve")
    finally:
        for node in nodes.nodes:
            await node.stop()


def send_and_wait_for_close(address: str, payload: bytes, timeout: float = DEADLINE_S) -> None:
    """Send ``payload`` and wait (off the reactor thread) until the node closes the connection."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(payload)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if connection.recv(65536) == b"":
                    return
            except ConnectionResetError:
                return
        raise TimeoutError(f"{address} kept the connection open")


@pytest_twisted.ensureDeferred
async def test_bytes_from_a_stranger_execute_nothing(cluster: Cluster, tmp_path: Path) -> None:
    leader = await eventually(cluster.single_leader, "one leader")
    target = leader.status()["raft"]["address"]
    marker = tmp_path / "pwned"
    evil = pickle.dumps(CreatesAFile(str(marker)), protocol=2)
    assert not marker.exists()
    # Control: unpickling these bytes really would create the file.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(CreatesAFile(str(control)), protocol=2)).close()
    assert control.exists()

    # Raw pickle bytes: their first four bytes read as a huge length, so
    # pysyncobj waits for more. Left open while the framed attempts follow.
    host, _, port = target.rpartition(":")
    raw = socket.create_connection((host, int(port)), timeout=DEADLINE_S)
    try:
        raw.sendall(evil)
        wrong_key = Fernet(Fernet.generate_key())
        attempts = [
            # Framed exactly like pysyncobj's messages, unencrypted.
            frame(zlib.compress(evil, 3)),
            # Framed, and encrypted the way pysyncobj does but with another key.
            frame(wrong_key.encrypt_at_time(zlib.compress(evil, 3), int(time.monotonic()))),
            # A negative length.
            struct.pack("i", -8) + zlib.compress(evil, 3),
        ]
        for payload in attempts:
            await deferToThread(send_and_wait_for_close, target, payload)
    finally:
        raw.close()
    # The node processed and dropped every attempt; nothing ran.
    assert not marker.exists()
    # And it keeps working: still one leader that everyone follows, links up.
    still = await eventually(cluster.single_leader, "one leader after the attempts")
    assert still.term() >= leader.term()
    assert all(p["connected"] for p in leader.status()["peers"])
    assert not marker.exists()


@pytest_twisted.ensureDeferred
async def test_the_secret_stays_out_of_status_and_logs(
    captured_log: Any, cluster: Cluster
) -> None:
    await eventually(cluster.single_leader, "one leader")
    for node in cluster.nodes:
        assert SECRET not in json.dumps(node.status())
        assert SECRET not in repr(node)
    # Startup lines were captured (the capture began before the cluster started).
    assert captured_log.matching(namespace="revenge.election.raft")
    assert SECRET not in json.dumps(captured_log.records, default=str)


class TestRaftElectionContract(ElectionContract):
    @pytest.fixture
    def election(self, tmp_path: Path) -> IElection:
        # A cluster of one elects itself.
        (address,) = free_raft_addresses(1)
        return make_node(tmp_path, 0, [address])

    @pytest.fixture
    def members(self, tmp_path: Path) -> list[IElection]:
        addresses = free_raft_addresses(3)
        return [make_node(tmp_path, index, addresses) for index in range(3)]

    @pytest.fixture
    def secrets(self) -> list[str]:
        return [SECRET]


@pytest_twisted.ensureDeferred
async def test_a_tick_that_keeps_failing_steps_down_reports_and_restarts(
    tmp_path: Path, captured_log: Any
) -> None:
    addresses = free_raft_addresses(3)
    tuning = RaftTuning(tick_failure_limit=0.5, restart_delay=0.5)
    nodes = Cluster([make_node(tmp_path, i, addresses, tuning=tuning) for i in range(3)])
    try:
        for node in nodes.nodes:
            await node.start()
        leader = await eventually(nodes.single_leader, "one leader")
        transport = leader._bridge.transport
        assert transport is not None

        def broken(now: float) -> None:
            raise RuntimeError("a part of the tick broke")

        # Every tick from now on fails, as pysyncobj's compaction once did.
        transport._maybe_hand_over = broken  # type: ignore[method-assign]
        # It steps down for real: the others elect one of themselves.
        others = [n for n in nodes.nodes if n is not leader]
        successor = await eventually(
            lambda: next((n for n in others if n.is_leader()), None), "a successor"
        )
        assert not leader.is_leader()
        # /readyz's check names the failure while it lasts.
        with pytest.raises(Exception, match="a part of the tick broke"):
            await leader.check()
        # Said once (and once a minute after), not once per tick.
        failed = [r for r in captured_log.records if "raft tick failed" in r["message"]]
        assert len(failed) == 1
        assert "RuntimeError" in failed[0]["message"]
        assert len(captured_log.matching(level="error", namespace="revenge.election.raft")) <= 3
        # After restart_delay raft starts again, with a new (working) transport.
        await eventually(lambda: leader._broken is None, "raft to start again")
        await eventually(
            lambda: leader.status()["leader"] == successor.node_id, "it to follow the successor"
        )
        await leader.check()
        counted = leader.counters()[1]
        assert counted >= 5  # the failing ticks were counted, not only logged
    finally:
        for node in nodes.nodes:
            await node.stop()


@pytest_twisted.ensureDeferred
async def test_a_leader_that_cannot_do_the_work_hands_over(cluster: Cluster) -> None:
    leader = await eventually(cluster.single_leader, "one leader")
    leader.set_eligible(False, "database: unreachable (test)")
    others = [n for n in cluster.nodes if n is not leader]
    successor = await eventually(
        lambda: next((n for n in others if n.is_leader()), None), "an eligible successor"
    )
    # Its peers know why it stands aside; it does not stand again.
    await eventually(
        lambda: any(
            p["address"] == leader.status()["raft"]["address"] and p["eligible"] is False
            for p in successor.status()["peers"]
        ),
        "the successor to know the old leader cannot lead",
    )
    await successor.stop()
    last = next(n for n in others if n is not successor)
    await eventually(last.is_leader, "the other eligible node to lead")
    assert not leader.is_leader()
    leader.set_eligible(True, None)


@pytest_twisted.ensureDeferred
async def test_nodes_that_cannot_do_the_work_still_elect_when_nobody_else_can(
    cluster: Cluster,
) -> None:
    leader = await eventually(cluster.single_leader, "one leader")
    for node in cluster.nodes:
        node.set_eligible(False, "database: unreachable (test)")
    # Nobody can do better: the leader keeps leading.
    await eventually(lambda: leader.is_leader(), "the leader to stay")
    # Then it vanishes without a hand-over (as a crash would).
    gone = time.monotonic()
    leader._syncobj.destroy()
    others = [n for n in cluster.nodes if n is not leader]
    # After ineligible_campaign_delay (3 s) without a leader, one of them
    # leads anyway: a cluster always has a leader to name, and it hands on
    # as soon as a node that can do the work appears.
    survivor = await eventually(
        lambda: next((n for n in others if n.is_leader()), None),
        "a leader among the ineligible",
    )
    assert time.monotonic() - gone >= RaftTuning().ineligible_campaign_delay - 0.5
    other = next(n for n in others if n is not survivor)
    other.set_eligible(True, None)
    await eventually(other.is_leader, "the node that can do the work to take over")
