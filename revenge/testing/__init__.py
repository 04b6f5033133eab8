"""
Helpers for testing Revenge and its providers against real processes.

The contract kits for provider authors are submodules that import pytest,
so that importing this package never needs the test extra:
:mod:`revenge.testing.storage_contract`, :mod:`revenge.testing.election_contract`
and the ``postgres_server`` fixture in :mod:`revenge.testing.postgres`
(docs/plugins.md).

Watching a cluster's leadership from outside (never two leaders at once):
:class:`LeaderWatch`.

Network faults between real processes on loopback (Linux, root, nftables,
cgroup v2; :func:`network_faults_unavailable` says why not):
:class:`FaultyNetwork` for a :class:`RaftCluster`, built from
:class:`NodeCgroups`, :class:`LoopbackFirewall` and :class:`DelayProxy`.
"""

from revenge.testing._database_cluster import ClusterNode, SharedDatabaseCluster
from revenge.testing._delay_proxy import DelayProxy
from revenge.testing._faulty_network import FaultyNetwork
from revenge.testing._leader_watch import LeaderWatch, Observation, Overlap
from revenge.testing._netfaults import (
    Fault,
    LoopbackFirewall,
    NftError,
    NodeCgroup,
    NodeCgroups,
    network_faults_unavailable,
)
from revenge.testing._postgres import PostgresServer
from revenge.testing._process import (
    ServerProcess,
    fetch_cluster_status,
    hold,
    twistd_executable,
    wait_until,
)
from revenge.testing._proxy import TcpProxy
from revenge.testing._raft_cluster import RaftCluster, RaftNode, free_raft_addresses

__all__ = [
    "ClusterNode",
    "DelayProxy",
    "Fault",
    "FaultyNetwork",
    "LeaderWatch",
    "LoopbackFirewall",
    "NftError",
    "NodeCgroup",
    "NodeCgroups",
    "Observation",
    "Overlap",
    "PostgresServer",
    "RaftCluster",
    "RaftNode",
    "ServerProcess",
    "SharedDatabaseCluster",
    "TcpProxy",
    "fetch_cluster_status",
    "free_raft_addresses",
    "hold",
    "network_faults_unavailable",
    "twistd_executable",
    "wait_until",
]
