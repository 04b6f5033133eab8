"""
The request engine of the ``s3`` provider: where a request goes, how it is
signed, sent, timed out and retried, and what an error answer means.

It knows S3's wire rules (SigV4, addressing, error documents) but nothing
of objects: ``revenge.storage._s3`` and ``revenge.storage._s3_multipart``
build the operations on it, ``revenge.storage._s3_transport`` moves the
bytes and ``revenge.storage._s3_signing`` signs.

Every request has a timeout on connecting and on silence (no progress for
``timeout`` seconds while sending or receiving); idempotent requests are
retried on 5xx answers and connection failures with exponential backoff and
jitter. Errors are ``StorageError`` naming the operation, bucket and key,
never credentials or signatures. The serving request's id goes out as
``X-Request-ID``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from revenge.storage._file_producer import ThreadedFileProducer
from revenge.storage._interface import StorageError
from revenge.storage._keys import shorten
from revenge.storage._s3_signing import S3CredentialSource, sign_request
from revenge.storage._s3_transport import (
    ChunksProducer,
    ResponseTimeout,
    Watchdog,
    describe_failure,
    is_transient,
    read_body,
)

__all__ = [
    "MAX_DOCUMENT",
    "S3_NAMESPACE",
    "S3Addressing",
    "S3Engine",
    "S3Request",
    "S3RequestError",
    "child_text",
    "header",
    "local_name",
    "unquote_etag",
]

# The provider's log lines keep the namespace they had before the engine had
# a module of its own, so filters on it still match.
_log = Logger(namespace="revenge.storage._s3")

MiB = 1024 * 1024
# The largest document read whole (a listing page, a multipart answer).
MAX_DOCUMENT = 16 * MiB
# The XML namespace of S3's request and answer documents.
S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_MAX_ERROR_DOCUMENT = 64 * 1024
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# 429 is not S3's, but some S3-compatible servers throttle with it.
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class S3RequestError(StorageError):
    """S3 answered with an error: ``status`` is the HTTP status, ``code`` S3's error code."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
class S3Addressing:
    """Where the bucket's URLs point: path-style or virtual-hosted."""

    scheme: str
    netloc: str  # host[:port] as connected to
    base_path: str  # a path prefix of the endpoint, "" usually
    bucket: str
    path_style: bool

    @classmethod
    def build(cls, endpoint: str, region: str, bucket: str, path_style: bool) -> S3Addressing:
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
class S3Request:
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


def header(response: IResponse, name: str) -> str | None:
    """The first value of a response header, or None."""
    values = response.headers.getRawHeaders(name.encode("ascii"))
    return values[0].decode("latin-1") if values else None


def unquote_etag(value: str) -> str:
    return value.strip().strip('"')


def local_name(element: ElementTree.Element) -> str:
    """An element's tag without its XML namespace."""
    return element.tag.rpartition("}")[2]


def child_text(element: ElementTree.Element, name: str) -> str | None:
    """The text of the first child called ``name`` (any namespace), or None."""
    for child in element:
        if local_name(child) == name:
            return child.text or ""
    return None


class _QuietClientFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory" and "Stopping factory" at info for every
    # connection a pool opens; the storage probes open one a second, and two
    # lines of nothing a second drown an operator's log.
    noisy = False


def quiet_pool(reactor: Any, *, persistent: bool) -> HTTPConnectionPool:
    """An ``HTTPConnectionPool`` whose connections do not log their factories."""
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    # A private member (TWISTED_INTERNALS in revenge/web/_request.py lists the
    # others); tests/storage/test_s3.py fails if the lines come back.
    pool._factory = _QuietClientFactory
    return pool


class S3Engine:
    """
    Sends requests to one bucket: signs each attempt, times it out, retries
    what is worth retrying and turns error answers into ``S3RequestError``.

    Holds the connection pools; :meth:`close` drops pooled connections.
    """

    def __init__(
        self,
        reactor: Any,
        addressing: S3Addressing,
        region: str,
        credentials: S3CredentialSource,
        *,
        connect_timeout: float,
        timeout: float,
        attempts: int,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        self.reactor = reactor
        self.addressing = addressing
        self.region = region
        self.timeout = timeout
        self._credentials = credentials
        self._attempts = attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._random = random.Random()
        # Idle connections are dropped well before S3's own idle timeout, so a
        # reused connection is rarely one the server has already closed.
        self._pool = quiet_pool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        self._pool.cachedConnectionTimeout = 10
        self._client = HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=connect_timeout))
        self._fresh_client = HTTPClient(
            Agent(
                reactor,
                pool=quiet_pool(reactor, persistent=False),
                connectTimeout=connect_timeout,
            )
        )

    @property
    def bucket(self) -> str:
        return self.addressing.bucket

    def close(self) -> Deferred[None]:
        """Close pooled connections (the engine stays usable)."""
        d: Deferred[None] = self._pool.closeCachedConnections()
        return d

    # What messages name -----------------------------------------------------------

    def object_target(self, key: str) -> str:
        return f"of {shorten(key)} in bucket {self.bucket!r}"

    @property
    def bucket_target(self) -> str:
        return f"on bucket {self.bucket!r}"

    def _scrub(self, text: str) -> str:
        for secret in self._credentials.secrets():
            text = text.replace(secret, "***")
        return text

    # Sending ---------------------------------------------------------------------

    async def _backoff(self, attempt: int) -> None:
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
        # Half fixed, half random: spreads out clients that failed together.
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        await deferLater(self.reactor, delay, lambda: None)

    async def _attempt(
        self,
        request: S3Request,
        producer: IBodyProducer | None,
        request_id: str | None,
        timeout: float,
    ) -> IResponse:
        credentials = await self._credentials.current()
        headers = dict(request.headers)
        headers["Host"] = self.addressing.host
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
        watchdog = Watchdog(self.reactor, timeout, sending.cancel)
        if isinstance(producer, (ChunksProducer, ThreadedFileProducer)):
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

    async def send(
        self,
        request: S3Request,
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
                    request, producer, request_id, timeout or self.timeout
                )
            except CancelledError:
                raise
            except Exception as error:
                if isinstance(producer, ThreadedFileProducer):
                    # A read may still be running; it may fail, and the body
                    # must not be rewound under it.
                    await producer.wait_idle()
                    if producer.read_error is not None:
                        # The body's own failure, not the network's: never retried.
                        raise producer.read_error from None
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
                        f"{self.addressing.endpoint} failed: {describe_failure(error)}"
                    ) from error
                reason = describe_failure(error)
            else:
                if response.code not in _RETRYABLE_STATUS or attempt == limit:
                    return response
                reason = f"HTTP {response.code}"
                try:
                    await self.drain(response)
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

    # Reading answers ------------------------------------------------------------------

    async def drain(self, response: IResponse, timeout: float | None = None) -> bytes:
        """
        Read a small answer nobody needs (an error page, a HEAD's empty
        body), so that its connection can go back to the pool.
        """
        return await read_body(
            self.reactor, response, _MAX_ERROR_DOCUMENT, timeout or self.timeout
        )

    async def error(self, request: S3Request, response: IResponse) -> S3RequestError:
        """The error an unexpected answer means, its XML body read if any."""
        code = message = None
        try:
            document = await self.drain(response)
            if document.strip():
                root = ElementTree.fromstring(document)
                code = child_text(root, "Code")
                message = child_text(root, "Message")
        except Exception:
            pass  # status alone will do
        return self.error_from(request, response, code, message)

    def error_from(
        self, request: S3Request, response: IResponse, code: str | None, message: str | None
    ) -> S3RequestError:
        """The error for an answer whose S3 error code and message are known."""
        # Only what the server said is scrubbed of the credentials: the
        # operation, bucket and key are ours, and a bucket named like the
        # key id (MinIO set-ups often call both "revenge") must stay legible.
        code = self._scrub(code or f"HTTP {response.code}")
        text = f"S3 {request.operation} {request.target} failed: {code} (HTTP {response.code})"
        if message:
            message = self._scrub(" ".join(message.split()))
            text += ": " + (message if len(message) <= 300 else message[:297] + "...")
        region = header(response, "x-amz-bucket-region")
        if region and region != self.region:
            text += f" (the bucket is in region {self._scrub(region)!r}, not {self.region!r})"
        s3_request_id = header(response, "x-amz-request-id")
        if s3_request_id:
            text += f" [S3 request id {self._scrub(s3_request_id)}]"
        return S3RequestError(text, response.code, code)

    async def expect_success(self, request: S3Request, response: IResponse) -> bytes:
        """The body of a 2xx answer (read whole: only small documents), else its error."""
        if not 200 <= response.code < 300:
            raise await self.error(request, response)
        try:
            return await read_body(self.reactor, response, MAX_DOCUMENT, self.timeout)
        except Exception as error:
            raise StorageError(
                f"S3 {request.operation} {request.target} failed while reading the "
                f"answer: {describe_failure(error)}"
            ) from error

    def parse(self, request: S3Request, document: bytes) -> ElementTree.Element:
        """An answer's XML document, or a ``StorageError`` naming the request."""
        try:
            return ElementTree.fromstring(document)
        except ElementTree.ParseError as error:
            raise StorageError(
                f"S3 {request.operation} {request.target} returned an unreadable document"
            ) from error
