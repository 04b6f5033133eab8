"""``GET /api/v1/cluster`` on a whole in-process node (standalone election)."""

from __future__ import annotations

from typing import Any

import pytest_twisted


@pytest_twisted.ensureDeferred
async def test_an_admin_reads_the_election(running_server: Any) -> None:
    reply = await running_server.call("GET", "/api/v1/cluster", token=running_server.admin_token)
    assert reply.status == 200
    assert reply.body == {
        "node_id": "test-node",
        "backend": "standalone",
        "is_leader": True,
        "leader": "test-node",
        "term": 1,
        "peers": [],
        "has_quorum": True,
        "eligible": True,
        "ineligible_reason": None,
    }


@pytest_twisted.ensureDeferred
async def test_only_admins_may(running_server: Any) -> None:
    anonymous = await running_server.call("GET", "/api/v1/cluster")
    assert anonymous.status == 401
    token = await running_server.add_user("viewer")
    user = await running_server.call("GET", "/api/v1/cluster", token=token)
    assert user.status == 403
    assert "is_leader" not in str(user.body)
