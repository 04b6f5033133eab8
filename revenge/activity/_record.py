"""Writing and reading the activity log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from revenge.db import activity as activity_table
from revenge.db import utc_now
from revenge.logs import get_request_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class ActivityEntry:
    """One row of the activity log."""

    id: int
    created_at: datetime
    actor: str | None
    action: str
    target: str | None
    request_id: str | None
    node_id: str
    details: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "request_id": self.request_id,
            "node_id": self.node_id,
            "details": self.details,
        }


def record_activity(
    connection: Connection,
    *,
    action: str,
    node_id: str,
    actor: str | None = None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> int:
    """
    Append a row to the activity log on ``connection``, inside the caller's
    transaction so the row exists exactly when the change it describes does.
    Returns the row's id.

    ``action`` is a dotted verb (``user.created``, ``avatar.removed``,
    ``job.finished``); ``actor`` the user who acted (None for the command
    line and jobs); ``target`` what was acted on. ``request_id`` defaults to
    the id of the request or job run being served (see
    :func:`revenge.logs.get_request_id`), which ``Database.read``/``write``
    carry into their worker thread. ``details`` must be JSON-serialisable
    and must not hold secrets.
    """
    values = {
        "created_at": utc_now(),
        "actor": actor,
        "action": action,
        "target": target,
        "request_id": request_id if request_id is not None else get_request_id(),
        "node_id": node_id,
        "details": dict(details) if details is not None else None,
    }
    row_id = connection.execute(insert(activity_table).values(**values)).inserted_primary_key
    assert row_id is not None
    return int(row_id[0])


def list_activity(
    connection: Connection, limit: int = DEFAULT_LIMIT, before: int | None = None
) -> list[ActivityEntry]:
    """
    The newest rows first, at most ``limit`` (capped at ``MAX_LIMIT``);
    with ``before``, only rows older than that id (the cursor of the next page).
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(activity_table).order_by(activity_table.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(activity_table.c.id < before)
    return [
        ActivityEntry(
            id=row.id,
            created_at=row.created_at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            request_id=row.request_id,
            node_id=row.node_id,
            details=row.details,
        )
        for row in connection.execute(query)
    ]
