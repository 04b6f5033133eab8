"""
Helpers for testing Revenge and its providers against real processes.

The contract kits for provider authors are submodules that import pytest,
so that importing this package never needs the test extra:
:mod:`revenge.testing.storage_contract`, :mod:`revenge.testing.election_contract`
and the ``postgres_server`` fixture in :mod:`revenge.testing.postgres`
(docs/plugins.md).
"""

from revenge.testing._database_cluster import ClusterNode, SharedDatabaseCluster
from revenge.testing._postgres import PostgresServer
from revenge.testing._process import ServerProcess, twistd_executable, wait_until
from revenge.testing._proxy import TcpProxy
from revenge.testing._raft_cluster import RaftCluster, RaftNode, free_raft_addresses

__all__ = [
    "ClusterNode",
    "PostgresServer",
    "RaftCluster",
    "RaftNode",
    "ServerProcess",
    "SharedDatabaseCluster",
    "TcpProxy",
    "free_raft_addresses",
    "twistd_executable",
    "wait_until",
]
