"""
:class:`DelayProxy` delays raft links between child processes in cgroups,
transparently: the children connect to each other's raft addresses and the
NAT rules bring the connections through the proxy. Delays are asserted as
lower bounds only (a loaded machine only makes things slower).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator

import pytest

from revenge.testing import DelayProxy, NodeCgroups, free_raft_addresses

from .children import Child

# Upper bound on anything that should be quick (never asserted tighter).
SLOW_S = 5.0


class Link:
    """Nodes ``a`` and ``b`` added to a started proxy, each listening on its raft address."""

    def __init__(self, proxy: DelayProxy, spawn: Callable[[str], Child]) -> None:
        self.proxy = proxy
        self.addresses = dict(zip("ab", free_raft_addresses(2)))
        self.children: dict[str, Child] = {}
        for name in "ab":
            child = spawn(name)
            proxy.add_node(name, child.cgroup, self.addresses[name])
            self.children[name] = child
        proxy.start()
        for name, child in self.children.items():
            host, port = self.addresses[name].split(":")
            assert child.call("listen", host=host, port=int(port))["ok"]

    def connect(self, opener: str, listener: str) -> tuple[Child, Child]:
        """``opener`` connects to ``listener``'s raft address ("peer" on both sides)."""
        host, port = self.addresses[listener].split(":")
        before = self.proxy.connections_accepted
        child, other = self.children[opener], self.children[listener]
        assert child.call("connect", name="peer", host=host, port=int(port), timeout=SLOW_S) == {"ok": True}
        assert other.call("accept", name="peer", timeout=SLOW_S) == {"ok": True}
        # The connection went to the original address and through the proxy.
        assert self.proxy.connections_accepted == before + 1
        return child, other


@pytest.fixture
def link(cgroups: NodeCgroups, spawn: Callable[[str], Child]) -> Iterator[Link]:
    proxy = DelayProxy(seed=7)
    try:
        yield Link(proxy, spawn)
    finally:
        proxy.close()


def round_trip(child: Child, data: str = "ping\n") -> float:
    answer = child.call("rtt", name="peer", data=data, timeout=SLOW_S * 2)
    assert answer.get("data") == data, answer
    rtt: float = answer["rtt"]
    return rtt


@pytest.mark.parametrize("opener", ["a", "b"])
def test_each_direction_is_delayed_on_a_connection_either_side_opened(link: Link, opener: str) -> None:
    listener = "b" if opener == "a" else "a"
    child, other = link.connect(opener, listener)
    assert other.call("echo", name="peer") == {"ok": True}
    assert round_trip(child) < SLOW_S

    # What the opener sends (on its own connection)...
    link.proxy.set_delay(opener, (0.35, 0.5))
    assert link.proxy.delay(opener, listener) == (0.35, 0.5)
    assert round_trip(child) >= 0.35
    # ...and what the listener sends back (on a connection it did not open).
    link.proxy.clear_delays()
    link.proxy.set_delay(listener, 0.3, to=[opener])
    assert round_trip(child) >= 0.3
    # Both add up.
    link.proxy.set_delay(opener, 0.2)
    assert round_trip(child) >= 0.5
    assert link.proxy.bytes_forwarded(opener, listener) >= 4 * len("ping\n")


def test_bytes_arrive_unchanged_and_in_order_under_random_delays(link: Link) -> None:
    a, b = link.connect("a", "b")
    b.call("echo", name="peer")
    link.proxy.set_delay("a", (0.0, 0.05))
    link.proxy.set_delay("b", (0.0, 0.05))
    rng = random.Random(3)
    payload = "".join(rng.choice(string.ascii_letters + string.digits + "\n") for _ in range(200_000))
    # Many separate writes, so that the proxy reads (and delays) many chunks.
    a.send("send", name="peer", data=payload, chunks=400)
    assert a.answer() == {"ok": True}
    got = a.call("recv", names=["peer"], timeout=SLOW_S * 2, size=len(payload))
    assert got["data"]["peer"] == payload


def test_a_close_is_passed_on_after_what_was_queued_and_the_other_way_stays_open(link: Link) -> None:
    a, b = link.connect("a", "b")
    link.proxy.set_delay("a", 0.3)
    a.call("send", name="peer", data="last words")
    a.call("shutdown", name="peer")
    # b gets everything a sent before it closed, then the close.
    got = b.call("recv", names=["peer"], timeout=SLOW_S)
    assert got == {"data": {"peer": "last words"}, "eof": ["peer"]}
    # The proxy did not close the other direction: b can still answer.
    b.call("send", name="peer", data="answer")
    b.call("shutdown", name="peer")
    assert a.call("recv", names=["peer"], timeout=SLOW_S) == {"data": {"peer": "answer"}, "eof": ["peer"]}


def test_delays_are_checked(link: Link) -> None:
    with pytest.raises(ValueError):
        link.proxy.set_delay("a", -1.0)
    with pytest.raises(ValueError):
        link.proxy.set_delay("a", (0.5, 0.1))
    with pytest.raises(KeyError):
        link.proxy.set_delay("nobody", 0.1)
    assert link.proxy.delay("a", "b") == 0.0
