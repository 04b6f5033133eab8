"""Leader election: the contract, the ``standalone`` and ``raft`` providers, the cluster route."""

from revenge.election._interface import (
    IElection,
    IElectionHealth,
    IYieldingElection,
    LeadershipChange,
)
from revenge.election._raft import RaftElection, RaftSetupError, RaftTuning
from revenge.election._routes import cluster_status, install_cluster_routes
from revenge.election._standalone import StandaloneElection

__all__ = [
    "IElection",
    "IElectionHealth",
    "IYieldingElection",
    "LeadershipChange",
    "RaftElection",
    "RaftSetupError",
    "RaftTuning",
    "StandaloneElection",
    "cluster_status",
    "install_cluster_routes",
]
