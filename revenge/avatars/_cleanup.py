"""Removing the avatar object of a user who no longer exists."""

from __future__ import annotations

from twisted.logger import Logger

from revenge.storage import IStorage, ObjectNotFound

_log = Logger(namespace="revenge.avatars")


async def remove_deleted_users_avatar(storage: IStorage, user: str, key: str) -> None:
    """
    Delete ``key``, the avatar of ``user``, whose row is already gone.

    Called after the user's deletion has committed: a failure here leaves an
    object nobody points to, which the orphan sweep removes, never a user
    without an avatar. So it only warns, and an object already gone is fine.
    """
    try:
        await storage.delete(key)
    except ObjectNotFound:
        pass
    except Exception as error:
        _log.warn(
            "could not delete the avatar {key} of deleted user {user}: {reason}",
            key=key,
            user=user,
            reason=str(error),
        )
