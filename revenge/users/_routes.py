"""``POST /api/v1/users`` and ``DELETE /api/v1/users/<name>`` (docs/design.md, "HTTP API")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from revenge.auth import require_admin
from revenge.users._store import (
    USER_NAME_RULE,
    UserExists,
    create_user,
    delete_user,
    is_valid_user_name,
)
from revenge.web import ApiError, ClientJSONError, json_body, loads_client_json

if TYPE_CHECKING:
    from revenge.db import Database
    from revenge.web import RevengeApp

_log = Logger(namespace="revenge.users")

# What becomes of a deleted user's avatar object: (user name, storage key).
AvatarRemover = Callable[[str, str], Awaitable[None]]

# A user is a name and a flag; anything bigger is not a request for one.
MAX_BODY_BYTES = 16 * 1024
_FIELDS = {"name", "admin"}


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def read_new_user(request: Any) -> tuple[str, bool]:
    """The ``name`` and ``admin`` of a create-user body, or a 400 saying what is wrong."""
    raw = request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        body = loads_client_json(raw)
    except ClientJSONError as error:
        raise _bad_request(f'{error}; send {{"name": "...", "admin": false}}') from None
    if not isinstance(body, dict):
        raise _bad_request('the body must be a JSON object: {"name": "...", "admin": false}')
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad_request(f"unknown field(s): {', '.join(unknown)}; expected name and admin")
    name = body.get("name")
    if not isinstance(name, str):
        raise _bad_request('"name" is required and must be a string')
    if not is_valid_user_name(name):
        raise _bad_request(f'"name" must be {USER_NAME_RULE}')
    admin = body.get("admin", False)
    # bool only: 1 and "true" are not accepted as true.
    if type(admin) is not bool:
        raise _bad_request('"admin" must be true or false')
    return name, admin


def install_user_routes(
    app: RevengeApp, database: Database, remove_avatar: AvatarRemover
) -> None:
    """
    ``POST /api/v1/users`` and ``DELETE /api/v1/users/<name>``. Once a
    deletion has committed, ``remove_avatar`` is given the user's avatar
    object (``revenge.avatars.remove_deleted_users_avatar``, bound to the
    storage by the server: avatars are their package's business).
    """

    @app.route("/api/v1/users", methods=["POST"])
    async def add_user(request: Any) -> bytes:
        admin = await require_admin(database, request)
        name, is_admin = read_new_user(request)
        try:
            created = await database.write(
                lambda connection: create_user(
                    connection,
                    name,
                    is_admin=is_admin,
                    node_id=database.node_id,
                    actor=admin.name,
                    via="api",
                )
            )
        except UserExists:
            raise ApiError(409, "conflict", f"user {name!r} already exists") from None
        _log.info(
            "user {user} created by {actor} (admin: {is_admin})",
            user=name,
            actor=admin.name,
            is_admin=is_admin,
        )
        request.setHeader(b"Cache-Control", b"no-store")
        return json_body(
            request,
            201,
            {"name": created.user.name, "admin": created.user.is_admin, "token": created.token},
        )

    @app.route("/api/v1/users/<name>", methods=["DELETE"])
    async def remove_user(request: Any, name: str) -> bytes:
        admin = await require_admin(database, request)
        if not is_valid_user_name(name):
            raise ApiError(404, "not_found", f"no user {name!r}")
        deleted = await database.write(
            lambda connection: delete_user(
                connection, name, node_id=database.node_id, actor=admin.name, via="api"
            )
        )
        if deleted is None:
            raise ApiError(404, "not_found", f"no user {name!r}")
        _log.info("user {user} deleted by {actor}", user=name, actor=admin.name)
        if deleted.avatar_key is not None:
            await remove_avatar(name, deleted.avatar_key)
        request.setResponseCode(204)
        return b""
