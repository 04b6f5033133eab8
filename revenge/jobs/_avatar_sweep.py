"""
``avatar_sweep``: delete avatar objects that no user points to and that are
older than a day.

Avatars are stored under ``avatars/<user>/<random hex>`` and ``users.avatar_key``
points to the current one. A replaced or removed avatar whose object could
not be deleted (a crash, a storage error) stays behind as an orphan. The day
of grace keeps the sweep away from an upload whose row is not written yet.

Storage deletes are not transactional, so they cannot pass the fence the way
a row delete does. Instead each delete is decided by a fenced transaction
right before it: that transaction checks the fence (a stale leader stops
there) and that no user points to the key now.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqlalchemy import select
from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from revenge.avatars import AVATAR_KEY_PREFIX
from revenge.db import users
from revenge.jobs._job import JobRun
from revenge.storage import IStorage

AVATAR_SWEEP = "avatar_sweep"
# Objects younger than this are never swept: an upload may not be recorded yet.
ORPHAN_MIN_AGE_S = 86400.0
# Keys per query when looking up which candidates are referenced.
_LOOKUP_CHUNK = 500


def referenced_keys(connection: Connection, keys: Sequence[str]) -> set[str]:
    """The members of ``keys`` that some user's ``avatar_key`` points to."""
    found: set[str] = set()
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = list(keys[start : start + _LOOKUP_CHUNK])
        found.update(
            connection.execute(
                select(users.c.avatar_key).where(users.c.avatar_key.in_(chunk))
            ).scalars()
        )
    return found


def is_referenced(connection: Connection, key: str) -> bool:
    return bool(referenced_keys(connection, [key]))


class AvatarSweep:
    """Deletes orphaned avatar objects."""

    name = AVATAR_SWEEP

    def __init__(
        self,
        *,
        storage: IStorage,
        interval: float,
        clock: IReactorTime,
        min_age: float = ORPHAN_MIN_AGE_S,
    ) -> None:
        self.interval = interval
        self.min_age = min_age
        self._storage = storage
        self._clock = clock

    async def run(self, run: JobRun) -> None:
        objects = await self._storage.list(AVATAR_KEY_PREFIX)
        oldest_allowed = self._clock.seconds() - self.min_age
        old = [o.key for o in objects if o.last_modified.timestamp() < oldest_allowed]
        run.details.update(listed=len(objects), old=len(old), deleted=0)
        if not old:
            return
        # One read narrows the list; the decision itself is taken again per key below.
        referenced = await run.read(lambda connection: referenced_keys(connection, old))
        for key in old:
            if key in referenced:
                continue
            # The fence and the reference check, immediately before the delete.
            if await run.write(partial(is_referenced, key=key)):
                continue
            await self._storage.delete(key)
            run.changed = True
            run.details["deleted"] += 1
