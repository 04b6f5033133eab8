"""Helpers for testing Revenge and its providers against real processes."""

from revenge.testing._process import ServerProcess, twistd_executable, wait_until
from revenge.testing._proxy import TcpProxy
from revenge.testing._raft_cluster import RaftCluster, RaftNode, free_raft_addresses

__all__ = [
    "RaftCluster",
    "RaftNode",
    "ServerProcess",
    "TcpProxy",
    "free_raft_addresses",
    "twistd_executable",
    "wait_until",
]
