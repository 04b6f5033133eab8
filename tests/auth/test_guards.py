"""The route guards over a real node: who gets 401, who gets 403."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from revenge.auth import issue_token, require_self_or_admin
from revenge.web import json_body

# route, method, body: every route this issue adds, with a valid request.
ADMIN_ROUTES = [
    ("POST", "/api/v1/users", {"name": "newcomer"}),
    ("DELETE", "/api/v1/users/victim", None),
    ("GET", "/api/v1/activity", None),
]


def _forged(real_token: str) -> list[str]:
    selector_part = real_token[: len("rvg_") + 16]
    return [
        "not-a-token",
        issue_token().token,  # well formed, never issued
        selector_part + "_" + issue_token().token[-43:],  # real selector, wrong verifier
        real_token[:-1] + ("A" if real_token[-1] != "A" else "B"),
    ]


@pytest_twisted.ensureDeferred
async def test_auth_matrix(running_server):
    alice = await running_server.add_user("alice")
    await running_server.add_user("victim")
    for method, path, body in ADMIN_ROUTES:

        reply = await running_server.call(method, path, json_body=body)
        assert reply.status == 401, (method, path)
        assert reply.body["error"]["code"] == "unauthorized"
        assert reply.headers.getRawHeaders("WWW-Authenticate")[0].startswith("Bearer")

        for forged in _forged(alice):
            reply = await running_server.call(method, path, token=forged, json_body=body)
            assert reply.status == 401, (method, path, forged)
            assert 'error="invalid_token"' in reply.headers.getRawHeaders("WWW-Authenticate")[0]

        reply = await running_server.call(method, path, token=alice, json_body=body)
        assert reply.status == 403, (method, path)
        assert reply.body["error"]["code"] == "forbidden"

        reply = await running_server.call(
            method, path, token=running_server.admin_token, json_body=body
        )
        assert reply.status in (200, 201, 204), (method, path, reply.body)


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc"],
)
@pytest_twisted.ensureDeferred
async def test_malformed_authorization_is_401(running_server, header):
    reply = await running_server.call(
        "GET", "/api/v1/activity", headers={"Authorization": header}
    )
    assert reply.status == 401
    assert reply.headers.getRawHeaders("WWW-Authenticate")[0].startswith("Bearer")


@pytest_twisted.ensureDeferred
async def test_scheme_is_case_insensitive(running_server):
    reply = await running_server.call(
        "GET",
        "/api/v1/activity",
        headers={"Authorization": f"bearer {running_server.admin_token}"},
    )
    assert reply.status == 200


@pytest_twisted.ensureDeferred
async def test_a_deleted_users_token_stops_working(running_server):
    token = await running_server.add_user("leaver", admin=True)
    assert (await running_server.call("GET", "/api/v1/activity", token=token)).status == 200
    reply = await running_server.call(
        "DELETE", "/api/v1/users/leaver", token=running_server.admin_token
    )
    assert reply.status == 204
    assert (await running_server.call("GET", "/api/v1/activity", token=token)).status == 401


@pytest_twisted.ensureDeferred
async def test_require_self_or_admin(running_server):
    database = running_server.database

    @running_server.server.app.route("/test/users/<name>/private")
    async def private(request: Any, name: str) -> bytes:
        user = await require_self_or_admin(database, request, name)
        return json_body(request, 200, {"as": user.name})

    alice = await running_server.add_user("alice")
    bob = await running_server.add_user("bob")
    path = "/test/users/alice/private"
    assert (await running_server.call("GET", path)).status == 401
    assert (await running_server.call("GET", path, token=bob)).status == 403
    reply = await running_server.call("GET", path, token=alice)
    assert (reply.status, reply.body) == (200, {"as": "alice"})
    reply = await running_server.call("GET", path, token=running_server.admin_token)
    assert (reply.status, reply.body) == (200, {"as": "root"})
