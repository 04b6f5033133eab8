"""``GET /api/v1/cluster`` (docs/design.md, "HTTP API"): this node's view of the election."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from revenge.auth import require_admin
from revenge.election._interface import IElection
from revenge.web import json_body

if TYPE_CHECKING:
    from revenge.db import Database
    from revenge.web import RevengeApp


class EligibilityStatus(Protocol):
    """Whether this node can do the leader's work (revenge.jobs.Eligibility)."""

    def status(self) -> dict[str, Any]: ...


def cluster_status(
    election: IElection, eligibility: EligibilityStatus | None = None
) -> dict[str, Any]:
    """
    The ``/api/v1/cluster`` body. The interface's answers come first; the
    provider's own ``status()`` may restate them (raft does, from one
    snapshot, so that its fields agree with each other) and adds its details;
    then whether this node could lead (``eligible``, ``ineligible_reason``).
    """
    body: dict[str, Any] = {
        "node_id": election.node_id,
        "backend": election.name,
        "is_leader": election.is_leader(),
        "leader": election.leader(),
        "term": election.term(),
    }
    body.update(election.status())
    if eligibility is not None:
        body.update(eligibility.status())
    return body


def install_cluster_routes(
    app: RevengeApp,
    election: IElection,
    database: Database,
    eligibility: EligibilityStatus | None = None,
) -> None:
    @app.route("/api/v1/cluster")
    async def cluster(request: Any) -> bytes:
        await require_admin(database, request)
        return json_body(request, 200, cluster_status(election, eligibility))


def install_local_cluster_route(
    app: RevengeApp, election: IElection, eligibility: EligibilityStatus | None = None
) -> None:
    """
    ``GET /api/v1/cluster`` without a token, for the node's control socket
    only: who may connect to that socket (its file mode, 0600) is the check,
    so that ``revenge cluster status`` works on the node itself without an
    admin token (docs/operations.md, "The control socket").
    """

    @app.route("/api/v1/cluster")
    def cluster(request: Any) -> bytes:
        return json_body(request, 200, cluster_status(election, eligibility))
