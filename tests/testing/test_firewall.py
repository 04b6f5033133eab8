"""
:class:`LoopbackFirewall` drops real packets between real processes on
loopback: child processes in their own cgroups open real sockets, and what
arrives (or does not within a short window) is what the firewall let through.
"Not delivered" is always a bounded wait in the child; "delivered" waits
for a deadline, and after a heal the data that was held back must arrive
(TCP retransmits it), which proves it was dropped, not lost.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from revenge.testing import Fault, LoopbackFirewall, free_raft_addresses

from .children import Child

# How long a child listens to conclude that nothing gets through.
SILENCE_S = 0.5
# How long delivered data may take, retransmits after a heal included.
DELIVERY_S = 10.0


@pytest.fixture
def server() -> Iterator[socket.socket]:
    """A listener in the test process (outside every node cgroup), standing in for PostgreSQL."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(DELIVERY_S)
        yield listener


def port_of(listener: socket.socket) -> int:
    port: int = listener.getsockname()[1]
    return port


def test_a_connect_from_a_cut_node_times_out_while_others_connect(
    firewall: LoopbackFirewall, spawn: Callable[[str], Child], server: socket.socket
) -> None:
    cut, other = spawn("cut"), spawn("other")
    firewall.register("cut", cut.cgroup)
    firewall.register("other", other.cgroup)
    port = port_of(server)

    fault = firewall.cut_port("cut", port)
    assert firewall.faults() == [fault] == [Fault("port", "cut", port=port)]

    refused = cut.call("connect", name="db", host="127.0.0.1", port=port, timeout=1.0)
    # A partition: silence until the timeout, not EPERM at once as a drop on output gives.
    assert refused["error"] == "timeout", refused
    assert refused["after"] >= 0.9
    assert other.call("connect", name="db", host="127.0.0.1", port=port, timeout=5.0) == {"ok": True}
    with socket.create_connection(("127.0.0.1", port), timeout=5.0):
        pass  # The test process itself is not cut either.

    firewall.heal()
    assert firewall.faults() == []
    assert cut.call("connect", name="db", host="127.0.0.1", port=port, timeout=5.0) == {"ok": True}


def test_cut_port_silences_an_open_connection_both_ways_until_healed(
    firewall: LoopbackFirewall, spawn: Callable[[str], Child], server: socket.socket
) -> None:
    node = spawn("node")
    firewall.register("node", node.cgroup)
    assert node.call("connect", name="db", host="127.0.0.1", port=port_of(server), timeout=5.0)["ok"]
    accepted, _ = server.accept()
    with accepted:
        firewall.cut_port("node", port_of(server), host="127.0.0.1")
        node.call("send", name="db", data="query")
        accepted.send(b"row")
        # Nothing from the server reaches the node (it listens meanwhile)...
        node.send("recv", names=["db"], timeout=SILENCE_S)
        # ...and nothing from the node reaches the server.
        accepted.settimeout(SILENCE_S)
        with pytest.raises(TimeoutError):
            accepted.recv(100)
        assert node.answer()["data"] == {"db": ""}

        firewall.heal("node")
        accepted.settimeout(DELIVERY_S)
        assert accepted.recv(100) == b"query"
        answer = node.call("recv", names=["db"], timeout=DELIVERY_S, size=3)
        assert answer["data"] == {"db": "row"}


def test_cut_port_cuts_only_that_port(
    firewall: LoopbackFirewall, spawn: Callable[[str], Child], server: socket.socket
) -> None:
    node = spawn("node")
    firewall.register("node", node.cgroup)
    firewall.cut_port("node", port_of(server) ^ 1)  # Another port.
    answer = node.call("connect", name="db", host="127.0.0.1", port=port_of(server), timeout=5.0)
    assert answer == {"ok": True}


class Pair:
    """Nodes a and b, each listening on its raft address, with one connection opened by each."""

    def __init__(self, firewall: LoopbackFirewall, spawn: Callable[[str], Child], names: list[str]) -> None:
        self.children: dict[str, Child] = {}
        self.addresses = dict(zip(names, free_raft_addresses(len(names))))
        for name in names:
            child = spawn(name)
            firewall.register(name, child.cgroup, self.addresses[name])
            host, port = self.addresses[name].split(":")
            assert child.call("listen", host=host, port=int(port))["ok"]
            self.children[name] = child

    def connect(self, opener: str, listener: str) -> None:
        """``opener`` connects to ``listener``'s raft port: ``to_<listener>`` and ``from_<opener>``."""
        host, port = self.addresses[listener].split(":")
        answer = self.children[opener].call(
            "connect", name=f"to_{listener}", host=host, port=int(port), timeout=5.0
        )
        assert answer == {"ok": True}
        assert self.children[listener].call("accept", name=f"from_{opener}", timeout=5.0) == {"ok": True}


@pytest.mark.parametrize("direction", ["out", "in", "both"])
def test_cut_raft_drops_the_chosen_direction_on_connections_either_side_opened(
    firewall: LoopbackFirewall, spawn: Callable[[str], Child], direction: str
) -> None:
    pair = Pair(firewall, spawn, ["a", "b"])
    a, b = pair.children["a"], pair.children["b"]
    pair.connect("a", "b")  # Opened by a: what a sends goes in the original direction.
    pair.connect("b", "a")  # Opened by b: what a sends goes in the reply direction.

    firewall.cut_raft("a", direction=direction)  # type: ignore[arg-type]
    assert [str(f) for f in firewall.faults()] and firewall.faults()[0].peers == ("b",)
    a.call("send", name="to_b", data="a-on-its-own")
    a.call("send", name="from_b", data="a-on-b's")
    b.call("send", name="to_a", data="b-on-its-own")
    b.call("send", name="from_a", data="b-on-a's")
    a_sends_arrive = direction == "in"
    a_receives = direction == "out"

    # Both children listen at once, for the silence window or until all arrived.
    b.send("recv", names=["from_a", "to_a"], timeout=SILENCE_S if not a_sends_arrive else DELIVERY_S, size=8)
    a.send("recv", names=["from_b", "to_b"], timeout=SILENCE_S if not a_receives else DELIVERY_S, size=8)
    at_b, at_a = b.answer()["data"], a.answer()["data"]
    if a_sends_arrive:
        assert at_b == {"from_a": "a-on-its-own", "to_a": "a-on-b's"}
    else:
        assert at_b == {"from_a": "", "to_a": ""}
    if a_receives:
        assert at_a == {"from_b": "b-on-its-own", "to_b": "b-on-a's"}
    else:
        assert at_a == {"from_b": "", "to_b": ""}

    firewall.heal()
    # What was dropped is retransmitted and now arrives.
    if not a_sends_arrive:
        got = b.call("recv", names=["from_a", "to_a"], timeout=DELIVERY_S, size=8)["data"]
        assert got == {"from_a": "a-on-its-own", "to_a": "a-on-b's"}
    if not a_receives:
        got = a.call("recv", names=["from_b", "to_b"], timeout=DELIVERY_S, size=8)["data"]
        assert got == {"from_b": "b-on-its-own", "to_b": "b-on-a's"}


def test_cut_raft_with_peers_leaves_the_other_links(
    firewall: LoopbackFirewall, spawn: Callable[[str], Child]
) -> None:
    trio = Pair(firewall, spawn, ["a", "b", "c"])
    a, c = trio.children["a"], trio.children["c"]
    firewall.cut_raft("a", peers=["b"])
    # A new connection a -> b times out; a -> c and c -> a work both ways.
    host, port = trio.addresses["b"].split(":")
    assert a.call("connect", name="late", host=host, port=int(port), timeout=0.6)["error"] == "timeout"
    trio.connect("a", "c")
    trio.connect("c", "a")
    a.call("send", name="to_c", data="ping")
    c.call("send", name="to_a", data="pong")
    assert c.call("recv", names=["from_a"], timeout=DELIVERY_S, size=4)["data"] == {"from_a": "ping"}
    assert a.call("recv", names=["from_c"], timeout=DELIVERY_S, size=4)["data"] == {"from_c": "pong"}


def test_heal_of_one_node_keeps_the_faults_of_the_others(
    firewall: LoopbackFirewall, spawn: Callable[[str], Child]
) -> None:
    trio = Pair(firewall, spawn, ["a", "b", "c"])
    firewall.cut_raft("a", peers=["b"], direction="out")
    kept = firewall.cut_raft("c", direction="in")
    firewall.cut_port("a", 5432)
    firewall.heal("a")
    assert firewall.faults() == [kept]
    # The remaining fault still acts: c hears nothing, a new connection to c times out.
    host, port = trio.addresses["c"].split(":")
    answer = trio.children["a"].call("connect", name="x", host=host, port=int(port), timeout=0.6)
    assert answer["error"] == "timeout"


def test_unknown_nodes_and_directions_are_refused(firewall: LoopbackFirewall, spawn: Callable[[str], Child]) -> None:
    trio = Pair(firewall, spawn, ["a"])
    assert trio.children
    with pytest.raises(KeyError):
        firewall.cut_raft("a", peers=["nobody"])
    with pytest.raises(ValueError):
        firewall.cut_raft("a", direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        firewall.cut_port("nobody", 5432)
    assert firewall.faults() == []
