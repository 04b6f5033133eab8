"""
The ``s3`` storage provider: objects in a bucket of AWS S3, MinIO or any
S3-compatible server.

Why not txaws: its last release does not import on Python 3. Instead treq
does the I/O (non-blocking and streaming both ways) and botocore only signs
requests (SigV4) and finds credentials (``revenge.storage._s3_signing``).

This module holds the operations. Each request goes through an
``S3Engine`` (``revenge.storage._s3_engine``: addressing, signing,
timeouts, retries, error answers); how ``store`` sends a body is
``revenge.storage._s3_upload``; the bytes themselves move through
``revenge.storage._s3_transport``.

What ``store`` returns comes from the answer to its PUT; only a multipart
upload, whose answers do not say when the object was stored, is followed
by a HEAD (``S3Storage._stored``).
"""

from __future__ import annotations

import builtins
import hashlib
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote
from xml.sax.saxutils import escape

from twisted.internet.defer import (
    Deferred,
    DeferredSemaphore,
    FirstError,
    ensureDeferred,
    fail,
    gatherResults,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from revenge.logs._context import get_request_id
from revenge.storage._interface import (
    IInitializableStorage,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from revenge.storage._keys import shorten, validate_key, validate_prefix
from revenge.storage._s3_engine import (
    S3_NAMESPACE,
    S3Addressing,
    S3Engine,
    S3Request,
    S3RequestError,
    child_text,
    header,
    local_name,
    unquote_etag,
)
from revenge.storage._s3_signing import S3CredentialSource
from revenge.storage._s3_transport import (
    ChunksProducer,
    ObjectBodyProducer,
    describe_failure,
    discard_body,
)
from revenge.storage._s3_upload import upload

__all__ = [
    "DEFAULT_MULTIPART_THRESHOLD",
    "DEFAULT_PART_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "S3RequestError",
    "S3Storage",
    "create_s3_storage",
]

_log = Logger()

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
DEFAULT_PART_SIZE = 8 * MiB
# Parts on the wire at once; memory holds this many parts plus the one being read.
DEFAULT_PART_CONCURRENCY = 2
# S3's (and MinIO's) smallest part, except for the last one.
MIN_PART_SIZE = 5 * MiB

_MAX_CONTENT_TYPE = 1024
_CONTENT_TYPE = re.compile(r"[\x20-\x7e]+")
_BUCKET = re.compile(r"[A-Za-z0-9._-]{3,255}")
_REGION = re.compile(r"[A-Za-z0-9_-]+")
# HEADs in flight while listing (ListObjectsV2 has no content type).
_LIST_HEAD_CONCURRENCY = 8


class _S3Section(Protocol):
    @property
    def endpoint(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    @property
    def use_path_style(self) -> bool: ...


class _StorageSection(Protocol):
    @property
    def s3(self) -> _S3Section: ...


class _S3Config(Protocol):
    """The part of the configuration this provider reads."""

    @property
    def storage(self) -> _StorageSection: ...


@implementer(IStorage, IInitializableStorage)
class S3Storage:
    """
    Objects in one S3 bucket: the operations, each a request or a few that
    its ``S3Engine`` sends (``revenge.storage._s3_upload`` says how bodies
    move).

    ``reactor`` must provide TCP, time and threads. Failures of every method
    come as a failed Deferred; keys are validated before any I/O. Call
    :meth:`close` when done to drop pooled connections.
    """

    name = "s3"

    def __init__(
        self,
        reactor: Any,
        *,
        bucket: str,
        region: str = "us-east-1",
        endpoint: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
        use_path_style: bool = False,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        part_concurrency: int = DEFAULT_PART_CONCURRENCY,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        # Under the 2 s the readiness checks allow, so that our message (naming
        # the bucket, the endpoint and the cause) is the one logged.
        check_timeout: float = 1.5,
        attempts: int = 4,
        backoff_base: float = 0.1,
        backoff_max: float = 2.0,
        list_page_size: int = 1000,
        credentials: S3CredentialSource | None = None,
    ) -> None:
        if not _BUCKET.fullmatch(bucket or ""):
            raise ValueError(
                f"invalid S3 bucket name {bucket!r}: 3 to 255 characters of [A-Za-z0-9._-]"
            )
        if not _REGION.fullmatch(region or ""):
            raise ValueError(f"invalid S3 region {region!r}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if (
            multipart_threshold < 0
            or attempts < 1
            or part_concurrency < 1
            or not 1 <= list_page_size <= 1000
        ):
            raise ValueError(
                "multipart_threshold, part_concurrency, attempts or list_page_size out of range"
            )
        if min(connect_timeout, timeout, check_timeout) <= 0 or min(backoff_base, backoff_max) < 0:
            raise ValueError("timeouts must be positive and backoffs not negative")
        self.bucket = bucket
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.part_concurrency = part_concurrency
        self._reactor = reactor
        self._check_timeout = check_timeout
        self._list_page_size = list_page_size
        self._engine = S3Engine(
            reactor,
            S3Addressing.build(endpoint, region, bucket, use_path_style),
            region,
            credentials or S3CredentialSource(reactor, region, access_key_id, secret_access_key),
            connect_timeout=connect_timeout,
            timeout=timeout,
            attempts=attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to (no credentials in it)."""
        return self._engine.addressing.endpoint

    def __repr__(self) -> str:
        return f"<S3Storage bucket={self.bucket!r} endpoint={self.endpoint!r}>"

    def close(self) -> Deferred[None]:
        """Close pooled connections (the provider stays usable)."""
        return self._engine.close()

    # IStorage ------------------------------------------------------------------

    def store(
        self, key: str, body: BinaryIO, content_type: str, length: int | None = None
    ) -> Deferred[StoredObject]:
        try:
            validate_key(key)
            if (
                not isinstance(content_type, str)
                or len(content_type) > _MAX_CONTENT_TYPE
                or not _CONTENT_TYPE.fullmatch(content_type)
            ):
                raise StorageError(
                    "a content type must be 1 to 1024 printable ASCII characters"
                )
            if length is not None and (
                not isinstance(length, int) or isinstance(length, bool) or length < 0
            ):
                raise StorageError("a declared length must be a non-negative integer")
        except StorageError:
            return fail()
        return ensureDeferred(self._store(key, body, content_type, length, get_request_id()))

    def get(self, key: str) -> Deferred[StoredObject]:
        try:
            validate_key(key)
        except StorageError:
            return fail()
        return ensureDeferred(self._get(key, get_request_id()))

    def delete(self, key: str) -> Deferred[None]:
        try:
            validate_key(key)
        except StorageError:
            return fail()
        return ensureDeferred(self._delete(key, get_request_id()))

    def exists(self, key: str) -> Deferred[bool]:
        try:
            validate_key(key)
        except StorageError:
            return fail()
        return ensureDeferred(self._exists(key, get_request_id()))

    def list(self, prefix: str) -> Deferred[builtins.list[StoredObject]]:
        try:
            validate_prefix(prefix)
        except StorageError:
            return fail()
        return ensureDeferred(self._list(prefix, get_request_id()))

    def check(self) -> Deferred[None]:
        return ensureDeferred(self._check(get_request_id()))

    def ensure_bucket(self) -> Deferred[bool]:
        """
        Create the bucket unless it exists (for ``revenge storage init``).
        Fires with True when it was created, False when it was already there.
        """
        return ensureDeferred(self._ensure_bucket(get_request_id()))

    # IInitializableStorage -----------------------------------------------------

    @property
    def description(self) -> str:
        return f"S3 bucket {self.bucket!r} at {self.endpoint}"

    def initialize(self) -> Deferred[str]:
        return self.ensure_bucket().addCallback(
            lambda created: "created" if created else "already exists"
        )

    def describe_error(self, error: StorageError) -> str:
        # Most messages name the bucket; the endpoint only those of requests
        # that never got an answer. An operator needs both.
        message = str(error)
        if self.endpoint not in message or repr(self.bucket) not in message:
            message += f" ({self.description})"
        return message

    def _metadata(self, key: str, response: IResponse, request: S3Request) -> StoredObject:
        # Twisted keeps a GET's Content-Length for framing (response.length);
        # a HEAD's stays among the headers.
        length = header(response, "content-length")
        if length is None and isinstance(response.length, int):
            length = str(response.length)
        etag = header(response, "etag")
        modified = header(response, "last-modified")
        try:
            if length is None or etag is None or modified is None:
                raise ValueError("missing Content-Length, ETag or Last-Modified")
            last_modified = parsedate_to_datetime(modified)
            if last_modified.tzinfo is None:
                last_modified = last_modified.replace(tzinfo=timezone.utc)
            return StoredObject(
                key=key,
                length=int(length),
                content_type=header(response, "content-type") or "",
                etag=unquote_etag(etag),
                last_modified=last_modified.astimezone(timezone.utc),
            )
        except (ValueError, TypeError) as error:
            raise StorageError(
                f"S3 {request.operation} {request.target} returned unusable headers: {error}"
            ) from error

    # Operations ------------------------------------------------------------------

    async def _store(
        self,
        key: str,
        body: BinaryIO,
        content_type: str,
        length: int | None,
        request_id: str | None,
    ) -> StoredObject:
        size, etag, modified = await upload(
            self._engine,
            key,
            body,
            content_type,
            length,
            multipart_threshold=self.multipart_threshold,
            part_size=self.part_size,
            part_concurrency=self.part_concurrency,
            request_id=request_id,
        )
        if modified is not None:
            return StoredObject(key, size, content_type, etag, modified)
        return await self._stored(key, size, content_type, etag, request_id)

    async def _stored(
        self,
        key: str,
        size: int,
        content_type: str,
        etag: str,
        request_id: str | None,
    ) -> StoredObject:
        """
        What a multipart upload stored, with the Last-Modified that ``get``
        will show. S3 dates such an object from the upload's start, and no
        answer of the upload says when that was, so this one asks (a single
        PUT's answer is enough: see ``answer_time``).
        """
        try:
            found = await self._head(key, request_id)
        except StorageError as error:
            _log.warn("stored {key} but could not read its metadata: {error}", key=key,
                      error=str(error))
            found = None
        if found is not None and found.etag == etag:
            return found
        # Overwritten since, or unreadable: describe what we wrote.
        return StoredObject(key, size, content_type, etag, datetime.now(timezone.utc))

    async def _head(self, key: str, request_id: str | None) -> StoredObject | None:
        request = S3Request(
            "HeadObject", "HEAD", self._engine.addressing.url(key), self._engine.object_target(key)
        )
        response = await self._engine.send(request, request_id)
        if response.code == 404:
            await self._engine.drain(response)
            return None
        await self._engine.expect_success(request, response)
        return self._metadata(key, response, request)

    async def _get(self, key: str, request_id: str | None) -> StoredObject:
        request = S3Request(
            "GetObject", "GET", self._engine.addressing.url(key), self._engine.object_target(key)
        )
        response = await self._engine.send(request, request_id)
        if response.code == 404:
            error = await self._engine.error(request, response)
            if error.code in ("NoSuchKey", "HTTP 404"):
                raise ObjectNotFound(key)
            raise error
        if not 200 <= response.code < 300:
            raise await self._engine.error(request, response)
        try:
            meta = self._metadata(key, response, request)
        except StorageError:
            discard_body(response)
            raise
        producer = ObjectBodyProducer(
            self._reactor, response, meta.length, self._engine.timeout, shorten(key)
        )
        return StoredObject(
            meta.key, meta.length, meta.content_type, meta.etag, meta.last_modified, producer
        )

    async def _delete(self, key: str, request_id: str | None) -> None:
        request = S3Request(
            "DeleteObject",
            "DELETE",
            self._engine.addressing.url(key),
            self._engine.object_target(key),
        )
        response = await self._engine.send(request, request_id)
        if response.code == 404:
            error = await self._engine.error(request, response)
            if error.code in ("NoSuchKey", "HTTP 404"):
                return  # some servers say so; deleting a missing key is fine
            raise error
        await self._engine.expect_success(request, response)

    async def _exists(self, key: str, request_id: str | None) -> bool:
        return await self._head(key, request_id) is not None

    async def _list_keys(self, prefix: str, request_id: str | None) -> builtins.list[str]:
        keys: builtins.list[str] = []
        token: str | None = None
        while True:
            query = [
                ("list-type", "2"),
                ("prefix", prefix),
                ("encoding-type", "url"),
                ("max-keys", str(self._list_page_size)),
            ]
            if token:
                query.append(("continuation-token", token))
            request = S3Request(
                "ListObjectsV2",
                "GET",
                self._engine.addressing.url(None, query),
                f"with prefix {shorten(prefix)} in bucket {self.bucket!r}",
            )
            response = await self._engine.send(request, request_id)
            document = await self._engine.expect_success(request, response)
            root = self._engine.parse(request, document)
            for element in root:
                if local_name(element) != "Contents":
                    continue
                key = unquote(child_text(element, "Key") or "")
                try:
                    keys.append(validate_key(key))
                except StorageError:
                    continue  # not a key this provider could have written
            truncated = (child_text(root, "IsTruncated") or "").lower() == "true"
            token = child_text(root, "NextContinuationToken")
            if not truncated:
                return keys
            if not token:
                raise StorageError(
                    f"S3 {request.operation} {request.target} was truncated "
                    "without a continuation token"
                )

    async def _list(self, prefix: str, request_id: str | None) -> builtins.list[StoredObject]:
        keys = await self._list_keys(prefix, request_id)
        # The listing has no content types: ask for each object, a few at a time.
        limiter = DeferredSemaphore(_LIST_HEAD_CONCURRENCY)

        def head(key: str) -> Deferred[StoredObject | None]:
            return ensureDeferred(self._head(key, request_id))

        heads = [limiter.run(head, key) for key in keys]
        found = await gatherResults(heads, consumeErrors=True).addErrback(_first_error)
        listed = [item for item in found if item is not None]  # None: deleted meanwhile
        listed.sort(key=lambda stored: stored.key)
        return listed

    async def _check(self, request_id: str | None) -> None:
        request = S3Request(
            "HeadBucket", "HEAD", self._engine.addressing.url(), self._engine.bucket_target
        )
        where = f"S3 bucket {self.bucket!r} at {self._engine.addressing.endpoint}"
        try:
            response = await self._engine.send(
                request, request_id, attempts=1, timeout=self._check_timeout
            )
        except StorageError as failure:
            cause = failure.__cause__
            detail = describe_failure(cause) if cause is not None else str(failure)
            raise StorageError(f"{where} is unreachable: {detail}") from None
        if 200 <= response.code < 300:
            await self._engine.drain(response, self._check_timeout)
            return
        error = await self._engine.error(request, response)
        if response.code == 404:
            raise StorageError(f"{where} does not exist (run 'revenge storage init')")
        if response.code == 403:
            raise StorageError(
                f"{where}: access denied (HTTP 403); check the credentials and the "
                "bucket's policy"
            )
        raise StorageError(f"{where} is not usable: {error}")

    async def _ensure_bucket(self, request_id: str | None) -> bool:
        head = S3Request(
            "HeadBucket", "HEAD", self._engine.addressing.url(), self._engine.bucket_target
        )
        response = await self._engine.send(head, request_id)
        if 200 <= response.code < 300:
            await self._engine.drain(response)
            return False
        if response.code != 404:
            error = await self._engine.error(head, response)
            if response.code == 403:
                raise StorageError(
                    f"S3 bucket {self.bucket!r} at {self.endpoint}: access denied "
                    "(HTTP 403); the name may be taken by another account, or the "
                    "credentials lack s3:ListBucket"
                )
            raise error
        await self._engine.drain(response)

        document = b""
        if self.region != "us-east-1":
            # Outside us-east-1, S3 wants the region named in the request body.
            document = (
                f'<CreateBucketConfiguration xmlns="{S3_NAMESPACE}">'
                f"<LocationConstraint>{escape(self.region)}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode("utf-8")

        async def make_body(attempt: int) -> IBodyProducer:
            return ChunksProducer([document] if document else [])

        create = S3Request(
            "CreateBucket",
            "PUT",
            self._engine.addressing.url(),
            self._engine.bucket_target,
            headers={"Content-Type": "application/xml"} if document else {},
            payload_hash=hashlib.sha256(document).hexdigest(),
            body=make_body,
        )
        response = await self._engine.send(create, request_id)
        if response.code == 409:
            error = await self._engine.error(create, response)
            if error.code == "BucketAlreadyOwnedByYou":
                return False  # created meanwhile, by us: fine
            raise error
        await self._engine.expect_success(create, response)
        return True


def _first_error(failure: Failure) -> Failure:
    # gatherResults wraps the first failure; hand on the original error.
    error = failure.value
    if isinstance(error, FirstError):
        sub: Failure = error.subFailure
        return sub
    return failure


def create_s3_storage(config: _S3Config, reactor: Any) -> S3Storage:
    """Entry point ``revenge.storage: s3``: the bucket ``storage.s3.*`` names."""
    s3 = config.storage.s3
    return S3Storage(
        reactor,
        bucket=s3.bucket,
        region=s3.region,
        endpoint=s3.endpoint,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
        use_path_style=s3.use_path_style,
    )
