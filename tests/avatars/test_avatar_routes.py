"""
PUT, GET/HEAD and DELETE /api/v1/users/<name>/avatar against a whole node,
with local and s3 storage over SQLite and PostgreSQL; what is stored is
checked directly (files, or the bucket through botocore).
"""

from __future__ import annotations

import json
import socket

import pytest
import pytest_twisted
import treq
from sqlalchemy import select
from twisted.internet.threads import deferToThread

from revenge.db import activity
from revenge.testing import eventually
from revenge.testing.s3 import MOTO_ACCESS_KEY, MOTO_SECRET_KEY

from .helpers import AVATAR_CAP, DEADLINE_S, GIF, JPEG, PNG, WEBP, AvatarNode

AVATAR = "/api/v1/users/{}/avatar"


async def _activity(node: AvatarNode, action: str) -> list[dict]:
    rows = await node.running.database.read(
        lambda connection: connection.execute(
            select(activity).where(activity.c.action == action).order_by(activity.c.id)
        ).all()
    )
    return [row._asdict() for row in rows]


def _avatar_keys(keys: list[str]) -> list[str]:
    return [key for key in keys if key.startswith("avatars/")]


# -- PUT -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_upload_stores_the_object_then_points_the_user_at_it(avatar_node):
    token = await avatar_node.add_user("alice")
    reply = await avatar_node.put_avatar(
        "alice", token, PNG, **{"X-Request-ID": "upload-1"}
    )
    assert reply.status == 201
    key = reply.body["key"]
    assert key.startswith("avatars/alice/")
    assert len(key.rsplit("/", 1)[1]) == 32
    assert reply.body["url"] == AVATAR.format("alice")
    assert reply.body["etag"] == '"' + key.rsplit("/", 1)[1] + '"'
    assert reply.headers.getRawHeaders("Location") == [AVATAR.format("alice")]
    assert await avatar_node.avatar_key("alice") == key
    assert await avatar_node.stored_keys() == [key]
    assert await avatar_node.stored_bytes(key) == PNG
    (row,) = await _activity(avatar_node, "avatar.set")
    assert row["actor"] == "alice"
    assert row["target"] == "alice"
    assert row["request_id"] == "upload-1"
    assert row["details"]["key"] == key
    assert row["details"]["previous_key"] is None
    assert row["details"]["content_type"] == "image/png"
    assert row["details"]["length"] == len(PNG)


@pytest_twisted.ensureDeferred
async def test_replacing_deletes_the_old_object_after_moving_the_pointer(avatar_node):
    token = await avatar_node.add_user("bob")
    first = (await avatar_node.put_avatar("bob", token, PNG)).body["key"]
    reply = await avatar_node.put_avatar("bob", token, GIF, content_type="image/gif")
    assert reply.status == 201
    second = reply.body["key"]
    assert second != first
    assert await avatar_node.avatar_key("bob") == second
    assert await avatar_node.stored_keys() == [second]
    rows = await _activity(avatar_node, "avatar.set")
    assert rows[-1]["details"]["previous_key"] == first
    response = await treq.get(avatar_node.url + AVATAR.format("bob"))
    assert response.code == 200
    assert await treq.content(response) == GIF


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
@pytest_twisted.ensureDeferred
async def test_each_accepted_type_round_trips(avatar_node, data, content_type):
    token = await avatar_node.add_user("carol")
    # Parameters and case in the declared type do not matter.
    reply = await avatar_node.put_avatar(
        "carol", token, data, content_type=content_type.upper() + "; charset=binary"
    )
    assert reply.status == 201
    response = await treq.get(avatar_node.url + AVATAR.format("carol"))
    assert response.code == 200
    assert response.headers.getRawHeaders("Content-Type") == [content_type]
    assert await treq.content(response) == data


@pytest_twisted.ensureDeferred
async def test_an_admin_may_set_anyones_avatar(avatar_node):
    await avatar_node.add_user("dave")
    reply = await avatar_node.put_avatar("dave", avatar_node.admin_token, PNG)
    assert reply.status == 201
    (row,) = await _activity(avatar_node, "avatar.set")
    assert row["actor"] == "root"
    assert row["target"] == "dave"


@pytest_twisted.ensureDeferred
async def test_upload_needs_a_token_and_the_right_user(avatar_node):
    await avatar_node.add_user("erin")
    mallory = await avatar_node.add_user("mallory")
    reply = await avatar_node.call(
        "PUT", AVATAR.format("erin"), data=PNG, headers={"Content-Type": "image/png"}
    )
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"
    reply = await avatar_node.put_avatar("erin", mallory, PNG)
    assert reply.status == 403
    assert reply.body["error"]["code"] == "forbidden"
    assert await avatar_node.avatar_key("erin") is None
    assert await avatar_node.stored_keys() == []


@pytest_twisted.ensureDeferred
async def test_upload_for_an_unknown_user_is_404_and_stores_nothing(avatar_node):
    reply = await avatar_node.put_avatar("nobody", avatar_node.admin_token, PNG)
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"
    assert await avatar_node.stored_keys() == []


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png", "not a PNG, JPEG, GIF or WebP"),
        (b"GIF87", "image/gif", "not a PNG, JPEG, GIF or WebP"),  # one byte short
        (b"", "image/png", "not a PNG, JPEG, GIF or WebP"),
        (PNG, "image/jpeg", "the body is image/png, not the declared image/jpeg"),
        (WEBP, "image/gif", "the body is image/webp, not the declared image/gif"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "Content-Type image/png"),
        (PNG, "application/octet-stream", "Content-Type image/png"),
        (PNG, "", "Content-Type image/png"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_415_unless_the_bytes_are_an_accepted_image_of_the_declared_type(
    avatar_node, data, content_type, message
):
    token = await avatar_node.add_user("frank")
    headers = {"Content-Type": content_type} if content_type else {}
    reply = await avatar_node.call(
        "PUT", AVATAR.format("frank"), token=token, data=data, headers=headers
    )
    assert reply.status == 415
    assert reply.body["error"]["code"] == "unsupported_media_type"
    assert message in reply.body["error"]["message"]
    assert await avatar_node.avatar_key("frank") is None
    assert await avatar_node.stored_keys() == []


@pytest_twisted.ensureDeferred
async def test_413_by_content_length_before_the_body_is_read(avatar_node, captured_log):
    token = await avatar_node.add_user("gina")
    port = int(avatar_node.url.rsplit(":", 1)[1])
    head = (
        f"PUT {AVATAR.format('gina')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: image/png\r\nContent-Length: {AVATAR_CAP + 1}\r\n"
        "X-Request-ID: avatar-413\r\n\r\n"
    ).encode()
    # The headers alone: the answer cannot be waiting for a body never sent.
    status, headers, body = await deferToThread(_exchange, port, head)
    assert status == 413
    assert headers["x-request-id"] == "avatar-413"
    assert json.loads(body)["error"] == {
        "code": "too_large",
        "message": f"the request body is over the {AVATAR_CAP} bytes this route accepts",
        "request_id": "avatar-413",
    }
    (line,) = captured_log.matching(namespace="revenge.access", request_id="avatar-413")
    assert line["status"] == 413
    assert line["route"] == "/api/v1/users/<name>/avatar"
    assert await avatar_node.stored_keys() == []
    # And through an ordinary client that sends the whole body.
    reply = await avatar_node.put_avatar("gina", token, PNG + b"\0" * AVATAR_CAP)
    assert reply.status == 413
    assert await avatar_node.avatar_key("gina") is None
    assert await avatar_node.stored_keys() == []


@pytest_twisted.ensureDeferred
async def test_413_while_a_chunked_body_streams_in(avatar_node):
    token = await avatar_node.add_user("hank")
    port = int(avatar_node.url.rsplit(":", 1)[1])
    head = (
        f"PUT {AVATAR.format('hank')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = PNG + b"\0" * (AVATAR_CAP // 2)
    # Over the cap, and never finished: only counting as bytes arrive can refuse it.
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3))
    status, headers, payload = await deferToThread(_exchange, port, head + body)
    assert status == 413
    assert json.loads(payload)["error"]["code"] == "too_large"
    assert await avatar_node.avatar_key("hank") is None
    assert await avatar_node.stored_keys() == []


@pytest_twisted.ensureDeferred
async def test_a_chunked_upload_under_the_cap_is_accepted(avatar_node):
    token = await avatar_node.add_user("ivy")
    port = int(avatar_node.url.rsplit(":", 1)[1])
    head = (
        f"PUT {AVATAR.format('ivy')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(JPEG), JPEG)
    status, _, payload = await deferToThread(_exchange, port, head + body)
    assert status == 201
    key = json.loads(payload)["key"]
    assert await avatar_node.stored_bytes(key) == JPEG


@pytest_twisted.ensureDeferred
async def test_a_client_that_disconnects_mid_upload_stores_nothing(avatar_node, captured_log):
    token = await avatar_node.add_user("jack")
    port = int(avatar_node.url.rsplit(":", 1)[1])

    def upload_half_and_leave() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(
                (
                    f"PUT {AVATAR.format('jack')} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: image/png\r\n"
                    f"Content-Length: {AVATAR_CAP - 1}\r\nX-Request-ID: half-upload\r\n\r\n"
                ).encode()
                + PNG
            )

    await deferToThread(upload_half_and_leave)
    (line,) = await eventually(
        lambda: captured_log.matching(namespace="revenge.access", request_id="half-upload"),
        "the access log line of the abandoned upload",
        timeout=DEADLINE_S,
    )
    assert line["aborted"] is True
    assert await avatar_node.avatar_key("jack") is None
    assert await avatar_node.stored_keys() == []
    assert await _activity(avatar_node, "avatar.set") == []


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as connection:
        connection.sendall(request)
        received = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return int(lines[0].split(" ")[1]), headers, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


# -- GET / HEAD ---------------------------------------------------------------


def _port(node: AvatarNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


def _get(node: AvatarNode, name: str, method: str = "GET", extra: str = "") -> bytes:
    return (
        f"{method} {AVATAR.format(name)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    ).encode()


@pytest_twisted.ensureDeferred
async def test_get_streams_the_avatar_with_its_headers(avatar_node):
    token = await avatar_node.add_user("kate")
    etag = (await avatar_node.put_avatar("kate", token, WEBP, content_type="image/webp")).body[
        "etag"
    ]
    # Anyone may look: no token. A raw client, to see the headers as sent.
    status, headers, body = await deferToThread(
        _exchange, _port(avatar_node), _get(avatar_node, "kate")
    )
    assert status == 200
    assert body == WEBP
    assert headers["content-type"] == "image/webp"
    assert headers["content-length"] == str(len(WEBP))
    assert "transfer-encoding" not in headers
    assert headers["etag"] == etag
    assert headers["cache-control"] == "public, no-cache"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'none'; sandbox"
    response = await treq.get(avatar_node.url + AVATAR.format("kate"))
    assert response.code == 200
    assert await treq.content(response) == WEBP


@pytest_twisted.ensureDeferred
async def test_head_has_the_headers_and_no_body(avatar_node):
    token = await avatar_node.add_user("liam")
    etag = (await avatar_node.put_avatar("liam", token, PNG)).body["etag"]
    status, headers, body = await deferToThread(
        _exchange, _port(avatar_node), _get(avatar_node, "liam", method="HEAD")
    )
    assert status == 200
    assert body == b""
    assert headers["content-length"] == str(len(PNG))
    assert headers["etag"] == etag
    assert headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "if_none_match", ["{etag}", "W/{etag}", '"other", {etag}', "*"]
)
@pytest_twisted.ensureDeferred
async def test_304_when_the_client_has_this_version(avatar_node, if_none_match):
    token = await avatar_node.add_user("mia")
    etag = (await avatar_node.put_avatar("mia", token, PNG)).body["etag"]
    response = await treq.get(
        avatar_node.url + AVATAR.format("mia"),
        headers={"If-None-Match": if_none_match.format(etag=etag)},
    )
    assert response.code == 304
    assert await treq.content(response) == b""
    assert response.headers.getRawHeaders("ETag") == [etag]
    assert response.headers.getRawHeaders("Cache-Control") == ["public, no-cache"]


@pytest_twisted.ensureDeferred
async def test_200_when_the_clients_version_is_stale(avatar_node):
    token = await avatar_node.add_user("noah")
    old = (await avatar_node.put_avatar("noah", token, PNG)).body["etag"]
    new = (await avatar_node.put_avatar("noah", token, GIF, content_type="image/gif")).body["etag"]
    response = await treq.get(
        avatar_node.url + AVATAR.format("noah"), headers={"If-None-Match": old}
    )
    assert response.code == 200
    assert response.headers.getRawHeaders("ETag") == [new]
    assert await treq.content(response) == GIF


@pytest_twisted.ensureDeferred
async def test_404_without_an_avatar_or_a_user_is_the_same_answer(avatar_node):
    # The GET is public: a different message for a missing user would tell
    # anyone which accounts exist.
    await avatar_node.add_user("olga")
    for name, message in (("olga", "no avatar for 'olga'"), ("ghost", "no avatar for 'ghost'")):
        reply = await avatar_node.call(
            "GET", AVATAR.format(name), headers={"X-Request-ID": f"nf-{name}"}
        )
        assert reply.status == 404
        assert reply.body["error"] == {
            "code": "not_found",
            "message": message,
            "request_id": f"nf-{name}",
        }
        assert reply.headers.getRawHeaders("ETag") is None


# -- DELETE --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_delete_clears_the_pointer_then_deletes_the_object(avatar_node):
    token = await avatar_node.add_user("paul")
    key = (await avatar_node.put_avatar("paul", token, PNG)).body["key"]
    reply = await avatar_node.call(
        "DELETE", AVATAR.format("paul"), token=token, headers={"X-Request-ID": "rm-1"}
    )
    assert reply.status == 204
    assert reply.body is None
    assert await avatar_node.avatar_key("paul") is None
    assert await avatar_node.stored_keys() == []
    (row,) = await _activity(avatar_node, "avatar.removed")
    assert row["actor"] == "paul"
    assert row["target"] == "paul"
    assert row["request_id"] == "rm-1"
    assert row["details"] == {"key": key}
    assert (await avatar_node.call("GET", AVATAR.format("paul"))).status == 404
    # Idempotent: again is 204, and changes (and records) nothing.
    reply = await avatar_node.call("DELETE", AVATAR.format("paul"), token=token)
    assert reply.status == 204
    assert len(await _activity(avatar_node, "avatar.removed")) == 1


@pytest_twisted.ensureDeferred
async def test_delete_needs_the_user_or_an_admin(avatar_node):
    token = await avatar_node.add_user("quinn")
    other = await avatar_node.add_user("rita")
    key = (await avatar_node.put_avatar("quinn", token, PNG)).body["key"]
    assert (await avatar_node.call("DELETE", AVATAR.format("quinn"))).status == 401
    assert (await avatar_node.call("DELETE", AVATAR.format("quinn"), token=other)).status == 403
    assert await avatar_node.stored_keys() == [key]
    reply = await avatar_node.call(
        "DELETE", AVATAR.format("quinn"), token=avatar_node.admin_token
    )
    assert reply.status == 204
    assert await avatar_node.stored_keys() == []
    reply = await avatar_node.call(
        "DELETE", AVATAR.format("ghost"), token=avatar_node.admin_token
    )
    assert reply.status == 404


@pytest_twisted.ensureDeferred
async def test_deleting_the_user_deletes_the_avatar_object(avatar_node):
    token = await avatar_node.add_user("sam")
    await avatar_node.put_avatar("sam", token, PNG)
    reply = await avatar_node.call(
        "DELETE", "/api/v1/users/sam", token=avatar_node.admin_token
    )
    assert reply.status == 204
    assert await avatar_node.stored_keys() == []


# -- Storage down --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_storage_down_is_503_and_changes_nothing(avatar_node, captured_log):
    token = await avatar_node.add_user("tina")
    key = (await avatar_node.put_avatar("tina", token, PNG)).body["key"]
    avatar_node.cut_storage()
    try:
        reply = await avatar_node.put_avatar(
            "tina", token, GIF, content_type="image/gif", **{"X-Request-ID": "s3-down-put"}
        )
        assert reply.status == 503
        assert reply.body["error"] == {
            "code": "storage_unavailable",
            "message": "storage is unavailable; try again shortly",
            "request_id": "s3-down-put",
        }
        reply = await avatar_node.call(
            "GET", AVATAR.format("tina"), headers={"X-Request-ID": "s3-down-get"}
        )
        assert reply.status == 503
        assert reply.body["error"]["code"] == "storage_unavailable"
        assert reply.body["error"]["request_id"] == "s3-down-get"
        assert (await avatar_node.call("GET", "/healthz")).status == 200
        readiness = await avatar_node.call("GET", "/readyz")
        assert readiness.status == 503
        assert readiness.body["failing"] == ["storage"]
    finally:
        avatar_node.restore_storage()
    # Nothing half-written: the old avatar is still the avatar, and the only object.
    assert await avatar_node.avatar_key("tina") == key
    assert await avatar_node.stored_keys() == [key]
    response = await treq.get(avatar_node.url + AVATAR.format("tina"))
    assert await treq.content(response) == PNG
    logged = json.dumps(captured_log.records, default=str)
    for secret in (MOTO_SECRET_KEY, MOTO_ACCESS_KEY, token):
        assert secret not in logged
    warning = [
        r
        for r in captured_log.matching(request_id="s3-down-put")
        if "storage failed to store avatar" in r["message"]
    ]
    assert len(warning) == 1


@pytest_twisted.ensureDeferred
async def test_a_failed_delete_of_the_old_object_is_logged_and_harmless(
    avatar_node, captured_log, monkeypatch
):
    from twisted.internet.defer import fail

    from revenge.storage import StorageError

    token = await avatar_node.add_user("uma")
    first = (await avatar_node.put_avatar("uma", token, PNG)).body["key"]
    monkeypatch.setattr(
        avatar_node.server.storage.provider,
        "delete",
        lambda key: fail(StorageError("injected: delete refused")),
    )
    reply = await avatar_node.put_avatar(
        "uma", token, GIF, content_type="image/gif", **{"X-Request-ID": "old-stays"}
    )
    assert reply.status == 201
    second = reply.body["key"]
    assert await avatar_node.avatar_key("uma") == second
    # The old object is left for the orphan sweep; the user never points at nothing.
    assert await avatar_node.stored_keys() == sorted([first, second])
    (line,) = [
        r
        for r in captured_log.matching(request_id="old-stays")
        if "could not delete the avatar it replaced" in r["message"]
    ]
    assert first in line["message"]
