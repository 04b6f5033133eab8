"""
The ``s3`` storage provider: objects in a bucket of AWS S3, MinIO or any
S3-compatible server.

Why not txaws: its last release does not import on Python 3. Instead treq
does the I/O (non-blocking and streaming both ways) and botocore only signs
requests (SigV4) and finds credentials (``revenge.storage._s3_signing``).

How ``store`` sends a body
--------------------------

- Declared ``length`` up to ``multipart_threshold``: one PUT streamed from
  the body in chunks read in the thread pool. Retried only when the body is
  seekable (it is rewound); otherwise it goes out once, on a fresh
  connection, so that a pooled connection the server has quietly closed
  cannot cost us a body we cannot read again.
- Anything else: the body is read into parts of ``part_size`` bytes. A body
  that ends within its first part goes out as one buffered PUT; a longer one
  as a multipart upload, ``part_concurrency`` parts on the wire while the
  next one is read, so memory stays near that many parts plus one whatever
  the size. Parts carry a CRC32 checksum (``x-amz-checksum-crc32``, as
  current AWS SDKs send; S3 and MinIO verify it) and are retried; the upload
  is aborted if the body or any part fails, so nothing half-written remains.
- A body whose size differs from a declared ``length`` fails before the
  server receives a complete request (or before the multipart upload is
  completed) and stores nothing. The body's own exceptions reach the
  caller unchanged.

Every request has a timeout on connecting and on silence (no progress for
``timeout`` seconds while sending or receiving); idempotent requests are
retried on 5xx answers and connection failures with exponential backoff and
jitter. Errors are ``StorageError`` naming the operation, bucket and key,
never credentials or signatures. The serving request's id goes out as
``X-Request-ID``.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import ipaddress
import random
import re
import xml.etree.ElementTree as ElementTree
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

from treq.client import HTTPClient
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
    FirstError,
    ensureDeferred,
    fail,
    gatherResults,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from revenge.logs._context import get_request_id, run_in_thread
from revenge.storage._interface import IStorage, ObjectNotFound, StorageError, StoredObject
from revenge.storage._local import validate_key, validate_prefix
from revenge.storage._s3_signing import UNSIGNED_PAYLOAD, S3CredentialSource, sign_request
from revenge.storage._s3_transport import (
    BodyLengthMismatch,
    ChunksProducer,
    FileBodyProducer,
    ObjectBodyProducer,
    ResponseTimeout,
    Watchdog,
    describe_failure,
    discard_body,
    is_transient,
    read_body,
)

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

_STREAM_CHUNK = 256 * 1024
_PART_READ_CHUNK = 1024 * 1024
_WRITE_SLICE = 256 * 1024
_MAX_DOCUMENT = 16 * MiB
_MAX_ERROR_DOCUMENT = 64 * 1024
_MAX_CONTENT_TYPE = 1024
_CONTENT_TYPE = re.compile(r"[\x20-\x7e]+")
_BUCKET = re.compile(r"[A-Za-z0-9._-]{3,255}")
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[A-Za-z0-9_-]+")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
# 429 is not S3's, but some S3-compatible servers throttle with it.
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# HEADs in flight while listing (ListObjectsV2 has no content type).
_LIST_HEAD_CONCURRENCY = 8


class S3RequestError(StorageError):
    """S3 answered with an error: ``status`` is the HTTP status, ``code`` S3's error code."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _shorten(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _query(pairs: Sequence[tuple[str, str]]) -> str:
    # SigV4's encoding, so that the URL sent and the one signed agree.
    return "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" if value else
        quote(name, safe="-_.~")
        for name, value in pairs
    )


@dataclass(frozen=True)
class _Addressing:
    """Where the bucket's URLs point: path-style or virtual-hosted."""

    scheme: str
    netloc: str  # host[:port] as connected to
    base_path: str  # a path prefix of the endpoint, "" usually
    bucket: str
    path_style: bool

    @classmethod
    def build(cls, endpoint: str, region: str, bucket: str, path_style: bool) -> _Addressing:
        if not endpoint:
            endpoint = f"https://s3.{region}.amazonaws.com"
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "the S3 endpoint must be an http:// or https:// URL (or empty for AWS)"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "the S3 endpoint must not contain credentials: set the access key "
                "id and secret access key instead"
            )
        if parts.query or parts.fragment:
            raise ValueError("the S3 endpoint must not have a query or fragment")
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port
        netloc = host if port in (None, default_port) else f"{host}:{port}"
        # Virtual-hosted names need a DNS-safe bucket, a host name rather than
        # an address, and (under TLS) no dots that the certificate cannot cover.
        virtual_possible = (
            _DNS_BUCKET.fullmatch(bucket) is not None
            and not _is_ip_address(parts.hostname)
            and not (parts.scheme == "https" and "." in bucket)
        )
        return cls(
            scheme=parts.scheme,
            netloc=netloc,
            base_path=parts.path.rstrip("/"),
            bucket=bucket,
            path_style=path_style or not virtual_possible,
        )

    @property
    def host(self) -> str:
        return self.netloc if self.path_style else f"{self.bucket}.{self.netloc}"

    @property
    def endpoint(self) -> str:
        """The endpoint as shown in messages."""
        return f"{self.scheme}://{self.netloc}{self.base_path}"

    def url(self, key: str | None = None, query: Sequence[tuple[str, str]] = ()) -> str:
        path = self.base_path
        if self.path_style:
            path += "/" + self.bucket
        if key is not None:
            path += "/" + quote(key, safe="/-_.~")
        elif not self.path_style:
            path += "/"
        text = f"{self.scheme}://{self.host}{path}"
        return f"{text}?{_query(query)}" if query else text


@dataclass
class _Request:
    """One S3 request, possibly sent more than once."""

    operation: str
    method: str
    url: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    payload_hash: str = _EMPTY_SHA256
    # A fresh producer for each attempt (numbered from 1).
    body: Callable[[int], Awaitable[IBodyProducer]] | None = None
    retry: bool = True
    fresh_connection: bool = False


class _Part:
    """
    One part's bytes, in a buffer lent by the reader. ``release`` gives the
    buffer back for a later part: reusing a few long-lived buffers keeps
    memory flat, where a stream of fresh multi-megabyte objects freed in other
    threads leaves the allocator holding far more than is in use (and such
    objects, caught in the reference cycles of Deferreds and producers, wait
    for a garbage collection that large bytes objects do not prompt).
    """

    def __init__(
        self,
        buffer: bytearray,
        size: int,
        crc32: str,
        give_back: Callable[[bytearray], None],
    ) -> None:
        self.size = size
        self.crc32 = crc32  # base64 of the big-endian CRC32, as S3 wants it
        self._buffer: bytearray | None = buffer
        self._give_back = give_back

    def slices(self) -> builtins.list[memoryview]:
        """Views of the bytes in write-sized pieces (no copies)."""
        assert self._buffer is not None, "a released part cannot be sent"
        view = memoryview(self._buffer)
        return [
            view[start : min(start + _WRITE_SLICE, self.size)]
            for start in range(0, self.size, _WRITE_SLICE)
        ]

    def release(self) -> None:
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            self._give_back(buffer)


class _PartReader:
    """Reads a body part by part (thread only), checking a declared length."""

    def __init__(self, body: BinaryIO, part_size: int, declared: int | None, describe: str) -> None:
        self.total = 0
        self.at_end = False
        self._body = body
        self._part_size = part_size
        self._declared = declared
        self._describe = describe
        self._spare: builtins.list[bytearray] = []

    def _give_back(self, buffer: bytearray) -> None:
        self._spare.append(buffer)

    def _longer(self) -> BodyLengthMismatch:
        return BodyLengthMismatch(
            f"the body of {self._describe} is longer than its declared length"
        )

    def read_part(self) -> _Part:
        limit = self._part_size
        if self._declared is not None:
            limit = min(limit, self._declared - self.total)
        buffer = self._spare.pop() if self._spare else bytearray(self._part_size)
        size = 0
        crc = 0
        try:
            while size < limit:
                chunk = self._body.read(min(_PART_READ_CHUNK, limit - size))
                if not chunk:
                    self.at_end = True
                    break
                if len(chunk) > limit - size:
                    if self._declared is not None:
                        raise self._longer()
                    raise StorageError(
                        f"the body of {self._describe} returned more bytes than asked for"
                    )
                buffer[size : size + len(chunk)] = chunk
                size += len(chunk)
                crc = zlib.crc32(chunk, crc)
            self.total += size
            if self._declared is not None:
                if self.total == self._declared and not self.at_end:
                    if self._body.read(1):
                        raise self._longer()
                    self.at_end = True
                if self.at_end and self.total < self._declared:
                    raise BodyLengthMismatch(
                        f"the body of {self._describe} is shorter than its declared length"
                    )
        except BaseException:
            self._give_back(buffer)
            raise
        crc32 = base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")
        return _Part(buffer, size, crc32, self._give_back)


def _rewind_point(body: BinaryIO) -> int | None:
    """Where a seekable body starts, or None when it cannot be read again (thread only)."""
    try:
        seekable = getattr(body, "seekable", None)
        if callable(seekable) and seekable():
            return body.tell()
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _header(response: IResponse, name: str) -> str | None:
    values = response.headers.getRawHeaders(name.encode("ascii"))
    return values[0].decode("latin-1") if values else None


def _unquote_etag(value: str) -> str:
    return value.strip().strip('"')


def _local_name(element: ElementTree.Element) -> str:
    return element.tag.rpartition("}")[2]


def _child_text(element: ElementTree.Element, name: str) -> str | None:
    for child in element:
        if _local_name(child) == name:
            return child.text or ""
    return None


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


@implementer(IStorage)
class S3Storage:
    """
    Objects in one S3 bucket (see the module docstring for how bodies move).

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
        self._addressing = _Addressing.build(endpoint, region, bucket, use_path_style)
        self._reactor = reactor
        self._credentials = credentials or S3CredentialSource(
            reactor, region, access_key_id, secret_access_key
        )
        self._timeout = timeout
        self._check_timeout = check_timeout
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._list_page_size = list_page_size
        self._random = random.Random()
        # Idle connections are dropped well before S3's own idle timeout, so a
        # reused connection is rarely one the server has already closed.
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        self._pool.cachedConnectionTimeout = 10
        self._client = HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=connect_timeout))
        self._fresh_client = HTTPClient(
            Agent(
                reactor,
                pool=HTTPConnectionPool(reactor, persistent=False),
                connectTimeout=connect_timeout,
            )
        )

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to (no credentials in it)."""
        return self._addressing.endpoint

    def __repr__(self) -> str:
        return f"<S3Storage bucket={self.bucket!r} endpoint={self.endpoint!r}>"

    def close(self) -> Deferred[None]:
        """Close pooled connections (the provider stays usable)."""
        d: Deferred[None] = self._pool.closeCachedConnections()
        return d

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

    # Sending ---------------------------------------------------------------------

    def _object_target(self, key: str) -> str:
        return f"of {_shorten(key)} in bucket {self.bucket!r}"

    @property
    def _bucket_target(self) -> str:
        return f"on bucket {self.bucket!r}"

    def _scrub(self, text: str) -> str:
        for secret in self._credentials.secrets():
            text = text.replace(secret, "***")
        return text

    async def _backoff(self, attempt: int) -> None:
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
        # Half fixed, half random: spreads out clients that failed together.
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        await deferLater(self._reactor, delay, lambda: None)

    async def _attempt(
        self,
        request: _Request,
        producer: IBodyProducer | None,
        request_id: str | None,
        timeout: float,
    ) -> IResponse:
        credentials = await self._credentials.current()
        headers = dict(request.headers)
        headers["Host"] = self._addressing.host
        signed = sign_request(
            credentials,
            self.region,
            request.method,
            request.url,
            headers,
            request.payload_hash,
        )
        if request_id:
            # Unsigned, so a proxy that rewrites it cannot break the signature.
            signed["X-Request-ID"] = request_id
        client = self._fresh_client if request.fresh_connection else self._client
        sending = client.request(
            request.method,
            request.url,
            headers=Headers({name: [value] for name, value in signed.items()}),
            data=producer,
            unbuffered=True,
            allow_redirects=False,
        )
        watchdog = Watchdog(self._reactor, timeout, sending.cancel)
        if isinstance(producer, (ChunksProducer, FileBodyProducer)):
            producer.on_progress = watchdog.poke
        try:
            response: IResponse = await sending
        except Exception as error:
            if watchdog.expired:
                raise ResponseTimeout(f"no progress for {timeout:g}s") from error
            raise
        finally:
            watchdog.stop()
        return response

    async def _send(
        self,
        request: _Request,
        request_id: str | None,
        *,
        attempts: int | None = None,
        timeout: float | None = None,
    ) -> IResponse:
        """
        Send ``request`` until it gets an answer that is not worth retrying,
        and return that response with its body unread. Connection failures
        that outlast the retries become ``StorageError``.
        """
        limit = (attempts or self._attempts) if request.retry else 1
        for attempt in range(1, limit + 1):
            producer = await request.body(attempt) if request.body is not None else None
            try:
                response = await self._attempt(
                    request, producer, request_id, timeout or self._timeout
                )
            except CancelledError:
                raise
            except Exception as error:
                if isinstance(producer, FileBodyProducer):
                    # A read may still be running; it may fail, and the body
                    # must not be rewound under it.
                    await producer.wait_idle()
                body_error = getattr(producer, "body_error", None)
                if body_error is not None:
                    # The body's own failure, not the network's: never retried.
                    raise body_error from None
                if isinstance(error, StorageError):
                    raise  # ours already (no credentials, say)
                if not is_transient(error):
                    raise StorageError(
                        f"S3 {request.operation} {request.target} failed: "
                        f"{describe_failure(error)}"
                    ) from error
                if attempt == limit:
                    raise StorageError(
                        f"S3 {request.operation} {request.target} at "
                        f"{self._addressing.endpoint} failed: {describe_failure(error)}"
                    ) from error
                reason = describe_failure(error)
            else:
                if response.code not in _RETRYABLE_STATUS or attempt == limit:
                    return response
                reason = f"HTTP {response.code}"
                try:
                    await read_body(self._reactor, response, _MAX_ERROR_DOCUMENT, self._timeout)
                except Exception:
                    pass  # the connection is closed then; nothing else to do
            _log.info(
                "S3 {operation} {target} failed ({reason}); attempt {attempt} of {attempts}, "
                "retrying",
                operation=request.operation,
                target=request.target,
                reason=reason,
                attempt=attempt,
                attempts=limit,
            )
            await self._backoff(attempt)
        raise AssertionError("unreachable")

    async def _error(self, request: _Request, response: IResponse) -> S3RequestError:
        """The error an unexpected answer means, its XML body read if any."""
        code = message = None
        try:
            document = await read_body(
                self._reactor, response, _MAX_ERROR_DOCUMENT, self._timeout
            )
            if document.strip():
                root = ElementTree.fromstring(document)
                code = _child_text(root, "Code")
                message = _child_text(root, "Message")
        except Exception:
            pass  # status alone will do
        return self._error_from(request, response, code, message)

    def _error_from(
        self, request: _Request, response: IResponse, code: str | None, message: str | None
    ) -> S3RequestError:
        code = code or f"HTTP {response.code}"
        text = f"S3 {request.operation} {request.target} failed: {code} (HTTP {response.code})"
        if message:
            message = " ".join(message.split())
            text += ": " + (message if len(message) <= 300 else message[:297] + "...")
        region = _header(response, "x-amz-bucket-region")
        if region and region != self.region:
            text += f" (the bucket is in region {region!r}, not {self.region!r})"
        s3_request_id = _header(response, "x-amz-request-id")
        if s3_request_id:
            text += f" [S3 request id {s3_request_id}]"
        return S3RequestError(self._scrub(text), response.code, code)

    async def _expect_success(self, request: _Request, response: IResponse) -> bytes:
        """The body of a 2xx answer (read whole: only small documents), else its error."""
        if not 200 <= response.code < 300:
            raise await self._error(request, response)
        try:
            return await read_body(self._reactor, response, _MAX_DOCUMENT, self._timeout)
        except Exception as error:
            raise StorageError(
                f"S3 {request.operation} {request.target} failed while reading the "
                f"answer: {describe_failure(error)}"
            ) from error

    def _parse(self, request: _Request, document: bytes) -> ElementTree.Element:
        try:
            return ElementTree.fromstring(document)
        except ElementTree.ParseError as error:
            raise StorageError(
                f"S3 {request.operation} {request.target} returned an unreadable document"
            ) from error

    def _metadata(self, key: str, response: IResponse, request: _Request) -> StoredObject:
        # Twisted keeps a GET's Content-Length for framing (response.length);
        # a HEAD's stays among the headers.
        length = _header(response, "content-length")
        if length is None and isinstance(response.length, int):
            length = str(response.length)
        etag = _header(response, "etag")
        modified = _header(response, "last-modified")
        try:
            if length is None or etag is None or modified is None:
                raise ValueError("missing Content-Length, ETag or Last-Modified")
            last_modified = parsedate_to_datetime(modified)
            if last_modified.tzinfo is None:
                last_modified = last_modified.replace(tzinfo=timezone.utc)
            return StoredObject(
                key=key,
                length=int(length),
                content_type=_header(response, "content-type") or "",
                etag=_unquote_etag(etag),
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
        if length is not None and length <= self.multipart_threshold:
            etag, date = await self._put_streaming(key, body, content_type, length, request_id)
            size = length
        else:
            size, etag, date = await self._put_in_parts(
                key, body, content_type, length, request_id
            )
        return await self._stored(key, size, content_type, etag, date, request_id)

    async def _put_streaming(
        self,
        key: str,
        body: BinaryIO,
        content_type: str,
        length: int,
        request_id: str | None,
    ) -> tuple[str, str | None]:
        start = await run_in_thread(self._reactor, _rewind_point, body)
        describe = _shorten(key)

        async def make_body(attempt: int) -> IBodyProducer:
            if attempt > 1:
                assert start is not None
                await run_in_thread(self._reactor, body.seek, start)
            return FileBodyProducer(self._reactor, body, length, _STREAM_CHUNK, describe)

        request = _Request(
            "PutObject",
            "PUT",
            self._addressing.url(key),
            self._object_target(key),
            headers={"Content-Type": content_type},
            payload_hash=UNSIGNED_PAYLOAD,
            body=make_body,
            retry=start is not None,
            fresh_connection=start is None,
        )
        response = await self._send(request, request_id)
        await self._expect_success(request, response)
        return _unquote_etag(_header(response, "etag") or ""), _header(response, "date")

    async def _put_in_parts(
        self,
        key: str,
        body: BinaryIO,
        content_type: str,
        length: int | None,
        request_id: str | None,
    ) -> tuple[int, str, str | None]:
        reader = _PartReader(body, self.part_size, length, _shorten(key))
        first = await run_in_thread(self._reactor, reader.read_part)
        second = None
        if not reader.at_end:
            second = await run_in_thread(self._reactor, reader.read_part)
        try:
            if second is None or second.size == 0:
                etag, date = await self._put_buffered(key, first, content_type, request_id)
                return first.size, etag, date
            etag = await self._multipart(key, reader, [first, second], content_type, request_id)
            return reader.total, etag, None
        finally:
            # Parts are dropped as soon as they are sent (see _multipart); these
            # two are also held by this frame.
            first.release()
            if second is not None:
                second.release()

    async def _put_buffered(
        self, key: str, part: _Part, content_type: str, request_id: str | None
    ) -> tuple[str, str | None]:
        async def make_body(attempt: int) -> IBodyProducer:
            return ChunksProducer(part.slices())

        request = _Request(
            "PutObject",
            "PUT",
            self._addressing.url(key),
            self._object_target(key),
            headers={"Content-Type": content_type, "x-amz-checksum-crc32": part.crc32},
            payload_hash=UNSIGNED_PAYLOAD,
            body=make_body,
        )
        response = await self._send(request, request_id)
        await self._expect_success(request, response)
        return _unquote_etag(_header(response, "etag") or ""), _header(response, "date")

    async def _multipart(
        self,
        key: str,
        reader: _PartReader,
        parts: builtins.list[_Part],
        content_type: str,
        request_id: str | None,
    ) -> str:
        """
        Send the body as a multipart upload: up to ``part_concurrency`` parts
        on the wire while the next one is read, so at most that many parts
        plus one are in memory. Any failure (the body's, a part's) lets the
        parts in flight settle, then aborts the upload.
        """
        upload_id = await self._create_multipart(key, content_type, request_id)
        waiting: deque[_Part] = deque(parts)
        slots = DeferredSemaphore(self.part_concurrency)
        uploads: builtins.list[Deferred[None]] = []
        sent: dict[int, tuple[str, str]] = {}  # part number: (ETag, CRC32)
        failures: builtins.list[Failure] = []
        current: _Part | None = None

        async def send(number: int, part: _Part) -> None:
            try:
                etag = await self._upload_part(key, upload_id, number, part, request_id)
                sent[number] = (etag, part.crc32)
            finally:
                part.release()
                slots.release()

        try:
            while True:
                if waiting:
                    current = waiting.popleft()
                elif reader.at_end:
                    break
                else:
                    current = await run_in_thread(self._reactor, reader.read_part)
                if current.size == 0:
                    break
                await slots.acquire()
                if failures:
                    break  # a part failed: send no more
                upload = ensureDeferred(send(len(uploads) + 1, current))
                current = None
                uploads.append(upload.addErrback(failures.append))
            await DeferredList(uploads)
            if failures:
                failures[0].raiseException()
            ordered = [sent[number] for number in sorted(sent)]
            return await self._complete_multipart(key, upload_id, ordered, request_id)
        except BaseException:
            if current is not None:
                current.release()
            for unsent in waiting:
                unsent.release()
            # Parts still on the wire could land after an abort; let them settle.
            await DeferredList(uploads)
            await self._abort_multipart(key, upload_id, request_id)
            raise

    async def _create_multipart(
        self, key: str, content_type: str, request_id: str | None
    ) -> str:
        request = _Request(
            "CreateMultipartUpload",
            "POST",
            self._addressing.url(key, [("uploads", "")]),
            self._object_target(key),
            # Every part then carries its CRC32 and S3 checks each one.
            headers={"Content-Type": content_type, "x-amz-checksum-algorithm": "CRC32"},
            retry=False,
        )
        document = await self._expect_success(request, await self._send(request, request_id))
        upload_id = _child_text(self._parse(request, document), "UploadId")
        if not upload_id:
            raise StorageError(
                f"S3 {request.operation} {request.target} returned no upload id"
            )
        return upload_id

    async def _upload_part(
        self, key: str, upload_id: str, number: int, part: _Part, request_id: str | None
    ) -> str:
        async def make_body(attempt: int) -> IBodyProducer:
            return ChunksProducer(part.slices())

        request = _Request(
            "UploadPart",
            "PUT",
            self._addressing.url(key, [("partNumber", str(number)), ("uploadId", upload_id)]),
            f"{number} {self._object_target(key)}",
            headers={"x-amz-checksum-crc32": part.crc32},
            payload_hash=UNSIGNED_PAYLOAD,
            body=make_body,
        )
        response = await self._send(request, request_id)
        await self._expect_success(request, response)
        etag = _header(response, "etag")
        if not etag:
            raise StorageError(f"S3 {request.operation} {request.target} returned no ETag")
        return etag

    async def _complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[str, str]],
        request_id: str | None,
    ) -> str:
        document = (
            f'<CompleteMultipartUpload xmlns="{_S3_NAMESPACE}">'
            + "".join(
                f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag>"
                f"<ChecksumCRC32>{crc32}</ChecksumCRC32></Part>"
                for number, (etag, crc32) in enumerate(parts, start=1)
            )
            + "</CompleteMultipartUpload>"
        ).encode("utf-8")

        async def make_body(attempt: int) -> IBodyProducer:
            return ChunksProducer([document])

        request = _Request(
            "CompleteMultipartUpload",
            "POST",
            self._addressing.url(key, [("uploadId", upload_id)]),
            self._object_target(key),
            headers={"Content-Type": "application/xml"},
            payload_hash=hashlib.sha256(document).hexdigest(),
            body=make_body,
            retry=False,
        )
        response = await self._send(request, request_id)
        answer = self._parse(request, await self._expect_success(request, response))
        # S3 may answer 200 and still have failed: the error is in the body.
        if _local_name(answer) == "Error":
            raise self._error_from(
                request, response, _child_text(answer, "Code"), _child_text(answer, "Message")
            )
        return _unquote_etag(_child_text(answer, "ETag") or "")

    async def _abort_multipart(self, key: str, upload_id: str, request_id: str | None) -> None:
        request = _Request(
            "AbortMultipartUpload",
            "DELETE",
            self._addressing.url(key, [("uploadId", upload_id)]),
            self._object_target(key),
        )
        try:
            response = await self._send(request, request_id)
            if response.code != 404:  # already gone is fine
                await self._expect_success(request, response)
            else:
                await read_body(self._reactor, response, _MAX_ERROR_DOCUMENT, self._timeout)
        except Exception as error:
            # The upload's failure is what the caller needs to hear about; a
            # lifecycle rule on incomplete uploads cleans up what is left.
            _log.warn(
                "could not abort a failed multipart upload {target}: {error}",
                target=request.target,
                error=str(error),
            )

    async def _stored(
        self,
        key: str,
        size: int,
        content_type: str,
        etag: str,
        date: str | None,
        request_id: str | None,
    ) -> StoredObject:
        """What was stored, with the Last-Modified that ``get`` will show."""
        try:
            found = await self._head(key, request_id)
        except StorageError as error:
            _log.warn("stored {key} but could not read its metadata: {error}", key=key,
                      error=str(error))
            found = None
        if found is not None and found.etag == etag:
            return found
        # Overwritten since, or unreadable: describe what we wrote.
        try:
            last_modified = parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        except (TypeError, ValueError):
            last_modified = datetime.now(timezone.utc)
        if last_modified.tzinfo is None:
            last_modified = last_modified.replace(tzinfo=timezone.utc)
        return StoredObject(key, size, content_type, etag, last_modified.astimezone(timezone.utc))

    async def _head(self, key: str, request_id: str | None) -> StoredObject | None:
        request = _Request(
            "HeadObject", "HEAD", self._addressing.url(key), self._object_target(key)
        )
        response = await self._send(request, request_id)
        if response.code == 404:
            await read_body(self._reactor, response, _MAX_ERROR_DOCUMENT, self._timeout)
            return None
        await self._expect_success(request, response)
        return self._metadata(key, response, request)

    async def _get(self, key: str, request_id: str | None) -> StoredObject:
        request = _Request("GetObject", "GET", self._addressing.url(key), self._object_target(key))
        response = await self._send(request, request_id)
        if response.code == 404:
            error = await self._error(request, response)
            if error.code in ("NoSuchKey", "HTTP 404"):
                raise ObjectNotFound(key)
            raise error
        if not 200 <= response.code < 300:
            raise await self._error(request, response)
        try:
            meta = self._metadata(key, response, request)
        except StorageError:
            discard_body(response)
            raise
        producer = ObjectBodyProducer(
            self._reactor, response, meta.length, self._timeout, _shorten(key)
        )
        return StoredObject(
            meta.key, meta.length, meta.content_type, meta.etag, meta.last_modified, producer
        )

    async def _delete(self, key: str, request_id: str | None) -> None:
        request = _Request(
            "DeleteObject", "DELETE", self._addressing.url(key), self._object_target(key)
        )
        response = await self._send(request, request_id)
        if response.code == 404:
            error = await self._error(request, response)
            if error.code in ("NoSuchKey", "HTTP 404"):
                return  # some servers say so; deleting a missing key is fine
            raise error
        await self._expect_success(request, response)

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
            request = _Request(
                "ListObjectsV2",
                "GET",
                self._addressing.url(None, query),
                f"with prefix {_shorten(prefix)} in bucket {self.bucket!r}",
            )
            document = await self._expect_success(request, await self._send(request, request_id))
            root = self._parse(request, document)
            for element in root:
                if _local_name(element) != "Contents":
                    continue
                key = unquote(_child_text(element, "Key") or "")
                try:
                    keys.append(validate_key(key))
                except StorageError:
                    continue  # not a key this provider could have written
            truncated = (_child_text(root, "IsTruncated") or "").lower() == "true"
            token = _child_text(root, "NextContinuationToken")
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
        request = _Request(
            "HeadBucket", "HEAD", self._addressing.url(), self._bucket_target
        )
        where = f"S3 bucket {self.bucket!r} at {self._addressing.endpoint}"
        try:
            response = await self._send(
                request, request_id, attempts=1, timeout=self._check_timeout
            )
        except StorageError as failure:
            cause = failure.__cause__
            detail = describe_failure(cause) if cause is not None else str(failure)
            raise StorageError(f"{where} is unreachable: {detail}") from None
        if 200 <= response.code < 300:
            await read_body(self._reactor, response, _MAX_ERROR_DOCUMENT, self._check_timeout)
            return
        error = await self._error(request, response)
        if response.code == 404:
            raise StorageError(f"{where} does not exist (run 'revenge storage init')")
        if response.code == 403:
            raise StorageError(
                f"{where}: access denied (HTTP 403); check the credentials and the "
                "bucket's policy"
            )
        raise StorageError(f"{where} is not usable: {error}")

    async def _ensure_bucket(self, request_id: str | None) -> bool:
        head = _Request("HeadBucket", "HEAD", self._addressing.url(), self._bucket_target)
        response = await self._send(head, request_id)
        if 200 <= response.code < 300:
            await read_body(self._reactor, response, _MAX_ERROR_DOCUMENT, self._timeout)
            return False
        if response.code != 404:
            error = await self._error(head, response)
            if response.code == 403:
                raise StorageError(
                    f"S3 bucket {self.bucket!r} at {self._addressing.endpoint}: access denied "
                    "(HTTP 403); the name may be taken by another account, or the "
                    "credentials lack s3:ListBucket"
                )
            raise error
        await read_body(self._reactor, response, _MAX_ERROR_DOCUMENT, self._timeout)

        document = b""
        if self.region != "us-east-1":
            # Outside us-east-1, S3 wants the region named in the request body.
            document = (
                f'<CreateBucketConfiguration xmlns="{_S3_NAMESPACE}">'
                f"<LocationConstraint>{escape(self.region)}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode("utf-8")

        async def make_body(attempt: int) -> IBodyProducer:
            return ChunksProducer([document] if document else [])

        create = _Request(
            "CreateBucket",
            "PUT",
            self._addressing.url(),
            self._bucket_target,
            headers={"Content-Type": "application/xml"} if document else {},
            payload_hash=hashlib.sha256(document).hexdigest(),
            body=make_body,
        )
        response = await self._send(create, request_id)
        if response.code == 409:
            error = await self._error(create, response)
            if error.code == "BucketAlreadyOwnedByYou":
                return False  # created meanwhile, by us: fine
            raise error
        await self._expect_success(create, response)
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
