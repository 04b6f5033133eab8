"""Creating and deleting users; each change writes its activity row in the same transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from revenge.activity import record_activity
from revenge.auth import USER_COLUMNS, User, issue_token
from revenge.db import users, utc_now

# Lower case so that "Alice" and "alice" cannot be two people; no leading
# punctuation so names are safe in paths, URLs and storage keys.
USER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
USER_NAME_RULE = (
    "1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
)


class UserExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name!r} already exists")
        self.name = name


def is_valid_user_name(name: str) -> bool:
    return USER_NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class NewUser:
    """A created user and its token, which exists nowhere else: show it once."""

    user: User
    token: str = field(repr=False)


def create_user(
    connection: Connection,
    name: str,
    *,
    is_admin: bool,
    node_id: str,
    actor: str | None,
    via: str,
) -> NewUser:
    """
    Insert a user with a new token and record ``user.created``. Raises
    :class:`UserExists` when the name is taken (the transaction is then unusable:
    let it roll back).
    """
    if not is_valid_user_name(name):
        raise ValueError(f"invalid user name: {USER_NAME_RULE}")
    issued = issue_token()
    try:
        user_id = connection.execute(
            insert(users).values(
                name=name,
                is_admin=is_admin,
                token_selector=issued.selector,
                token_verifier_hash=issued.verifier_hash,
                created_at=utc_now(),
                avatar_key=None,
            )
        ).inserted_primary_key
    except IntegrityError:
        raise UserExists(name) from None
    assert user_id is not None
    record_activity(
        connection,
        action="user.created",
        node_id=node_id,
        actor=actor,
        target=name,
        details={"admin": is_admin, "via": via},
    )
    user = find_user(connection, name)
    assert user is not None and user.id == user_id[0]
    return NewUser(user, issued.token)


def find_user(connection: Connection, name: str) -> User | None:
    row = connection.execute(select(*USER_COLUMNS).where(users.c.name == name)).one_or_none()
    return None if row is None else User.from_row(row)


def has_admin(connection: Connection) -> bool:
    """Whether any user is an administrator."""
    found = connection.execute(select(users.c.id).where(users.c.is_admin).limit(1)).first()
    return found is not None


def list_users(connection: Connection) -> list[User]:
    """Every user, by name."""
    rows = connection.execute(select(*USER_COLUMNS).order_by(users.c.name)).all()
    return [User.from_row(row) for row in rows]


def rotate_token(
    connection: Connection, name: str, *, node_id: str, actor: str | None, via: str
) -> NewUser | None:
    """
    Give the user called ``name`` a new token and record
    ``user.token_rotated``: the old one stops working as this commits. None
    when there is no such user.
    """
    user = find_user(connection, name)
    if user is None:
        return None
    issued = issue_token()
    connection.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(token_selector=issued.selector, token_verifier_hash=issued.verifier_hash)
    )
    record_activity(
        connection,
        action="user.token_rotated",
        node_id=node_id,
        actor=actor,
        target=name,
        details={"via": via},
    )
    return NewUser(user, issued.token)


def delete_user(
    connection: Connection, name: str, *, node_id: str, actor: str | None, via: str
) -> User | None:
    """
    Delete the user called ``name`` and record ``user.deleted``; returns the
    deleted user (its ``avatar_key`` is for the caller to remove from storage
    once this transaction has committed), or None when there was none.
    """
    user = find_user(connection, name)
    if user is None:
        return None
    connection.execute(delete(users).where(users.c.id == user.id))
    record_activity(
        connection,
        action="user.deleted",
        node_id=node_id,
        actor=actor,
        target=name,
        details={"via": via, "avatar_key": user.avatar_key},
    )
    return user
