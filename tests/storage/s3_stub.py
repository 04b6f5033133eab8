"""
A loopback HTTP server to put in front of an S3 server in tests: it records
every request (and whether its SigV4 signature checks out), answers some of
them itself as told (errors, dropped connections, silence), and forwards the
rest upstream.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import treq
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

# Headers that describe one hop, not the request.
_HOP_HEADERS = {
    b"connection",
    b"content-length",
    b"host",
    b"keep-alive",
    b"transfer-encoding",
    b"accept-encoding",
    b"date",
    b"server",
}

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/s3/"
    r"aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    uri: str
    headers: dict[str, list[str]]
    body: bytes
    signature_valid: bool | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.uri).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def operation(self) -> str:
        """A rough S3 operation name, enough for rules and assertions."""
        query = self.query
        if self.method == "PUT":
            return "UploadPart" if "partNumber" in query else "PutObject"
        if self.method == "POST":
            return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
        if self.method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        if self.method == "GET":
            return "ListObjectsV2" if "list-type" in query else "GetObject"
        return "Head"


def signature_is_valid(seen: Seen, host: str, secret_key: str) -> bool:
    """Recompute the SigV4 signature from what arrived, as S3 would."""
    authorization = seen.header("authorization") or ""
    match = _AUTHORIZATION.fullmatch(authorization)
    amz_date = seen.header("x-amz-date")
    if match is None or amz_date is None:
        return False
    signed = match["signed"].split(";")
    headers = {name: (seen.header(name) or "") for name in signed}
    if "host" in signed:
        headers["host"] = seen.header("host") or host
    request = AWSRequest(method=seen.method, url=f"http://{host}{seen.uri}", headers=headers)
    request.context["timestamp"] = amz_date
    signer = S3SigV4Auth(ReadOnlyCredentials(match["key"], secret_key, None), "s3", match["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return hmac.compare_digest(expected, match["signature"])


# What a rule does with a request it matches.
Action = Callable[[Request, Seen], Any]


def answer(status: int, code: str = "", message: str = "", body: bytes | None = None) -> Action:
    """Reply with an S3-style XML error (or the given body)."""

    def act(request: Request, seen: Seen) -> bytes:
        request.setResponseCode(status)
        payload = body
        if payload is None:
            payload = (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message><RequestId>stub</RequestId></Error>"
            ).encode()
        request.setHeader(b"content-type", b"application/xml")
        request.setHeader(b"x-amz-request-id", b"STUB-REQUEST")
        if seen.method == "HEAD":
            return b""
        return payload

    return act


def drop_connection(request: Request, seen: Seen) -> object:
    """Close the connection without a response."""
    assert request.channel is not None
    request.channel.transport.abortConnection()  # type: ignore[union-attr]
    return NOT_DONE_YET


def stall_body(length: int, sent: bytes) -> Action:
    """Promise ``length`` bytes, send ``sent``, then say nothing more."""

    def act(request: Request, seen: Seen) -> object:
        request.setHeader(b"content-length", str(length).encode())
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"etag", b'"stalled"')
        request.setHeader(b"last-modified", b"Fri, 27 Nov 2026 12:00:00 GMT")
        request.write(sent)
        return NOT_DONE_YET

    return act


@dataclass
class Rule:
    matches: Callable[[Seen], bool]
    action: Action
    remaining: int


@dataclass
class S3Stub(Resource):
    """The recording, rule-following, forwarding resource."""

    upstream: str | None
    secret_key: str | None = None
    seen: list[Seen] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    isLeaf = True

    def __post_init__(self) -> None:
        Resource.__init__(self)

    def when(self, matches: Callable[[Seen], bool], action: Action, times: int = 1_000_000) -> None:
        """Apply ``action`` to the next ``times`` requests that ``matches``."""
        self.rules.append(Rule(matches, action, times))

    def operations(self) -> list[str]:
        return [seen.operation for seen in self.seen]

    def render(self, request: Request) -> Any:
        assert request.method is not None and request.uri is not None
        headers: dict[str, list[str]] = {}
        for name, values in request.requestHeaders.getAllRawHeaders():
            headers[name.decode("latin-1").lower()] = [v.decode("latin-1") for v in values]
        assert request.content is not None
        seen = Seen(
            request.method.decode(), request.uri.decode("latin-1"), headers, request.content.read()
        )
        if self.secret_key is not None:
            host = seen.header("host") or ""
            seen.signature_valid = signature_is_valid(seen, host, self.secret_key)
        self.seen.append(seen)
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(seen):
                rule.remaining -= 1
                return rule.action(request, seen)
        if self.upstream is None:
            return answer(501, "NotImplemented", "no upstream")(request, seen)
        ensureDeferred(self._forward(request, seen))
        return NOT_DONE_YET

    async def _forward(self, request: Request, seen: Seen) -> None:
        assert self.upstream is not None
        forwarded = {
            name.encode(): [value.encode("latin-1") for value in values]
            for name, values in seen.headers.items()
            if name.encode() not in _HOP_HEADERS
        }
        try:
            response = await treq.request(
                seen.method,
                self.upstream + seen.uri,
                headers=forwarded,
                data=seen.body if seen.method in ("PUT", "POST") else None,
                allow_redirects=False,
            )
            body = await response.content()
        except Exception:
            request.setResponseCode(502)
            request.finish()
            return
        request.setResponseCode(response.code)
        for name, values in response.headers.getAllRawHeaders():
            if name.lower() not in _HOP_HEADERS or (
                seen.method == "HEAD" and name.lower() == b"content-length"
            ):
                request.responseHeaders.setRawHeaders(name, values)
        if seen.method == "HEAD":
            length = response.length if isinstance(response.length, int) else None
            if length is not None and not request.responseHeaders.hasHeader(b"content-length"):
                request.setHeader(b"content-length", str(length).encode())
        else:
            request.setHeader(b"content-length", str(len(body)).encode())
            request.write(body)
        request.finish()


class StubServer:
    """An :class:`S3Stub` listening on 127.0.0.1."""

    def __init__(self, upstream: str | None, secret_key: str | None = None) -> None:
        self.stub = S3Stub(upstream, secret_key)
        self._port = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Site(self.stub), interface="127.0.0.1"
        )
        self.url = f"http://127.0.0.1:{self._port.getHost().port}"

    async def stop(self) -> None:
        await self._port.stopListening()


class _Silent(Protocol):
    """Accepts a connection and never says anything."""


class SilentServer:
    """A listening socket on 127.0.0.1 that never answers."""

    def __init__(self) -> None:
        self.connections = 0
        factory = Factory.forProtocol(_Silent)
        original = factory.buildProtocol

        def build(address: Any) -> Protocol | None:
            self.connections += 1
            return original(address)

        factory.buildProtocol = build  # type: ignore[method-assign]
        self._port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._port.getHost().port}"

    async def stop(self) -> None:
        await self._port.stopListening()
