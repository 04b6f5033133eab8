"""The hint a new installation's log gives: how to make the first administrator."""

from __future__ import annotations

from twisted.logger import Logger

from revenge.db import Database, DatabaseUnavailable
from revenge.users._store import has_admin

_log = Logger(namespace="revenge.users")

FIRST_ADMIN_HINT = (
    "no administrator yet: create one with `revenge user add NAME --admin` (with this "
    "node's configuration); it prints the API token once"
)


async def hint_without_an_admin(database: Database) -> None:
    """
    Log :data:`FIRST_ADMIN_HINT` once the schema is ready, when no user is an
    administrator: nothing else on a fresh install says how to get a token.
    A database that cannot answer now is the readiness check's business.
    """
    try:
        found = await database.read(has_admin)
    except DatabaseUnavailable:
        return
    if not found:
        _log.info(FIRST_ADMIN_HINT)
