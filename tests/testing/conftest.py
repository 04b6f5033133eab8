"""
Fixtures for the network-fault tests: they need root, nft and cgroup v2,
and skip with the reason :func:`network_faults_unavailable` gives otherwise
(.ci/run installs nftables where it can).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from revenge.testing import LoopbackFirewall, NodeCgroups, network_faults_unavailable

from .children import Child


@pytest.fixture
def netfaults() -> None:
    reason = network_faults_unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def cgroups(netfaults: None) -> Iterator[NodeCgroups]:
    made = NodeCgroups()
    try:
        yield made
    finally:
        assert made.close() == [], "cgroups left behind"


@pytest.fixture
def firewall(netfaults: None) -> Iterator[LoopbackFirewall]:
    with LoopbackFirewall() as made:
        yield made


@pytest.fixture
def spawn(cgroups: NodeCgroups) -> Iterator[Callable[[str], Child]]:
    """Start a child in a new cgroup named ``name``; every child is killed before the cgroups go."""
    started: list[Child] = []

    def start(name: str) -> Child:
        child = Child(cgroups.add(name))
        started.append(child)
        return child

    try:
        yield start
    finally:
        for child in started:
            child.stop()
