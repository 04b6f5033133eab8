"""``GET /api/v1/activity?limit=&before=`` (admin), newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from revenge.activity._record import DEFAULT_LIMIT, MAX_LIMIT, list_activity
from revenge.auth import require_admin
from revenge.web import ApiError, json_body

if TYPE_CHECKING:
    from revenge.db import Database
    from revenge.web import RevengeApp


# Row ids are 64-bit signed integers in both databases; a larger number is
# clamped to it (SQLite cannot even compare with one, and Python refuses to
# parse integers of more than 4300 digits).
_LARGEST_ROW_ID = 2**63 - 1


def _positive_int_param(request: Any, name: str) -> int | None:
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "bad_request", f"give {name} once")
    digits = values[0].decode("ascii", "replace").lstrip("0")
    if not digits or not digits.isdigit():
        raise ApiError(400, "bad_request", f"{name} must be a positive integer")
    if len(digits) > len(str(_LARGEST_ROW_ID)):
        return _LARGEST_ROW_ID
    return min(int(digits), _LARGEST_ROW_ID)


def install_activity_routes(app: RevengeApp, database: Database) -> None:
    @app.route("/api/v1/activity")
    async def recent_activity(request: Any) -> bytes:
        await require_admin(database, request)
        requested = _positive_int_param(request, "limit")
        # Over the cap is not an error: the client gets a full page.
        limit = min(requested or DEFAULT_LIMIT, MAX_LIMIT)
        before = _positive_int_param(request, "before")
        entries = await database.read(
            lambda connection: list_activity(connection, limit=limit, before=before)
        )
        # The cursor of the next page; None when this one was the last.
        next_before = entries[-1].id if len(entries) == limit else None
        return json_body(
            request,
            200,
            {
                "activity": [entry.to_json() for entry in entries],
                "limit": limit,
                "next_before": next_before,
            },
        )
