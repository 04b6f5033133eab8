"""
``PUT``, ``GET`` (and ``HEAD``) and ``DELETE /api/v1/users/<name>/avatar``.

Order of writes (docs/avatars.md): the new object first, under a key no
object has had; then, in one transaction, the user's pointer and the activity
row; then the old object is deleted. Every failure before the commit deletes
the new object and leaves the previous avatar as it was; a failure after it
leaves at worst an object nobody points to, which the orphan sweep removes.
No step ever leaves a user pointing at an object that is not there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from revenge.auth import require_self_or_admin
from revenge.avatars._images import (
    AVATAR_CONTENT_TYPES,
    SNIFF_BYTES,
    declared_image_type,
    image_type_of,
)
from revenge.avatars._pointer import (
    NoSuchUser,
    clear_avatar,
    entity_tag,
    new_avatar_key,
    point_avatar_at,
    read_avatar_key,
)
from revenge.avatars._stream import stream_body
from revenge.avatars._uploads import UploadSlots
from revenge.db import Database
from revenge.logs import run_in_thread
from revenge.storage import IStorage, ObjectNotFound, StorageError, StoredObject
from revenge.users import is_valid_user_name
from revenge.web import ApiError, Release, json_body

if TYPE_CHECKING:
    from revenge.web import RevengeApp

_T = TypeVar("_T")

_log = Logger(namespace="revenge.avatars")

AVATAR_ROUTE = "/api/v1/users/<name>/avatar"

# Shared caches may keep a copy but must revalidate each use: the URL stays
# the same when the avatar changes or is removed, and a removal should show
# at once. Revalidation is cheap: a 304 costs one indexed read, no storage call.
CACHE_CONTROL = b"public, no-cache"
# An avatar is only ever an image to show: never a document that runs
# scripts, loads anything or is taken for HTML by a browser.
CONTENT_SECURITY_POLICY = b"default-src 'none'; sandbox"
_FALLBACK_CONTENT_TYPE = "application/octet-stream"


def avatar_url(name: str) -> str:
    """The avatar's API URL, relative to the server (user names need no escaping)."""
    return f"/api/v1/users/{name}/avatar"


def _no_user(name: str) -> ApiError:
    return ApiError(404, "not_found", f"no user {name!r}")


def _no_avatar(name: str) -> ApiError:
    # Also the answer for a user that does not exist: avatars are public, and
    # two messages would tell anyone which accounts exist.
    return ApiError(404, "not_found", f"no avatar for {name!r}")


def _unsupported(message: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", message)


def _storage_unavailable(action: str, key: str, error: Exception) -> ApiError:
    # Provider errors name the operation, bucket and key, never credentials;
    # even so the client gets a generic message and the log the details.
    _log.warn(
        "storage failed to {action} avatar {key}: {reason}",
        action=action,
        key=key,
        reason=str(error),
    )
    return ApiError(503, "storage_unavailable", "storage is unavailable; try again shortly")


def _measure_and_sniff(body: BinaryIO) -> tuple[int, bytes]:
    """The body's size and first bytes, leaving it at its start (worker thread)."""
    size = body.seek(0, os.SEEK_END)
    body.seek(0)
    head = body.read(SNIFF_BYTES)
    body.seek(0)
    return size, head


def _matches_if_none_match(header: bytes | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if header is None:
        return False
    wanted = etag.encode("ascii")
    for candidate in header.split(b","):
        candidate = candidate.strip()
        if candidate == b"*":
            return True
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == wanted:
            return True
    return False


def _shielded(work: Deferred[_T]) -> Deferred[_T]:
    """
    A Deferred that fires with ``work``'s result, but whose cancellation
    leaves ``work`` running. Klein cancels a handler whose client goes away;
    a sequence of writes must then still finish, or unwind, as it would have.
    """
    relay: Deferred[_T] = Deferred()

    def succeeded(result: _T) -> None:
        if not relay.called:
            relay.callback(result)

    def failed(failure: Failure) -> None:
        if not relay.called:
            relay.errback(failure)
        elif not failure.check(ApiError):
            _log.failure("avatar change failed after its client had gone", failure=failure)

    work.addCallbacks(succeeded, failed)
    return relay


@dataclass
class _PointerWrite:
    """What a pointer transaction got to, as seen from outside its thread."""

    work_done: bool = False
    previous: str | None = None


class _Avatars:
    def __init__(
        self, database: Database, storage: IStorage, reactor: Any, max_bytes: int
    ) -> None:
        self._database = database
        self._storage = storage
        self._reactor = reactor
        self._max_bytes = max_bytes
        self.uploads = UploadSlots()

    # PUT ---------------------------------------------------------------------

    async def admit_upload(self, request: Any, url_args: Mapping[str, Any]) -> Release:
        """
        Before the body is read: the caller may upload here (401/403 now,
        rather than after spooling megabytes) and has an upload slot (429).
        The guard caches the user on the request, so ``put`` looks it up once.
        """
        caller = await require_self_or_admin(self._database, request, url_args["name"])
        return self.uploads.take(caller.name)

    async def put(self, request: Any, name: str) -> bytes:
        caller = await require_self_or_admin(self._database, request, name)
        if not is_valid_user_name(name):
            raise _no_user(name)
        declared = declared_image_type(request.getHeader(b"Content-Type"))
        if declared is None:
            raise _unsupported(
                "send the image with Content-Type image/png, image/jpeg, image/gif or image/webp"
            )
        # Taken from the request: Twisted closes request.content when the
        # client goes away, and the writes below must finish or unwind anyway.
        body: BinaryIO = request.content
        request.content = None
        try:
            length, head = await run_in_thread(self._reactor, _measure_and_sniff, body)
            if length > self._max_bytes:
                # The web layer refuses these before reading them; this is a backstop.
                raise ApiError(413, "too_large", f"an avatar is at most {self._max_bytes} bytes")
            detected = image_type_of(head)
            if detected is None:
                raise _unsupported("the body is not a PNG, JPEG, GIF or WebP image")
            if detected != declared:
                raise _unsupported(f"the body is {detected}, not the declared {declared}")
            # Before storing anything: no object for a user who does not exist.
            try:
                await self._database.read(lambda connection: read_avatar_key(connection, name))
            except NoSuchUser:
                raise _no_user(name) from None
        except BaseException:
            body.close()
            raise
        key = await _shielded(
            ensureDeferred(self._replace(name, caller.name, body, detected, length))
        )
        etag = entity_tag(key)
        url = avatar_url(name)
        request.setHeader(b"Location", url.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return json_body(request, 201, {"key": key, "url": url, "etag": etag})

    async def _replace(
        self, name: str, actor: str, body: BinaryIO, content_type: str, length: int
    ) -> str:
        key = new_avatar_key(name)
        try:
            await self._storage.store(key, body, content_type, length)
        except StorageError as error:
            # The provider stores nothing when it fails, so there is nothing to undo.
            raise _storage_unavailable("store", key, error) from None
        finally:
            body.close()
        previous = await self._move_pointer(name, key, actor, content_type, length)
        _log.info(
            "avatar of {user} set by {actor}: {key} ({content_type}, {length} bytes)",
            user=name,
            actor=actor,
            key=key,
            content_type=content_type,
            length=length,
        )
        if previous is not None and previous != key:
            await self._delete_quietly(previous, "the avatar it replaced")
        return key

    async def _move_pointer(
        self, name: str, key: str, actor: str, content_type: str, length: int
    ) -> str | None:
        """Point the user at ``key`` (one transaction); returns the key replaced."""
        attempt = _PointerWrite()

        def work(connection: Any) -> str | None:
            previous = point_avatar_at(
                connection,
                name,
                key,
                node_id=self._database.node_id,
                actor=actor,
                details={"content_type": content_type, "length": length},
            )
            attempt.previous = previous
            attempt.work_done = True
            return previous

        try:
            return await self._database.write(work)
        except NoSuchUser:
            # Deleted since we looked; rolled back, so nobody points at the new object.
            await self._delete_quietly(key, "an avatar whose user was deleted meanwhile")
            raise _no_user(name) from None
        except Exception as error:
            if not attempt.work_done:
                # Failed before COMMIT was sent: rolled back for certain.
                await self._delete_quietly(key, "an avatar whose pointer was not written")
                raise error
            # COMMIT itself failed, or its answer was lost: it may have taken
            # effect. Only the database knows; deleting on a guess could leave
            # the user pointing at nothing.
            committed = await self._points_at(name, key)
            if committed:
                _log.info(
                    "avatar pointer of {user} was committed despite {reason}",
                    user=name,
                    reason=str(error),
                )
                return attempt.previous
            if committed is None:
                _log.warn(
                    "cannot tell whether the avatar pointer of {user} moved to {key}; "
                    "keeping the object (the orphan sweep removes it if nobody points to it)",
                    user=name,
                    key=key,
                )
            else:
                await self._delete_quietly(key, "an avatar whose pointer was not written")
            raise error

    async def _points_at(self, name: str, key: str) -> bool | None:
        """Whether the user's pointer is ``key``; None when the database cannot say."""
        try:
            current = await self._database.read(
                lambda connection: read_avatar_key(connection, name)
            )
        except NoSuchUser:
            return False
        except Exception:
            return None
        return current == key

    async def _delete_quietly(self, key: str, what: str) -> None:
        """Delete an object nobody points to; on failure, leave it to the orphan sweep."""
        try:
            await self._storage.delete(key)
        except Exception as error:
            _log.warn(
                "could not delete {what} ({key}): {reason}; the orphan sweep will",
                what=what,
                key=key,
                reason=str(error),
            )

    # GET / HEAD ----------------------------------------------------------------

    async def get(self, request: Any, name: str) -> bytes:
        if not is_valid_user_name(name):
            raise _no_avatar(name)
        stored = await self._open(request, name)
        if stored is None:
            request.setResponseCode(304)
            return b""
        body = stored.body
        assert body is not None  # get() always returns a body
        content_type = stored.content_type
        if content_type not in AVATAR_CONTENT_TYPES:
            content_type = _FALLBACK_CONTENT_TYPE
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        request.setHeader(b"Content-Length", b"%d" % (stored.length,))
        if request.method == b"HEAD":
            body.stopProducing()
            return b""
        await stream_body(request, body, f"avatar {stored.key}")
        return b""

    async def _open(self, request: Any, name: str) -> StoredObject | None:
        """The user's avatar with its body, or None for a 304; sets the validators."""
        for attempt in (1, 2):
            key = await self._current_key(name)
            etag = entity_tag(key)
            if _matches_if_none_match(request.getHeader(b"If-None-Match"), etag):
                self._set_validators(request, etag)
                return None
            try:
                stored = await self._storage.get(key)
            except ObjectNotFound:
                if attempt == 1:
                    # Most likely replaced between our read and the fetch:
                    # the pointer has moved on, so read it again.
                    continue
                _log.warn(
                    "user {user} points to avatar {key}, which is not stored", user=name, key=key
                )
                raise _no_avatar(name) from None
            except StorageError as error:
                raise _storage_unavailable("read", key, error) from None
            self._set_validators(request, etag)
            return stored
        raise AssertionError("unreachable")

    async def _current_key(self, name: str) -> str:
        try:
            key = await self._database.read(lambda connection: read_avatar_key(connection, name))
        except NoSuchUser:
            raise _no_avatar(name) from None
        if key is None:
            raise _no_avatar(name)
        return key

    @staticmethod
    def _set_validators(request: Any, etag: str) -> None:
        request.setHeader(b"ETag", etag.encode("ascii"))
        request.setHeader(b"Cache-Control", CACHE_CONTROL)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)

    # DELETE --------------------------------------------------------------------

    async def delete(self, request: Any, name: str) -> bytes:
        caller = await require_self_or_admin(self._database, request, name)
        if not is_valid_user_name(name):
            raise _no_user(name)
        await _shielded(ensureDeferred(self._remove(name, caller.name)))
        request.setResponseCode(204)
        return b""

    async def _remove(self, name: str, actor: str) -> None:
        try:
            previous = await self._database.write(
                lambda connection: clear_avatar(
                    connection, name, node_id=self._database.node_id, actor=actor
                )
            )
        except NoSuchUser:
            raise _no_user(name) from None
        if previous is None:
            return  # no avatar: nothing to do, and deleting it again is no error
        _log.info(
            "avatar of {user} removed by {actor}: {key}", user=name, actor=actor, key=previous
        )
        await self._delete_quietly(previous, "a removed avatar")


def install_avatar_routes(
    app: RevengeApp, database: Database, storage: IStorage, reactor: Any, *, max_bytes: int
) -> None:
    """
    Add the avatar routes; uploads are capped at ``max_bytes`` (the
    ``storage.avatar_max_bytes`` key) and at ``MAX_UPLOADS_PER_USER`` in
    flight per user.
    """
    avatars = _Avatars(database, storage, reactor, max_bytes)
    app.route(
        AVATAR_ROUTE,
        methods=["PUT"],
        max_body=max_bytes,
        admit=avatars.admit_upload,
    )(avatars.put)
    app.route(AVATAR_ROUTE, methods=["GET"])(avatars.get)
    app.route(AVATAR_ROUTE, methods=["DELETE"])(avatars.delete)
