"""What the rest of the server sees when the database fails."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from revenge.web import ApiError

_MAX_REASON = 300


class DatabaseUnavailable(ApiError):
    """
    The database cannot be reached, or its schema is not migrated yet.

    An :class:`ApiError`, so a route that lets it escape answers 503 JSON
    ``database_unavailable`` without any handling of its own. The message is
    generic: the cause is logged, never sent to clients.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            503, "database_unavailable", "the database is unavailable; try again shortly"
        )
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def describe_database_error(error: BaseException) -> str:
    """
    One short line about a database error, for logs.

    SQLAlchemy's own message appends the SQL statement and its parameters,
    which may hold token hashes or user data; only the driver's first line is
    kept. Driver messages name host, port and user, never a password. A
    :class:`DatabaseUnavailable` is described by its reason.
    """
    if isinstance(error, DatabaseUnavailable):
        return error.reason[:_MAX_REASON]
    cause: BaseException = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        cause = error.orig
    text = str(cause).strip().splitlines()
    first = text[0].strip() if text else ""
    name = type(cause).__name__
    reason = f"{name}: {first}" if first else name
    return reason[:_MAX_REASON]
