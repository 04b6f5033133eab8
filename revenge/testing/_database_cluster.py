"""
Real ``twistd -n revenge`` nodes that share one database, for tests and
benchmarks of election backends that need nothing else between the nodes
(e.g. the ``postgres`` plugin). Each node has its own working directory; one
admin token, made with ``revenge user add`` against the shared database,
reads ``GET /api/v1/cluster`` on every node.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from revenge.testing._cluster import ClusterNode, ProcessCluster, add_admins


class SharedDatabaseCluster(ProcessCluster[ClusterNode]):
    """
    ``size`` nodes on ``database_url`` with ``env`` (the election backend
    and its settings) added to each node's environment; nothing runs until
    :meth:`start`.
    """

    leader_wanted = "one leader that every node names"

    def __init__(
        self,
        root: Path,
        database_url: str,
        size: int = 2,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(root, env)
        self.database_url = database_url
        self.token = ""
        self.nodes = [
            ClusterNode(f"node-{index}", self.root / f"node-{index}") for index in range(size)
        ]

    def node_env(self, node: ClusterNode) -> dict[str, str]:
        return {
            "REVENGE_NODE_ID": node.node_id,
            "REVENGE_DATA_DIR": str(node.workdir / "data"),
            "REVENGE_DATABASE_URL": self.database_url,
            # Rolling restarts behind a balancer are what the linger is for:
            # the real default, not ServerProcess's 0s.
            "REVENGE_SERVER_SHUTDOWN_LINGER": "2s",
            **self.env,
        }

    def make_admin(self) -> str:
        """``revenge user add admin --admin`` on the shared database (migrating it first)."""
        (self.token,) = add_admins(
            [("the shared database", self.root, {"REVENGE_DATABASE_URL": self.database_url})]
        )
        return self.token

    def make_admins(self, nodes: list[ClusterNode]) -> None:
        """One admin for every node, made once: they share its database."""
        if not self.token:
            self.make_admin()

    def admin_token(self, node: ClusterNode) -> str:
        return self.token

    def current_leader(self, among: list[ClusterNode] | None = None) -> ClusterNode | None:
        """Exactly one node of ``among`` leads and all of them name it."""
        return self.agreed_leader(among)
