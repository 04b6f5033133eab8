"""
Leader election: the contract (``IElection`` and its optional companions),
what a provider builds on (``LeadershipListeners``), the raft timings
(docs/deployment/raft-clustering.md) and the cluster route. The ``standalone``
and ``raft`` providers themselves are reached through their entry points
(``revenge.providers``), like a third party's.
"""

from revenge.election._interface import (
    IElection,
    IElectionHealth,
    IYieldingElection,
    LeadershipChange,
)
from revenge.election._listeners import LeadershipListeners
from revenge.election._raft import RaftTuning
from revenge.election._routes import (
    cluster_status,
    install_cluster_routes,
    install_local_cluster_route,
)

__all__ = [
    "IElection",
    "IElectionHealth",
    "IYieldingElection",
    "LeadershipChange",
    "LeadershipListeners",
    "RaftTuning",
    "cluster_status",
    "install_cluster_routes",
    "install_local_cluster_route",
]
