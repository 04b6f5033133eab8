"""Who a request is: users as the auth helpers see them, found by token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from revenge.auth._tokens import parse_token, verifier_matches
from revenge.db import users


@dataclass(frozen=True)
class User:
    """A user row, without its token columns."""

    id: int
    name: str
    is_admin: bool
    created_at: datetime
    avatar_key: str | None

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(
            id=row.id,
            name=row.name,
            is_admin=bool(row.is_admin),
            created_at=row.created_at,
            avatar_key=row.avatar_key,
        )


USER_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.is_admin,
    users.c.created_at,
    users.c.avatar_key,
)


def find_user_by_token(connection: Connection, token: str) -> User | None:
    """The user ``token`` belongs to, or None for anything else."""
    parts = parse_token(token)
    if parts is None:
        return None
    row = connection.execute(
        select(*USER_COLUMNS, users.c.token_verifier_hash).where(
            users.c.token_selector == parts.selector
        )
    ).one_or_none()
    stored_hash = None if row is None else row.token_verifier_hash
    if not verifier_matches(parts.verifier, stored_hash):
        return None
    return User.from_row(row)
