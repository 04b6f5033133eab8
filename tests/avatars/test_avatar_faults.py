"""
The database step of an upload failing: before COMMIT (the new object is
deleted, the old avatar stays), at COMMIT (the database decides), and for real
with PostgreSQL cut off behind a TcpProxy after the object is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from revenge.db import DatabaseUnavailable
from revenge.testing import TcpProxy, start_in_process_node

from .helpers import GIF, PNG, AvatarNode, s3_settings

AVATAR = "/api/v1/users/{}/avatar"


async def _with_first_avatar(node: AvatarNode, name: str) -> tuple[str, str]:
    token = await node.add_user(name)
    reply = await node.put_avatar(name, token, PNG)
    assert reply.status == 201
    return token, reply.body["key"]


@pytest_twisted.ensureDeferred
async def test_database_failing_before_commit_keeps_the_old_avatar_and_no_orphan(
    avatar_node, monkeypatch, captured_log
):
    token, old = await _with_first_avatar(avatar_node, "alice")
    database = avatar_node.running.database

    async def refused(work: Any) -> Any:
        raise DatabaseUnavailable("injected: connection refused")

    monkeypatch.setattr(database, "write", refused)
    reply = await avatar_node.put_avatar(
        "alice", token, GIF, content_type="image/gif", **{"X-Request-ID": "db-down"}
    )
    monkeypatch.undo()
    assert reply.status == 503
    assert reply.body["error"]["code"] == "database_unavailable"
    assert reply.body["error"]["request_id"] == "db-down"
    assert await avatar_node.avatar_key("alice") == old
    # The new object was stored first, then deleted when its pointer could not be written.
    assert await avatar_node.stored_keys() == [old]
    response = await treq.get(avatar_node.url + AVATAR.format("alice"))
    assert await treq.content(response) == PNG


@pytest_twisted.ensureDeferred
async def test_a_commit_whose_answer_was_lost_is_found_to_have_happened(
    avatar_node, monkeypatch
):
    token, old = await _with_first_avatar(avatar_node, "bob")
    database = avatar_node.running.database
    write = database.write

    async def committed_but_lost(work: Any) -> Any:
        await write(work)
        raise DatabaseUnavailable("injected: connection lost during COMMIT")

    monkeypatch.setattr(database, "write", committed_but_lost)
    reply = await avatar_node.put_avatar("bob", token, GIF, content_type="image/gif")
    monkeypatch.undo()
    # The database says the pointer moved: a success, finished as one.
    assert reply.status == 201
    new = reply.body["key"]
    assert await avatar_node.avatar_key("bob") == new
    assert await avatar_node.stored_keys() == [new]


@pytest_twisted.ensureDeferred
async def test_an_unknowable_commit_keeps_the_new_object(avatar_node, monkeypatch):
    token, old = await _with_first_avatar(avatar_node, "carol")
    database = avatar_node.running.database
    write = database.write
    read = database.read
    gone = []

    async def committed_then_down(work: Any) -> Any:
        await write(work)
        gone.append(True)
        raise DatabaseUnavailable("injected: connection lost during COMMIT")

    async def read_unless_down(work: Any) -> Any:
        if gone:
            raise DatabaseUnavailable("injected: still down")
        return await read(work)

    monkeypatch.setattr(database, "write", committed_then_down)
    monkeypatch.setattr(database, "read", read_unless_down)
    reply = await avatar_node.put_avatar("carol", token, GIF, content_type="image/gif")
    monkeypatch.undo()
    assert reply.status == 503
    # The commit did happen; deleting the new object on a guess would have
    # left carol pointing at nothing. Both objects remain (the sweep decides).
    new = await avatar_node.avatar_key("carol")
    assert new != old
    assert sorted([old, new]) == await avatar_node.stored_keys()
    response = await treq.get(avatar_node.url + AVATAR.format("carol"))
    assert await treq.content(response) == GIF


@pytest_twisted.ensureDeferred
async def test_a_user_deleted_during_the_upload_leaves_no_object(avatar_node, monkeypatch):
    token = await avatar_node.add_user("dave")
    provider = avatar_node.server.storage.provider
    store = provider.store

    def store_then_delete_user(key: str, body: Any, content_type: str, length: Any = None) -> Any:
        async def delete_user(result: Any) -> Any:
            reply = await avatar_node.call(
                "DELETE", "/api/v1/users/dave", token=avatar_node.admin_token
            )
            assert reply.status == 204
            return result

        from twisted.internet.defer import ensureDeferred

        return store(key, body, content_type, length).addCallback(
            lambda result: ensureDeferred(delete_user(result))
        )

    monkeypatch.setattr(provider, "store", store_then_delete_user)
    reply = await avatar_node.put_avatar("dave", token, PNG)
    assert reply.status == 404
    assert await avatar_node.stored_keys() == []


# -- PostgreSQL really gone ------------------------------------------------------


@pytest_twisted.async_yield_fixture(params=["local", "s3"])
async def node_behind_a_database_proxy(
    request: pytest.FixtureRequest, postgres_server: Any, tmp_path: Path
) -> AsyncIterator[tuple[AvatarNode, TcpProxy]]:
    """A node whose PostgreSQL connections go through a TcpProxy the test can cut."""
    from sqlalchemy import make_url

    database = postgres_server.create_database()
    proxy = TcpProxy(postgres_server.host, postgres_server.port).start()
    url = make_url(database).set(host="127.0.0.1", port=proxy.port)
    settings: dict[str, str] = {}
    s3 = bucket = None
    if request.param == "s3":
        s3 = request.getfixturevalue("avatar_moto")
        bucket = await deferToThread(s3.make_bucket)
        settings = s3_settings(s3, bucket, s3.endpoint)
    try:
        running = await start_in_process_node(
            tmp_path, url.render_as_string(hide_password=False), settings
        )
        try:
            yield (
                AvatarNode(running, request.param, tmp_path / "data" / "storage", s3, bucket),
                proxy,
            )
        finally:
            proxy.restore()
            await running.server.service.stopService()
    finally:
        proxy.cut()
        if s3 is not None:
            await deferToThread(s3.remove_bucket, bucket)


@pytest_twisted.ensureDeferred
async def test_postgresql_gone_after_the_object_is_stored(
    node_behind_a_database_proxy, monkeypatch
):
    node, proxy = node_behind_a_database_proxy
    token, old = await _with_first_avatar(node, "erin")
    provider = node.server.storage.provider
    store = provider.store
    stored: list[str] = []

    def store_then_lose_the_database(
        key: str, body: Any, content_type: str, length: Any = None
    ) -> Any:
        def cut(result: Any) -> Any:
            stored.append(key)
            proxy.cut()
            return result

        return store(key, body, content_type, length).addCallback(cut)

    monkeypatch.setattr(provider, "store", store_then_lose_the_database)
    reply = await node.put_avatar("erin", token, GIF, content_type="image/gif")
    monkeypatch.undo()
    assert reply.status == 503
    assert reply.body["error"]["code"] == "database_unavailable"
    # The new object was stored, and deleted again once the pointer failed.
    assert len(stored) == 1
    assert await node.stored_keys() == [old]
    proxy.restore()
    assert await node.avatar_key("erin") == old
    response = await treq.get(node.url + AVATAR.format("erin"))
    assert response.code == 200
    assert await treq.content(response) == PNG
