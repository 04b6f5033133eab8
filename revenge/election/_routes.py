"""``GET /api/v1/cluster`` (DESIGN.md, "HTTP API"): this node's view of the election."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from revenge.auth import require_admin
from revenge.election._interface import IElection
from revenge.web import json_body

if TYPE_CHECKING:
    from revenge.server._server import Server


def cluster_status(election: IElection) -> dict[str, Any]:
    """
    The ``/api/v1/cluster`` body. The interface's answers come first; the
    provider's own ``status()`` may restate them (raft does, from one
    snapshot, so that its fields agree with each other) and adds its details.
    """
    body: dict[str, Any] = {
        "node_id": election.node_id,
        "backend": election.name,
        "is_leader": election.is_leader(),
        "leader": election.leader(),
        "term": election.term(),
    }
    body.update(election.status())
    return body


def install_cluster_routes(server: Server) -> None:
    election = server.election
    database = server.database

    @server.app.route("/api/v1/cluster")
    async def cluster(request: Any) -> bytes:
        await require_admin(database, request)
        return json_body(request, 200, cluster_status(election))
