"""The activity log: rows carry request and node ids; GET /api/v1/activity pages newest first."""

from __future__ import annotations

import pytest
import pytest_twisted
from sqlalchemy import func, insert, select

from revenge.activity import record_activity
from revenge.activity._record import MAX_LIMIT, list_activity
from revenge.db import activity, utc_now
from revenge.testing import TEST_NODE_ID  # the running_server fixture's node_id


@pytest_twisted.ensureDeferred
async def test_rows_carry_the_request_id_that_wrote_them(running_server):
    admin = running_server.admin_token
    reply = await running_server.call(
        "POST",
        "/api/v1/users",
        token=admin,
        json_body={"name": "traced"},
        headers={"X-Request-ID": "create-traced-1"},
    )
    assert reply.status == 201
    reply = await running_server.call(
        "DELETE", "/api/v1/users/traced", token=admin, headers={"X-Request-ID": "delete-traced-2"}
    )
    assert reply.status == 204

    reply = await running_server.call("GET", "/api/v1/activity", token=admin)
    assert reply.status == 200
    by_request = {row["request_id"]: row for row in reply.body["activity"]}
    created = by_request["create-traced-1"]
    assert created["action"] == "user.created"
    assert created["target"] == "traced"
    assert created["actor"] == "root"
    assert created["node_id"] == TEST_NODE_ID == running_server.server.config.node_id
    assert created["details"] == {"admin": False, "via": "api"}
    assert created["created_at"].endswith("Z")
    deleted = by_request["delete-traced-2"]
    assert (deleted["action"], deleted["target"]) == ("user.deleted", "traced")
    # Nothing secret in the log.
    assert "token" not in str(reply.body["activity"])


@pytest_twisted.ensureDeferred
async def test_an_activity_row_belongs_to_its_transaction(running_server):
    class Abort(Exception):
        pass

    def change_then_fail(connection):
        record_activity(connection, action="test.aborted", node_id=TEST_NODE_ID)
        raise Abort()

    with pytest.raises(Abort):
        await running_server.database.write(change_then_fail)
    rows = await running_server.database.read(lambda connection: list_activity(connection))
    assert "test.aborted" not in {row.action for row in rows}


async def _seed(running_server, count: int) -> list[int]:
    def write(connection):
        return [
            record_activity(
                connection,
                action="test.seeded",
                node_id=TEST_NODE_ID,
                target=str(index),
                request_id=f"seed-{index}",
            )
            for index in range(count)
        ]

    ids: list[int] = await running_server.database.write(write)
    return ids


@pytest_twisted.ensureDeferred
async def test_pages_newest_first_with_a_cursor(running_server):
    ids = await _seed(running_server, 7)
    admin = running_server.admin_token
    seen: list[int] = []
    path = "/api/v1/activity?limit=3"
    pages = 0
    while True:
        reply = await running_server.call("GET", path, token=admin)
        assert reply.status == 200
        pages += 1
        page = [row["id"] for row in reply.body["activity"]]
        assert page == sorted(page, reverse=True)
        assert len(page) <= 3
        seen += page
        if reply.body["next_before"] is None:
            break
        assert reply.body["next_before"] == page[-1]
        path = f"/api/v1/activity?limit=3&before={reply.body['next_before']}"
    # Seven seeded rows plus the admin's own user.created row.
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert set(ids) <= set(seen)
    assert len(seen) == 8


@pytest_twisted.ensureDeferred
async def test_limit_defaults_to_50_and_is_capped(running_server):
    def seed(connection):
        now = utc_now()
        connection.execute(
            insert(activity),
            [
                {"created_at": now, "action": "test.bulk", "node_id": TEST_NODE_ID}
                for _ in range(MAX_LIMIT + 10)
            ],
        )
        return connection.execute(select(func.count()).select_from(activity)).scalar_one()

    total = await running_server.database.write(seed)
    assert total > MAX_LIMIT
    admin = running_server.admin_token
    reply = await running_server.call("GET", "/api/v1/activity", token=admin)
    assert (len(reply.body["activity"]), reply.body["limit"]) == (50, 50)
    reply = await running_server.call("GET", "/api/v1/activity?limit=100000", token=admin)
    assert (len(reply.body["activity"]), reply.body["limit"]) == (MAX_LIMIT, MAX_LIMIT)
    assert reply.body["next_before"] == reply.body["activity"][-1]["id"]


@pytest_twisted.ensureDeferred
async def test_invalid_parameters_are_400(running_server):
    admin = running_server.admin_token
    for query in [
        "limit=0",
        "limit=-1",
        "limit=ten",
        "limit=1.5",
        "limit=",
        "before=abc",
        "before=0",
        "limit=5&limit=6",
    ]:
        reply = await running_server.call("GET", f"/api/v1/activity?{query}", token=admin)
        assert reply.status == 400, query
        assert reply.body["error"]["code"] == "bad_request"


@pytest_twisted.ensureDeferred
async def test_numbers_beyond_any_row_id_mean_every_row(running_server):
    # Found by the API fuzzer: SQLite cannot compare with an integer over 64
    # bits (a 500), and Python refuses to parse one of over 4300 digits.
    admin = running_server.admin_token
    everything = await running_server.call("GET", "/api/v1/activity", token=admin)
    assert everything.status == 200 and everything.body["activity"]
    for huge in ["9223372036854775808", "143575661800038526295284744454144", "9" * 5000]:
        reply = await running_server.call(
            "GET", f"/api/v1/activity?before={huge}&limit={huge}", token=admin
        )
        assert reply.status == 200, huge
        assert reply.body["activity"] == everything.body["activity"]
