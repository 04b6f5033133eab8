"""
Route guards: ``user = await require_user(database, request)`` and friends
answer 401 (no valid token) or 403 (valid, but not allowed) by raising
:class:`ApiError`, so a handler's first line states who may call it.
"""

from __future__ import annotations

from typing import Any

from revenge.auth._users import User, find_user_by_token
from revenge.db import Database
from revenge.web import ApiError

# The user a request authenticated as, cached on the request so that several
# guards in one handler cost one lookup.
_USER_ATTRIBUTE = "_revenge_user"


def _unauthorized(message: str, error: str | None = None) -> ApiError:
    challenge = 'Bearer realm="revenge"'
    if error is not None:
        challenge += f', error="{error}"'
    return ApiError(
        401, "unauthorized", message, headers={b"WWW-Authenticate": challenge.encode("ascii")}
    )


def bearer_token(request: Any) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None without one."""
    values: list[bytes] | None = request.requestHeaders.getRawHeaders(b"Authorization")
    if not values:
        return None
    if len(values) > 1:
        raise _unauthorized("send one Authorization header", "invalid_request")
    header = values[0].decode("latin-1").strip()
    scheme, _, credentials = header.partition(" ")
    # The scheme is case-insensitive (RFC 9110).
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _unauthorized("use Authorization: Bearer <token>", "invalid_request")
    return credentials.strip()


async def authenticate(database: Database, request: Any) -> User | None:
    """
    The user the request's bearer token belongs to; None when it has no
    Authorization header; 401 when it has one that proves nothing.
    """
    cached = getattr(request, _USER_ATTRIBUTE, None)
    if isinstance(cached, User):
        return cached
    token = bearer_token(request)
    if token is None:
        return None
    user = await database.read(lambda connection: find_user_by_token(connection, token))
    if user is None:
        # Says nothing about why: unknown, deleted and forged look alike.
        raise _unauthorized("the token is not valid", "invalid_token")
    setattr(request, _USER_ATTRIBUTE, user)
    return user


async def require_user(database: Database, request: Any) -> User:
    """Any authenticated user, else 401."""
    user = await authenticate(database, request)
    if user is None:
        raise _unauthorized("authentication required: send Authorization: Bearer <token>")
    return user


async def require_user_or_query_token(
    database: Database, request: Any, parameter: bytes = b"token"
) -> User:
    """
    Any authenticated user, from ``Authorization: Bearer`` as everywhere or
    else from the query parameter ``parameter``, for the routes a player's
    ``<video src>`` calls (it cannot send headers); else 401. The access log
    never has the query string, so such a token does not reach it.
    """
    if request.requestHeaders.hasHeader(b"Authorization"):
        return await require_user(database, request)
    tokens: list[bytes] = request.args.get(parameter, [])
    if not tokens:
        return await require_user(database, request)
    cached = getattr(request, _USER_ATTRIBUTE, None)
    if isinstance(cached, User):
        return cached
    if len(tokens) > 1:
        raise _unauthorized(f"send one {parameter.decode('ascii')} parameter", "invalid_request")
    token = tokens[0].decode("utf-8", "replace")
    user = await database.read(lambda connection: find_user_by_token(connection, token))
    if user is None:
        raise _unauthorized("the token is not valid", "invalid_token")
    setattr(request, _USER_ATTRIBUTE, user)
    return user


async def require_admin(database: Database, request: Any) -> User:
    """An administrator, else 401 (not authenticated) or 403."""
    user = await require_user(database, request)
    if not user.is_admin:
        raise ApiError(403, "forbidden", "this needs an administrator")
    return user


async def require_self_or_admin(database: Database, request: Any, name: str) -> User:
    """The user called ``name`` or an administrator, else 401 or 403."""
    user = await require_user(database, request)
    if user.name != name and not user.is_admin:
        raise ApiError(403, "forbidden", "only this user or an administrator may do this")
    return user
