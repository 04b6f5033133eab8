"""POST /api/v1/users and DELETE /api/v1/users/<name>."""

from __future__ import annotations

import io

import pytest_twisted
from sqlalchemy import select, update
from twisted.internet.defer import fail

from revenge.auth._tokens import parse_token
from revenge.db import users
from revenge.storage import StorageError
from revenge.users._routes import MAX_BODY_BYTES


@pytest_twisted.ensureDeferred
async def test_create_returns_a_working_token_once(running_server):
    reply = await running_server.call(
        "POST",
        "/api/v1/users",
        token=running_server.admin_token,
        json_body={"name": "alice", "admin": False},
    )
    assert reply.status == 201
    assert reply.body["name"] == "alice"
    assert reply.body["admin"] is False
    assert reply.headers.getRawHeaders("Cache-Control") == ["no-store"]
    token = reply.body["token"]
    # Authenticated (not 401) but not an admin (403): the token is alice's.
    assert (await running_server.call("GET", "/api/v1/activity", token=token)).status == 403

    reply = await running_server.call(
        "POST",
        "/api/v1/users",
        token=running_server.admin_token,
        json_body={"name": "boss", "admin": True},
    )
    assert reply.status == 201
    assert reply.body["admin"] is True
    boss = reply.body["token"]
    assert (await running_server.call("GET", "/api/v1/activity", token=boss)).status == 200


@pytest_twisted.ensureDeferred
async def test_tokens_are_stored_only_hashed(running_server):
    reply = await running_server.call(
        "POST", "/api/v1/users", token=running_server.admin_token, json_body={"name": "carol"}
    )
    token = reply.body["token"]
    parts = parse_token(token)
    assert parts is not None
    verifier = parts.verifier
    rows = await running_server.database.read(
        lambda connection: [tuple(row) for row in connection.execute(select(users))]
    )
    stored = " ".join(str(value) for row in rows for value in row)
    assert "carol" in stored
    assert token not in stored
    assert verifier not in stored


@pytest_twisted.ensureDeferred
async def test_a_taken_name_is_409(running_server):
    admin = running_server.admin_token
    body = {"name": "dup"}
    first = await running_server.call("POST", "/api/v1/users", token=admin, json_body=body)
    assert first.status == 201
    reply = await running_server.call("POST", "/api/v1/users", token=admin, json_body=body)
    assert reply.status == 409
    assert reply.body["error"]["code"] == "conflict"
    assert "dup" in reply.body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_bad_bodies_are_400_with_a_message(running_server):
    cases = [
        (b"{not json", "JSON"),
        (b"", "JSON"),
        (b"\xff\xfe", "JSON"),
        (b'["alice"]', "object"),
        (b'{"admin": true}', "name"),
        (b'{"name": 7}', "name"),
        (b'{"name": null}', "name"),
        (b'{"name": ""}', "name"),
        (b'{"name": "Alice"}', "name"),
        (b'{"name": "al ice"}', "name"),
        (b'{"name": "-alice"}', "name"),
        (b'{"name": "../etc"}', "name"),
        (b'{"name": "' + b"a" * 65 + b'"}', "name"),
        (b'{"name": "alice", "admin": "yes"}', "admin"),
        (b'{"name": "alice", "admin": 1}', "admin"),
        (b'{"name": "alice", "admn": true}', "admn"),
        # Hostile shapes (issue 14): a RecursionError and a 4300-digit int()
        # used to be 500s.
        (b"[" * 5000, "nested deeper than 32"),
        (b'{"name": "alice", "admin": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),
        (b'{"name": "alice", "admin": ' + b"9" * 5000 + b"}", "digits"),
        (b'{"name": "alice", "admin": NaN}', "NaN"),
    ]
    for body, mentioned in cases:
        reply = await running_server.call(
            "POST", "/api/v1/users", token=running_server.admin_token, data=body
        )
        assert reply.status == 400, body
        assert reply.body["error"]["code"] == "bad_request"
        assert mentioned in reply.body["error"]["message"], (body, reply.body)
    # None of them created anyone.
    names = await running_server.database.read(
        lambda connection: connection.execute(select(users.c.name)).scalars().all()
    )
    assert names == ["root"]


@pytest_twisted.ensureDeferred
async def test_names_at_the_edge_of_the_rule_are_accepted(running_server):
    for name in ["a", "0", "a" * 64, "x.y_z-9"]:
        reply = await running_server.call(
            "POST", "/api/v1/users", token=running_server.admin_token, json_body={"name": name}
        )
        assert reply.status == 201, name


@pytest_twisted.ensureDeferred
async def test_an_oversized_body_is_413(running_server):
    reply = await running_server.call(
        "POST",
        "/api/v1/users",
        token=running_server.admin_token,
        data=b'{"name": "big", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}',
    )
    assert reply.status == 413


@pytest_twisted.ensureDeferred
async def test_delete_then_404(running_server):
    await running_server.add_user("gone")
    admin = running_server.admin_token
    reply = await running_server.call("DELETE", "/api/v1/users/gone", token=admin)
    assert reply.status == 204
    assert reply.body is None
    assert (await running_server.call("DELETE", "/api/v1/users/gone", token=admin)).status == 404
    invalid = await running_server.call("DELETE", "/api/v1/users/Not%20Valid", token=admin)
    assert invalid.status == 404


async def _give_avatar(running_server, name: str, key: str, store: bool = True) -> None:
    if store:
        await running_server.server.storage.store(key, io.BytesIO(b"\x89PNG fake"), "image/png")
    await running_server.database.write(
        lambda connection: connection.execute(
            update(users).where(users.c.name == name).values(avatar_key=key)
        )
    )


@pytest_twisted.ensureDeferred
async def test_delete_removes_the_avatar(running_server):
    storage = running_server.server.storage
    await running_server.add_user("pictured")
    await _give_avatar(running_server, "pictured", "avatars/pictured-1")
    assert await storage.exists("avatars/pictured-1")
    reply = await running_server.call(
        "DELETE", "/api/v1/users/pictured", token=running_server.admin_token
    )
    assert reply.status == 204
    assert not await storage.exists("avatars/pictured-1")


@pytest_twisted.ensureDeferred
async def test_delete_succeeds_when_the_avatar_is_already_gone(running_server):
    await running_server.add_user("pictured")
    await _give_avatar(running_server, "pictured", "avatars/never-stored", store=False)
    reply = await running_server.call(
        "DELETE", "/api/v1/users/pictured", token=running_server.admin_token
    )
    assert reply.status == 204


@pytest_twisted.ensureDeferred
async def test_delete_succeeds_and_logs_when_storage_fails(
    running_server, captured_log, monkeypatch
):
    storage = running_server.server.storage
    await running_server.add_user("pictured")
    await _give_avatar(running_server, "pictured", "avatars/pictured-2")
    monkeypatch.setattr(storage, "delete", lambda key: fail(StorageError("bucket on fire")))
    reply = await running_server.call(
        "DELETE",
        "/api/v1/users/pictured",
        token=running_server.admin_token,
        headers={"X-Request-ID": "delete-avatar-fails"},
    )
    assert reply.status == 204
    (line,) = [
        r
        for r in captured_log.records
        if r.get("request_id") == "delete-avatar-fails" and "could not delete" in r["message"]
    ]
    assert "avatars/pictured-2" in line["message"]
    assert "bucket on fire" in line["message"]
    # The user is gone all the same.
    again = await running_server.call(
        "DELETE", "/api/v1/users/pictured", token=running_server.admin_token
    )
    assert again.status == 404
