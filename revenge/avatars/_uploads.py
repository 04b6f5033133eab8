"""
How many avatar uploads each user may have in flight on one node.

An upload holds a connection, a temporary file of up to
``storage.avatar_max_bytes`` and, later, a storage write; a user (or a
leaked token) sending many at once could take those from everyone else.
Slots are taken when an upload's headers are in, before its body is read,
and given back when its request ends, however it ends.
"""

from __future__ import annotations

from revenge.web import ApiError, Release

# Enough for a user replacing their avatar while a slow first attempt still
# runs; no client needs more.
MAX_UPLOADS_PER_USER = 2
# What a refused client is told to wait: uploads of a few MiB take seconds.
UPLOAD_RETRY_AFTER_SECONDS = 2


class UploadSlots:
    """Counts the uploads in flight per user (on this node only: no shared state)."""

    def __init__(self, limit: int = MAX_UPLOADS_PER_USER) -> None:
        if limit < 1:
            raise ValueError("the upload limit must be at least 1")
        self.limit = limit
        self._in_use: dict[str, int] = {}

    def in_use(self, user: str) -> int:
        return self._in_use.get(user, 0)

    def take(self, user: str) -> Release:
        """A slot for ``user``, or 429 when they have ``limit`` in use already."""
        if self.in_use(user) >= self.limit:
            raise ApiError(
                429,
                "too_many_uploads",
                f"at most {self.limit} uploads at a time per user; "
                "retry once one of them has finished",
                headers={b"Retry-After": b"%d" % (UPLOAD_RETRY_AFTER_SECONDS,)},
            )
        self._in_use[user] = self.in_use(user) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._in_use[user] - 1
            if left:
                self._in_use[user] = left
            else:
                # No entry per user who ever uploaded: the table stays small.
                del self._in_use[user]

        return release
