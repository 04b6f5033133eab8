"""
The user's avatar pointer (``users.avatar_key``) and the activity rows that go
with it, each change in the caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from revenge.activity import record_activity
from revenge.db import users

# Every avatar object lives under this prefix, and nothing else does: the
# orphan sweep deletes objects here that no user points to.
AVATAR_KEY_PREFIX = "avatars/"


class NoSuchUser(Exception):
    """The user is not (or no longer) there."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no user {name!r}")
        self.name = name


def new_avatar_key(name: str) -> str:
    """
    A key no object has had: ``avatars/<name>/<32 hex digits>``. A new key per
    upload means an object never changes once written, so the key's random
    part doubles as the ETag and the old object can be deleted after the
    pointer has moved, never while someone may still be sent to it.
    """
    return f"{AVATAR_KEY_PREFIX}{name}/{secrets.token_hex(16)}"


def entity_tag(key: str) -> str:
    """The quoted ETag of the object under ``key`` (its immutable, random last segment)."""
    return '"' + key.rsplit("/", 1)[-1] + '"'


def _lock_user(connection: Connection, name: str) -> tuple[int, str | None]:
    # FOR UPDATE (PostgreSQL): two uploads for one user take turns, so the
    # second sees the first's key as the one it replaces and no object is
    # left behind unpointed. SQLite's write transactions are serial already.
    row = connection.execute(
        select(users.c.id, users.c.avatar_key).where(users.c.name == name).with_for_update()
    ).one_or_none()
    if row is None:
        raise NoSuchUser(name)
    return int(row.id), row.avatar_key


def read_avatar_key(connection: Connection, name: str) -> str | None:
    """The user's avatar key (None: no avatar); raises ``NoSuchUser``."""
    row = connection.execute(
        select(users.c.avatar_key).where(users.c.name == name)
    ).one_or_none()
    if row is None:
        raise NoSuchUser(name)
    key: str | None = row.avatar_key
    return key


def point_avatar_at(
    connection: Connection,
    name: str,
    key: str,
    *,
    node_id: str,
    actor: str,
    details: Mapping[str, Any],
) -> str | None:
    """
    Make ``key`` the user's avatar and record ``avatar.set``; returns the key
    it replaced (for the caller to delete once this transaction has committed).
    """
    user_id, previous = _lock_user(connection, name)
    connection.execute(update(users).where(users.c.id == user_id).values(avatar_key=key))
    record_activity(
        connection,
        action="avatar.set",
        node_id=node_id,
        actor=actor,
        target=name,
        details={**details, "key": key, "previous_key": previous},
    )
    return previous


def clear_avatar(connection: Connection, name: str, *, node_id: str, actor: str) -> str | None:
    """
    Remove the user's avatar pointer and record ``avatar.removed``; returns
    the key it pointed at, or None (and records nothing) when there was none.
    """
    user_id, previous = _lock_user(connection, name)
    if previous is None:
        return None
    connection.execute(update(users).where(users.c.id == user_id).values(avatar_key=None))
    record_activity(
        connection,
        action="avatar.removed",
        node_id=node_id,
        actor=actor,
        target=name,
        details={"key": previous},
    )
    return previous
