"""What the rest of the server sees when the database fails."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError

from revenge.config import SECRET_URL_PARAMETERS, redact_text

_MAX_REASON = 300

# The attribute in which an engine's errors carry the secrets of its URL,
# set by create_database_engine's handle_error listener (see note_secrets).
_SECRETS = "revenge_url_secrets"


class DatabaseUnavailable(Exception):
    """
    The database cannot be reached, or its schema is not migrated yet.

    ``reason`` is the cause, for logs; it is never sent to clients. The web
    layer answers a route that lets this escape with a 503 JSON
    ``database_unavailable`` (``revenge.web.api_error_for``), so routes need
    no handling of their own.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def url_secrets(url: URL) -> tuple[str, ...]:
    """
    What of ``url`` no message may show: the password, the values of the
    secret libpq parameters of its query, and the part of a host before an
    "@" (the tail of a password whose "@" was not percent-encoded).
    """
    found = [url.password or ""]
    for name, value in url.query.items():
        if name.lower() in SECRET_URL_PARAMETERS:
            found.extend((value,) if isinstance(value, str) else value)
    if url.host and "@" in url.host:
        found.append(url.host.rpartition("@")[0])
    return tuple(secret for secret in found if secret)


def note_secrets(error: BaseException | None, secrets: Sequence[str]) -> None:
    """Have :func:`describe_database_error` mask ``secrets`` in ``error``'s text."""
    if error is None or not secrets:
        return
    try:
        setattr(error, _SECRETS, tuple(secrets))
    except (AttributeError, TypeError):
        # An exception type without a __dict__; its text is still scrubbed
        # of URLs and connection-string secrets.
        pass


def describe_database_error(error: BaseException) -> str:
    """
    One short line about a database error, for logs and terminals.

    SQLAlchemy's own message appends the SQL statement and its parameters,
    which may hold token hashes or user data; only the driver's first line is
    kept. That line is scrubbed first (:func:`revenge.config.redact_text`):
    of the secrets of the engine's URL (see :func:`note_secrets`), which a
    driver may quote (libpq puts the tail of a password with a raw "@" in the
    host it "failed to resolve"), of the password and secret parameters of
    any URL in it, and of the secret values of a libpq connection string. A
    :class:`DatabaseUnavailable` is described by its reason, scrubbed alike.
    """
    if isinstance(error, DatabaseUnavailable):
        return redact_text(error.reason)[:_MAX_REASON]
    cause: BaseException = error
    if isinstance(error, DBAPIError) and error.orig is not None:
        cause = error.orig
    secrets: tuple[str, ...] = (*getattr(error, _SECRETS, ()), *getattr(cause, _SECRETS, ()))
    # Scrubbed whole, before it is cut: a cut could halve a secret, and half
    # of one is no longer found.
    text = redact_text(str(cause), secrets).strip().splitlines()
    first = text[0].strip() if text else ""
    name = type(cause).__name__
    reason = f"{name}: {first}" if first else name
    return reason[:_MAX_REASON]
