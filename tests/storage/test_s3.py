"""
The ``s3`` provider beyond the shared contract: multipart uploads, retries,
timeouts, request ids, credentials, addressing and signing. Most tests run
against moto on loopback, some with a recording stub in front of it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import botocore.auth
import pytest
import pytest_twisted
from botocore.credentials import ReadOnlyCredentials
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone, ResponseFailed
from twisted.internet.error import ConnectionLost
from zope.interface.verify import verifyObject

from revenge.logs import current_request_id
from revenge.providers import STORAGE_GROUP, create_provider
from revenge.storage import IStorage, ObjectNotFound, StorageError, ThreadedFileProducer
from revenge.storage._s3 import MIN_PART_SIZE, S3RequestError, S3Storage
from revenge.storage._s3_engine import S3Addressing
from revenge.storage._s3_signing import S3CredentialSource, sign_request
from revenge.storage._s3_transport import ObjectBodyProducer
from revenge.testing import captured_log_events, eventually
from revenge.testing.s3 import S3Server
from revenge.testing.storage_contract import (
    Boom,
    Collector,
    GatedBody,
    PausingCollector,
    expect_failure,
    pattern,
    read_body,
    same_metadata,
)
from .s3_stub import S3Stub, Seen, SilentServer, StubServer, answer, drop_connection, stall_body

PART = MIN_PART_SIZE


def op(name: str, **query: str) -> Callable[[Seen], bool]:
    """A stub rule matching one S3 operation (and query values, if given)."""

    def matches(seen: Seen) -> bool:
        return seen.operation == name and all(seen.query.get(k) == v for k, v in query.items())

    return matches


def crc32_header(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class NonSeekable(io.RawIOBase):
    """A body that can be read once: no seek, no tell."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._inner.read(-1 if size is None else size)


class FailsAtEnd(io.BytesIO):
    """Hands out its bytes, then raises instead of reporting the end."""

    def __init__(self, data: bytes, error: BaseException) -> None:
        super().__init__(data)
        self.error = error

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk:
            raise self.error
        return chunk


@pytest.fixture
def storages() -> Iterator[list[S3Storage]]:
    made: list[S3Storage] = []
    yield made
    for storage in made:
        storage.close()


@pytest.fixture
def on_moto(
    moto_s3: S3Server, moto_bucket: str, storages: list[S3Storage]
) -> Callable[..., S3Storage]:
    """Build storages on moto's bucket, closed after the test."""

    def make(**options: Any) -> S3Storage:
        storage = moto_s3.storage(moto_bucket, **options)
        storages.append(storage)
        return storage

    return make


@pytest_twisted.async_yield_fixture
async def stub(moto_s3: S3Server) -> AsyncIterator[StubServer]:
    server = StubServer(moto_s3.endpoint, moto_s3.secret_key)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def via_stub(
    moto_s3: S3Server, moto_bucket: str, stub: StubServer, storages: list[S3Storage]
) -> Callable[..., S3Storage]:
    """Build storages that reach moto's bucket through the recording stub."""

    def make(**options: Any) -> S3Storage:
        storage = moto_s3.storage(moto_bucket, endpoint=stub.url, **options)
        storages.append(storage)
        return storage

    return make


def all_signed(stub: S3Stub) -> bool:
    return bool(stub.seen) and all(seen.signature_valid for seen in stub.seen)


# Wiring -------------------------------------------------------------------------


def test_factory_through_the_entry_point() -> None:
    config = SimpleNamespace(
        storage=SimpleNamespace(
            s3=SimpleNamespace(
                endpoint="http://127.0.0.1:9000",
                region="eu-west-1",
                bucket="media",
                access_key_id="AKIDEXAMPLE",
                secret_access_key="secret",
                use_path_style=True,
            )
        )
    )
    provider = create_provider(STORAGE_GROUP, "s3", IStorage, config, reactor)  # type: ignore[arg-type]
    assert isinstance(provider, S3Storage)
    assert verifyObject(IStorage, provider)
    assert provider.name == "s3"
    assert (provider.bucket, provider.region, provider.endpoint) == (
        "media",
        "eu-west-1",
        "http://127.0.0.1:9000",
    )
    assert "secret" not in repr(provider)


@pytest.mark.parametrize(
    ("endpoint", "bucket", "path_style", "expected"),
    [
        ("", "media", False, "https://media.s3.eu-west-1.amazonaws.com/a/b.png"),
        ("", "media", True, "https://s3.eu-west-1.amazonaws.com/media/a/b.png"),
        ("http://minio:9000", "media", True, "http://minio:9000/media/a/b.png"),
        ("http://minio:9000/", "media", False, "http://media.minio:9000/a/b.png"),
        # An address or a dotted bucket under TLS cannot be virtual-hosted.
        ("http://127.0.0.1:9000", "media", False, "http://127.0.0.1:9000/media/a/b.png"),
        ("http://[::1]:9000", "media", False, "http://[::1]:9000/media/a/b.png"),
        ("https://s3.example.com", "my.media", False, "https://s3.example.com/my.media/a/b.png"),
        ("https://s3.example.com:443/base/", "media", True, "https://s3.example.com/base/media/a/b.png"),
        ("https://s3.example.com", "Legacy_Bucket", False, "https://s3.example.com/Legacy_Bucket/a/b.png"),
    ],
)
def test_addressing(endpoint: str, bucket: str, path_style: bool, expected: str) -> None:
    addressing = S3Addressing.build(endpoint, "eu-west-1", bucket, path_style)
    assert addressing.url("a/b.png") == expected
    assert expected.startswith(f"{addressing.scheme}://{addressing.host}/")


def test_bucket_urls_and_queries() -> None:
    virtual = S3Addressing.build("http://minio:9000", "us-east-1", "media", False)
    assert virtual.url() == "http://media.minio:9000/"
    assert virtual.url(None, [("list-type", "2"), ("continuation-token", "a+b/c=")]) == (
        "http://media.minio:9000/?list-type=2&continuation-token=a%2Bb%2Fc%3D"
    )
    path = S3Addressing.build("http://minio:9000", "us-east-1", "media", True)
    assert path.url("k", [("uploads", "")]) == "http://minio:9000/media/k?uploads"


def test_credentials_in_the_endpoint_are_refused() -> None:
    with pytest.raises(ValueError) as raised:
        S3Storage(reactor, bucket="media", endpoint="http://admin:hunter2@minio:9000")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "options",
    [
        {"bucket": "a/b"},
        {"bucket": ""},
        {"bucket": "media", "region": "eu west"},
        {"bucket": "media", "part_size": PART - 1},
        {"bucket": "media", "endpoint": "ftp://example.com"},
        {"bucket": "media", "access_key_id": "only-one-half"},
        {"bucket": "media", "timeout": 0},
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        S3Storage(reactor, **options)


# Signing -----------------------------------------------------------------------


def test_signature_matches_the_sigv4_reference_example(monkeypatch: pytest.MonkeyPatch) -> None:
    # The GET Object example of AWS's SigV4 documentation for S3.
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2013, 5, 24))
    credentials = ReadOnlyCredentials(
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None
    )
    headers = sign_request(
        credentials,
        "us-east-1",
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9"},
        hashlib.sha256(b"").hexdigest(),
    )
    assert headers["X-Amz-Date"] == "20130524T000000Z"
    authorization = headers["Authorization"]
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in authorization
    assert authorization.endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_unsigned_payload_and_session_token() -> None:
    headers = sign_request(
        ReadOnlyCredentials("AK", "SK", "session-token"),
        "eu-west-1",
        "PUT",
        "http://minio:9000/media/k",
        {"Host": "minio:9000", "Content-Type": "image/png"},
    )
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert "/eu-west-1/s3/aws4_request" in headers["Authorization"]
    assert "content-type;host;" in headers["Authorization"]


@pytest_twisted.ensureDeferred
async def test_what_goes_on_the_wire_is_what_was_signed(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub(list_page_size=1)
    data = pattern(2 * PART + 1)
    await storage.store("dir/big", io.BytesIO(data), "video/mp4", len(data))
    await storage.store("dir/small", io.BytesIO(b"x"), "text/plain")
    assert [item.key for item in await storage.list("dir/")] == ["dir/big", "dir/small"]
    assert await read_body(await storage.get("dir/big")) == data
    await storage.delete("dir/small")
    assert {"PutObject", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2"} <= set(
        stub.stub.operations()
    )
    # Query strings (upload ids, continuation tokens) and hosts with ports
    # survive the trip: every signature checks out on arrival.
    assert all_signed(stub.stub)


@pytest_twisted.ensureDeferred
async def test_a_put_is_not_followed_by_a_head(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub()
    declared = await storage.store("k", io.BytesIO(b"abc"), "text/plain", 3)
    unknown = await storage.store("u", io.BytesIO(b"abcd"), "text/plain")
    # The PUT's answer is all that store needs: no request after it.
    assert stub.stub.operations() == ["PutObject", "PutObject"]
    for stored in (declared, unknown):
        fetched = await storage.get(stored.key)
        assert same_metadata(fetched, stored)
        assert fetched.last_modified == stored.last_modified


@pytest_twisted.ensureDeferred
async def test_a_multipart_upload_asks_once_when_it_was_stored(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub()
    data = pattern(PART + 10)
    stored = await storage.store("big", io.BytesIO(data), "video/mp4")
    # S3 dates such an object from the upload's start, which no answer says.
    assert stub.stub.operations()[-2:] == ["CompleteMultipartUpload", "Head"]
    assert (await storage.get("big")).last_modified == stored.last_modified


# Multipart ------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["declared-length", "unknown-length"])
@pytest_twisted.ensureDeferred
async def test_multipart_above_the_threshold(
    via_stub: Callable[..., S3Storage],
    stub: StubServer,
    moto_s3: S3Server,
    moto_bucket: str,
    declared: bool,
) -> None:
    storage = via_stub()
    data = pattern(2 * PART + 4321, seed=9)
    stored = await storage.store(
        "videos/clip.mp4", io.BytesIO(data), "video/mp4", len(data) if declared else None
    )
    operations = stub.stub.operations()
    assert operations.count("UploadPart") == 3
    assert "PutObject" not in operations
    # Each part carries its CRC32, so S3 checks it arrived intact; the
    # upload was announced as checksummed, and the completion lists them.
    parts = sorted(
        (seen for seen in stub.stub.seen if seen.operation == "UploadPart"),
        key=lambda seen: int(seen.query["partNumber"]),
    )
    assert [len(seen.body) for seen in parts] == [PART, PART, 4321]
    assert [seen.header("x-amz-checksum-crc32") for seen in parts] == [
        crc32_header(seen.body) for seen in parts
    ]
    create = next(seen for seen in stub.stub.seen if seen.operation == "CreateMultipartUpload")
    assert create.header("x-amz-checksum-algorithm") == "CRC32"
    complete = next(
        seen for seen in stub.stub.seen if seen.operation == "CompleteMultipartUpload"
    )
    for seen in parts:
        assert f"<ChecksumCRC32>{crc32_header(seen.body)}</ChecksumCRC32>" in complete.body.decode()

    body, answer_ = moto_s3.read(moto_bucket, "videos/clip.mp4")
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert answer_["ContentType"] == "video/mp4"
    # S3's ETag of a multipart object ends with the number of parts.
    assert stored.etag.endswith("-3") and answer_["ETag"].strip('"') == stored.etag
    assert stored.length == len(data)
    assert moto_s3.uploads_in_progress(moto_bucket) == []


@pytest_twisted.ensureDeferred
async def test_at_the_threshold_one_streamed_put(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub()
    data = pattern(PART, seed=1)
    await storage.store("k", io.BytesIO(data), "application/octet-stream", len(data))
    assert stub.stub.operations().count("PutObject") == 1
    assert "UploadPart" not in stub.stub.operations()


@pytest_twisted.ensureDeferred
async def test_unknown_length_ending_within_a_part_is_one_put(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    storage = via_stub()
    data = pattern(PART, seed=2)  # exactly one part: the end shows on the next read
    await storage.store("k", NonSeekable(data), "application/octet-stream")
    assert stub.stub.operations().count("PutObject") == 1
    put = next(seen for seen in stub.stub.seen if seen.operation == "PutObject")
    assert put.header("x-amz-checksum-crc32") == crc32_header(data)
    assert moto_s3.read(moto_bucket, "k")[0] == data


@pytest_twisted.ensureDeferred
async def test_a_body_failing_half_way_aborts_the_upload(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    storage = via_stub()
    await storage.store("keep", io.BytesIO(b"old"), "text/plain")
    error = Boom("the client went away")
    raised = await expect_failure(
        storage.store("keep", FailsAtEnd(pattern(2 * PART + PART // 2), error), "video/mp4"),
        Boom,
    )
    assert raised is error
    operations = stub.stub.operations()
    assert "UploadPart" in operations and "AbortMultipartUpload" in operations
    assert moto_s3.uploads_in_progress(moto_bucket) == []
    assert moto_s3.keys(moto_bucket) == ["keep"]
    assert moto_s3.read(moto_bucket, "keep")[0] == b"old"


@pytest.mark.parametrize("delta", [-5, 5], ids=["body-longer", "body-shorter"])
@pytest_twisted.ensureDeferred
async def test_a_multipart_length_mismatch_stores_nothing(
    via_stub: Callable[..., S3Storage],
    stub: StubServer,
    moto_s3: S3Server,
    moto_bucket: str,
    delta: int,
) -> None:
    storage = via_stub()
    data = pattern(2 * PART + 100)
    await expect_failure(
        storage.store("k", io.BytesIO(data), "video/mp4", len(data) + delta), StorageError
    )
    assert "CompleteMultipartUpload" not in stub.stub.operations()
    assert moto_s3.uploads_in_progress(moto_bucket) == []
    assert moto_s3.keys(moto_bucket) == []


@pytest_twisted.ensureDeferred
async def test_a_failing_part_aborts_the_upload(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    stub.stub.when(op("UploadPart", partNumber="2"), answer(400, "InvalidArgument", "bad part"))
    storage = via_stub()
    data = pattern(2 * PART + 1)
    error = await expect_failure(
        storage.store("k", io.BytesIO(data), "video/mp4", len(data)), S3RequestError
    )
    assert isinstance(error, S3RequestError) and error.status == 400
    assert "UploadPart" in str(error) and "'k'" in str(error) and moto_bucket in str(error)
    assert "AbortMultipartUpload" in stub.stub.operations()
    assert moto_s3.uploads_in_progress(moto_bucket) == []
    assert moto_s3.keys(moto_bucket) == []


@pytest_twisted.ensureDeferred
async def test_an_error_inside_a_200_completion_fails_the_store(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    # S3 may report a failed completion with status 200 and an <Error> body.
    stub.stub.when(
        op("CompleteMultipartUpload"), answer(200, "InternalError", "try again", body=None)
    )
    storage = via_stub()
    data = pattern(PART + 1)
    error = await expect_failure(
        storage.store("k", io.BytesIO(data), "video/mp4", len(data)), S3RequestError
    )
    assert isinstance(error, S3RequestError) and error.code == "InternalError"
    assert moto_s3.uploads_in_progress(moto_bucket) == []
    assert moto_s3.keys(moto_bucket) == []


# Request ids ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_request_id_goes_out_on_every_s3_request(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub()
    big = pattern(PART + 10)
    token = current_request_id.set("req-7f3a")
    try:
        await storage.store("a", io.BytesIO(b"small"), "text/plain", 5)
        await storage.store("b", io.BytesIO(big), "video/mp4")
        assert await read_body(await storage.get("b")) == big
        assert await storage.exists("a")
        await storage.list("")
        await storage.check()
        await storage.delete("a")
    finally:
        current_request_id.reset(token)
    assert len(stub.stub.seen) >= 10
    assert {seen.header("x-request-id") for seen in stub.stub.seen} == {"req-7f3a"}

    before = len(stub.stub.seen)
    await storage.exists("a")
    assert [seen.header("x-request-id") for seen in stub.stub.seen[before:]] == [None]


# Retries ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_get_is_retried_after_5xx_and_dropped_connections(
    via_stub: Callable[..., S3Storage], stub: StubServer, captured_log: Any
) -> None:
    storage = via_stub()
    await storage.store("k", io.BytesIO(b"payload"), "text/plain")
    stub.stub.when(op("GetObject"), answer(503, "SlowDown", "slow down"), times=1)
    stub.stub.when(op("GetObject"), drop_connection, times=1)
    stub.stub.when(op("GetObject"), answer(500, "InternalError", "oops"), times=1)
    assert await read_body(await storage.get("k")) == b"payload"
    assert stub.stub.operations().count("GetObject") == 4
    retries = [r["message"] for r in captured_log.records if "retrying" in r["message"]]
    # Twisted's pool itself resends a GET whose reused connection was dropped,
    # so that one may not be ours to log.
    assert "GetObject of 'k'" in retries[0] and "(HTTP 503)" in retries[0]
    assert "(HTTP 500)" in retries[-1]


@pytest_twisted.ensureDeferred
async def test_retries_end_after_the_configured_attempts(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub(attempts=3)
    stub.stub.when(op("Head"), answer(503, "SlowDown"))
    error = await expect_failure(storage.exists("k"), S3RequestError)
    assert isinstance(error, S3RequestError) and error.status == 503
    assert stub.stub.operations().count("Head") == 3


@pytest_twisted.ensureDeferred
async def test_client_errors_are_not_retried(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    stub.stub.when(op("PutObject"), answer(403, "AccessDenied", "no"))
    error = await expect_failure(
        via_stub().store("k", io.BytesIO(b"abc"), "text/plain", 3), S3RequestError
    )
    assert isinstance(error, S3RequestError) and error.code == "AccessDenied"
    assert stub.stub.operations().count("PutObject") == 1


@pytest_twisted.ensureDeferred
async def test_a_seekable_body_is_sent_again_from_its_start(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    stub.stub.when(op("PutObject"), answer(500, "InternalError"), times=2)
    data = pattern(700_000, seed=3)
    body = io.BytesIO(b"skipped header" + data)
    body.seek(len(b"skipped header"))  # replays start where the body started
    await via_stub().store("k", body, "application/octet-stream", len(data))
    assert stub.stub.operations().count("PutObject") == 3
    assert moto_s3.read(moto_bucket, "k")[0] == data


@pytest_twisted.ensureDeferred
async def test_a_body_that_cannot_be_read_again_is_sent_once(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    stub.stub.when(op("PutObject"), answer(500, "InternalError"))
    data = pattern(300_000)
    error = await expect_failure(
        via_stub().store("k", NonSeekable(data), "text/plain", len(data)), S3RequestError
    )
    assert isinstance(error, S3RequestError) and error.status == 500
    assert stub.stub.operations().count("PutObject") == 1
    assert moto_s3.keys(moto_bucket) == []


@pytest_twisted.ensureDeferred
async def test_a_failed_part_is_retried(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_s3: S3Server, moto_bucket: str
) -> None:
    stub.stub.when(op("UploadPart", partNumber="2"), answer(503, "SlowDown"), times=1)
    stub.stub.when(op("UploadPart", partNumber="1"), drop_connection, times=1)
    data = pattern(2 * PART + 7)
    # A body read once: the parts are buffered, so they can be sent again.
    await via_stub().store("k", NonSeekable(data), "video/mp4", len(data))
    assert stub.stub.operations().count("UploadPart") == 5
    assert moto_s3.read(moto_bucket, "k")[0] == data


# Timeouts ------------------------------------------------------------------------------


@pytest_twisted.async_yield_fixture
async def silent() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        await server.stop()


def silent_storage(silent: SilentServer, storages: list[S3Storage], **options: Any) -> S3Storage:
    settings: dict[str, Any] = {
        "bucket": "media",
        "endpoint": silent.url,
        "access_key_id": "AK",
        "secret_access_key": "SK",
        "use_path_style": True,
        "timeout": 0.2,
        "check_timeout": 0.2,
        "attempts": 2,
        "backoff_base": 0.01,
    }
    settings.update(options)
    storage = S3Storage(reactor, **settings)
    storages.append(storage)
    return storage


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_answers_times_out(
    silent: SilentServer, storages: list[S3Storage]
) -> None:
    storage = silent_storage(silent, storages)
    for operation in (
        lambda: storage.get("k"),
        lambda: storage.exists("k"),
        lambda: storage.store("k", io.BytesIO(b"abc"), "text/plain", 3),
        lambda: storage.store("k", NonSeekable(b"abc"), "text/plain"),
        lambda: storage.list(""),
    ):
        error = await expect_failure(operation(), StorageError)
        assert "no progress for 0.2s" in str(error)
        assert silent.url in str(error) and "'media'" in str(error)
    # Idempotent requests were tried twice, each on a new connection.
    assert silent.connections >= 8


@pytest_twisted.ensureDeferred
async def test_check_times_out_with_a_clear_message(
    silent: SilentServer, storages: list[S3Storage]
) -> None:
    error = await expect_failure(silent_storage(silent, storages).check(), StorageError)
    assert str(error).startswith(f"S3 bucket 'media' at {silent.url} is unreachable")
    assert "timed out" in str(error)


@pytest_twisted.ensureDeferred
async def test_a_download_that_stalls_times_out(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    stub.stub.when(op("GetObject"), stall_body(100_000, b"x" * 1000))
    fetched = await via_stub(timeout=0.2).get("k")
    assert fetched.length == 100_000
    error = await expect_failure(read_body(fetched), StorageError)
    assert "no data from S3 for 0.2s" in str(error) and "'k'" in str(error)


# Readiness ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_check_names_a_missing_bucket(
    moto_s3: S3Server, storages: list[S3Storage]
) -> None:
    storage = moto_s3.storage("revenge-test-no-such-bucket")
    storages.append(storage)
    error = await expect_failure(storage.check(), StorageError)
    assert str(error) == (
        f"S3 bucket 'revenge-test-no-such-bucket' at {moto_s3.endpoint} does not exist "
        "(run 'revenge storage init')"
    )
    # Not to be mistaken for a missing object.
    missing = await expect_failure(storage.get("k"), StorageError)
    assert not isinstance(missing, ObjectNotFound) and "NoSuchBucket" in str(missing)


@pytest_twisted.ensureDeferred
async def test_check_names_an_unreachable_endpoint(storages: list[S3Storage]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = S3Storage(
        reactor,
        bucket="media",
        endpoint=f"http://127.0.0.1:{port}",
        access_key_id="AK",
        secret_access_key="SK",
    )
    storages.append(storage)
    error = await expect_failure(storage.check(), StorageError)
    assert str(error) == (
        f"S3 bucket 'media' at http://127.0.0.1:{port} is unreachable: connection refused"
    )


@pytest_twisted.ensureDeferred
async def test_check_reports_access_denied(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_bucket: str
) -> None:
    stub.stub.when(op("Head"), answer(403, "AccessDenied"))
    error = await expect_failure(via_stub().check(), StorageError)
    assert "access denied" in str(error) and moto_bucket in str(error)


# Credentials ------------------------------------------------------------------------------

LEAKY_KEY_ID = "AKIALEAKCHECK0000001"
LEAKY_SECRET = "leak/check+Secret+Key+0123456789abcdef"


@pytest_twisted.ensureDeferred
async def test_credentials_appear_in_no_error_and_no_log_line(
    moto_s3: S3Server,
    moto_bucket: str,
    stub: StubServer,
    silent: SilentServer,
    storages: list[S3Storage],
    captured_log: Any,
) -> None:
    # A server that echoes the credentials back in its error messages.
    echo = f"key {LEAKY_KEY_ID} secret {LEAKY_SECRET}"
    stub.stub.when(op("PutObject"), answer(403, "InvalidAccessKeyId", echo))
    stub.stub.when(op("GetObject"), answer(500, "InternalError", echo))
    stub.stub.when(op("Head"), answer(404, "NoSuchBucket", echo))
    stub.stub.when(op("ListObjectsV2"), drop_connection)
    leaky = S3Storage(
        reactor,
        bucket=moto_bucket,
        endpoint=stub.url,
        access_key_id=LEAKY_KEY_ID,
        secret_access_key=LEAKY_SECRET,
        use_path_style=True,
        attempts=2,
        backoff_base=0.01,
    )
    storages.append(leaky)
    errors: list[BaseException] = [
        await expect_failure(leaky.store("k", io.BytesIO(b"x"), "text/plain", 1), StorageError),
        await expect_failure(leaky.get("k"), StorageError),
        await expect_failure(leaky.check(), StorageError),
        await expect_failure(leaky.list(""), StorageError),
        await expect_failure(
            silent_storage(
                silent, storages, access_key_id=LEAKY_KEY_ID, secret_access_key=LEAKY_SECRET
            ).get("k"),
            StorageError,
        ),
    ]
    assert "InvalidAccessKeyId" in str(errors[0]) and "***" in str(errors[0])
    for error in errors:
        text = f"{error} {error!r}"
        assert LEAKY_KEY_ID not in text and LEAKY_SECRET not in text
        assert "Signature=" not in text and "Credential=" not in text
    logged = json.dumps(captured_log.records, default=str)
    assert "retrying" in logged
    assert LEAKY_KEY_ID not in logged and LEAKY_SECRET not in logged


@pytest_twisted.ensureDeferred
async def test_a_bucket_named_like_the_key_id_stays_legible(
    moto_bucket: str, stub: StubServer, storages: list[S3Storage]
) -> None:
    # The docs' MinIO set-up names the key id and the bucket alike.
    stub.stub.when(op("GetObject"), answer(403, "AccessDenied", f"no access for {moto_bucket}"))
    storage = S3Storage(
        reactor,
        bucket=moto_bucket,
        endpoint=stub.url,
        access_key_id=moto_bucket,
        secret_access_key=LEAKY_SECRET,
        use_path_style=True,
    )
    storages.append(storage)
    error = await expect_failure(storage.get("k"), StorageError)
    assert f"in bucket {moto_bucket!r}" in str(error)
    # What the server echoed is still scrubbed.
    assert str(error).count(moto_bucket) == 1 and "no access for ***" in str(error)


@pytest_twisted.ensureDeferred
async def test_connections_do_not_log_their_factories(
    on_moto: Callable[..., S3Storage],
) -> None:
    # The readiness probe opens a fresh connection each time (about once a
    # second on a leader); Twisted would log two info lines for each.
    storage = on_moto()
    with captured_log_events() as events:
        for _ in range(3):
            await storage.check()
        await storage.store("k", io.BytesIO(b"x"), "text/plain", 1)
    factories = [e for e in events if "ClientFactory" in str(e.get("log_namespace", ""))]
    assert factories == []


CHAIN_KEY_ID = "AKIACHAINFROMENV0001"
CHAIN_SECRET = "chain-secret-from-the-environment"


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """An environment where botocore's chain finds only what a test sets."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    # No instance metadata calls (nothing but loopback traffic), no files.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return monkeypatch


@pytest_twisted.ensureDeferred
async def test_the_default_chain_reads_the_environment(
    aws_environment: pytest.MonkeyPatch,
    moto_s3: S3Server,
    moto_bucket: str,
    storages: list[S3Storage],
) -> None:
    aws_environment.setenv("AWS_ACCESS_KEY_ID", CHAIN_KEY_ID)
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", CHAIN_SECRET)
    aws_environment.setenv("AWS_SESSION_TOKEN", "chain-session-token")
    server = StubServer(moto_s3.endpoint, CHAIN_SECRET)
    try:
        storage = S3Storage(
            reactor, bucket=moto_bucket, endpoint=server.url, use_path_style=True
        )
        storages.append(storage)
        await storage.store("k", io.BytesIO(b"via the chain"), "text/plain")
        assert await read_body(await storage.get("k")) == b"via the chain"
    finally:
        await server.stop()
    assert all_signed(server.stub)
    assert {seen.header("x-amz-security-token") for seen in server.stub.seen} == {
        "chain-session-token"
    }
    assert all(CHAIN_KEY_ID in (seen.header("authorization") or "") for seen in server.stub.seen)


@pytest_twisted.ensureDeferred
async def test_no_credentials_anywhere_is_a_clear_error(
    aws_environment: pytest.MonkeyPatch, moto_s3: S3Server, storages: list[S3Storage]
) -> None:
    storage = S3Storage(reactor, bucket="media", endpoint=moto_s3.endpoint, use_path_style=True)
    storages.append(storage)
    error = await expect_failure(storage.check(), StorageError)
    assert "no S3 credentials found" in str(error)
    error = await expect_failure(storage.store("k", io.BytesIO(b"x"), "text/plain"), StorageError)
    assert "no S3 credentials found" in str(error)


class FakeRefreshable:
    """Temporary credentials whose expiry a test controls."""

    method = "fake-web-identity"

    def __init__(self) -> None:
        self.needed = False
        self.threads: list[threading.Thread] = []

    def refresh_needed(self, refresh_in: float | None = None) -> bool:
        return self.needed

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        self.threads.append(threading.current_thread())
        self.needed = False
        return ReadOnlyCredentials(f"AK{len(self.threads)}", "SK", "token")


@pytest_twisted.ensureDeferred
async def test_expiring_credentials_are_refreshed_in_a_thread() -> None:
    fake = FakeRefreshable()
    resolved: list[threading.Thread] = []

    def resolve() -> Any:
        resolved.append(threading.current_thread())
        return fake

    source = S3CredentialSource(reactor, "us-east-1", resolve_chain=resolve)
    assert (await source.current()).access_key == "AK1"
    assert (await source.current()).access_key == "AK1"
    assert len(fake.threads) == 1
    fake.needed = True
    # Concurrent callers share one refresh.
    first, second = source.current(), source.current()
    assert (await first).access_key == (await second).access_key == "AK2"
    assert len(fake.threads) == 2 and len(resolved) == 1
    assert threading.main_thread() not in fake.threads + resolved
    assert source.secrets() == ["AK2", "SK", "token"]


# Streaming downloads -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_nothing_is_written_while_paused(on_moto: Callable[..., S3Storage]) -> None:
    storage = on_moto()
    data = pattern(2 * 1024 * 1024)
    await storage.store("k", io.BytesIO(data), "application/octet-stream", len(data))
    fetched = await storage.get("k")
    assert fetched.body is not None
    collector = PausingCollector(fetched.body)
    await fetched.body.startProducing(collector)
    assert collector.data == data
    assert collector.writes_while_paused == 0


@pytest_twisted.ensureDeferred
async def test_stopping_a_download_never_fires_and_frees_the_storage(
    on_moto: Callable[..., S3Storage],
) -> None:
    storage = on_moto()
    data = pattern(4 * 1024 * 1024)
    await storage.store("k", io.BytesIO(data), "application/octet-stream", len(data))
    fetched = await storage.get("k")
    producer = fetched.body
    assert producer is not None
    first_write: Deferred[None] = Deferred()

    class StopAfterOne(Collector):
        def write(self, data: bytes) -> None:
            super().write(data)
            assert producer is not None
            producer.stopProducing()
            if not first_write.called:
                first_write.callback(None)

    done = producer.startProducing(StopAfterOne())
    await first_write
    # Later requests still work (the stopped connection is not reused).
    assert await read_body(await storage.get("k")) == data
    assert not done.called


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


class FakeResponse:
    """Just enough of an IResponse to hand a body protocol to a test."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.protocol: Any = None

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)
        self.transport.calls.append("delivering")


def fake_download(length: int, timeout: float = 30.0) -> tuple[ObjectBodyProducer, FakeResponse]:
    response = FakeResponse()
    producer = ObjectBodyProducer(reactor, response, length, timeout, "'k'")  # type: ignore[arg-type]
    return producer, response


@pytest_twisted.ensureDeferred
async def test_a_body_nobody_reads_gives_its_connection_back() -> None:
    producer, response = fake_download(10, timeout=0.05)
    await eventually(
        lambda: "stop" in response.transport.calls, "the connection to be stopped", interval=0.001
    )
    error = await expect_failure(producer.startProducing(Collector()), StorageError)
    assert "was not read within 0.05s" in str(error)


@pytest_twisted.ensureDeferred
async def test_pausing_a_download_pauses_the_s3_connection() -> None:
    producer, response = fake_download(6)
    collector = Collector()
    producer.pauseProducing()  # before the body is even delivered
    done = producer.startProducing(collector)
    assert response.transport.calls[-2:] == ["delivering", "pause"]
    response.protocol.dataReceived(b"abc")
    assert collector.data == b""  # held while paused
    producer.resumeProducing()
    assert collector.data == b"abc" and response.transport.calls[-1] == "resume"
    producer.pauseProducing()
    assert response.transport.calls[-1] == "pause"
    response.protocol.dataReceived(b"def")
    response.protocol.connectionLost(Failure(ResponseDone()))
    assert not done.called  # the held bytes are not out yet
    producer.resumeProducing()
    assert collector.data == b"abcdef"
    await done


@pytest_twisted.ensureDeferred
async def test_a_truncated_download_fails() -> None:
    producer, response = fake_download(10)
    done = producer.startProducing(Collector())
    response.protocol.dataReceived(b"abc")
    response.protocol.connectionLost(Failure(ResponseFailed([Failure(ConnectionLost())])))
    error = await expect_failure(done, StorageError)
    assert str(error) == (
        "reading 'k' from S3 failed: the connection was closed before the response was complete"
    )


def test_stopping_a_download_closes_the_s3_connection() -> None:
    producer, response = fake_download(10)
    done = producer.startProducing(Collector())
    producer.stopProducing()
    assert response.transport.calls[-1] == "stop"
    response.protocol.connectionLost(Failure(ResponseFailed([Failure(ConnectionLost())])))
    assert not done.called
    # Never started: the response is still closed, not left hanging.
    unstarted, unstarted_response = fake_download(10)
    unstarted.stopProducing()
    assert unstarted_response.transport.calls == ["stop", "delivering"]


# Listing ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_listing_follows_continuation_tokens(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    storage = via_stub(list_page_size=2)
    keys = [f"items/{n}" for n in range(5)]
    for key in reversed(keys):
        await storage.store(key, io.BytesIO(key.encode()), "text/plain")
    assert [item.key for item in await storage.list("items/")] == keys
    pages = [seen for seen in stub.stub.seen if seen.operation == "ListObjectsV2"]
    assert len(pages) == 3
    assert "continuation-token" not in pages[0].query
    assert all(page.query.get("continuation-token") for page in pages[1:])
    assert all_signed(stub.stub)


@pytest_twisted.ensureDeferred
async def test_listing_skips_keys_this_provider_cannot_name(
    on_moto: Callable[..., S3Storage], moto_s3: S3Server, moto_bucket: str
) -> None:
    client = moto_s3.client()
    for key in ("ok", "with space", "a/../b", "caf\u00e9"):
        client.put_object(Bucket=moto_bucket, Key=key, Body=b"x")
    assert [item.key for item in await on_moto().list("")] == ["ok"]


# Input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["", "text/plain\nx", "caf\u00e9", "x" * 1025])
@pytest_twisted.ensureDeferred
async def test_unusable_content_types_are_refused_before_any_request(
    via_stub: Callable[..., S3Storage], stub: StubServer, content_type: str
) -> None:
    d = via_stub().store("k", io.BytesIO(b"x"), content_type)
    await expect_failure(d, StorageError)
    assert stub.stub.seen == []


@pytest_twisted.ensureDeferred
async def test_the_body_is_read_off_the_reactor_thread(on_moto: Callable[..., S3Storage]) -> None:
    threads: list[threading.Thread] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            threads.append(threading.current_thread())
            return super().read(size)

    storage = on_moto()
    await storage.store("streamed", Recording(b"abc"), "text/plain", 3)
    await storage.store("buffered", Recording(pattern(PART + 1)), "text/plain")
    assert threads and threading.main_thread() not in threads


# Creating the bucket (revenge storage init) ----------------------------------------------


@pytest_twisted.ensureDeferred
async def test_ensure_bucket_creates_once(moto_s3: S3Server, storages: list[S3Storage]) -> None:
    storage = moto_s3.storage("revenge-test-ensure-us-east-1")
    storages.append(storage)
    try:
        assert await storage.ensure_bucket() is True
        assert await storage.ensure_bucket() is False
        await storage.check()
    finally:
        moto_s3.remove_bucket("revenge-test-ensure-us-east-1")


def bucket_create(seen: Seen) -> bool:
    return seen.method == "PUT" and seen.path.count("/") == 1


@pytest_twisted.ensureDeferred
async def test_ensure_bucket_accepts_a_bucket_created_meanwhile_by_us(
    via_stub: Callable[..., S3Storage], stub: StubServer
) -> None:
    stub.stub.when(op("Head"), answer(404, "NoSuchBucket"))
    stub.stub.when(bucket_create, answer(409, "BucketAlreadyOwnedByYou", "yours already"))
    assert await via_stub().ensure_bucket() is False


@pytest_twisted.ensureDeferred
async def test_ensure_bucket_refuses_a_name_taken_by_someone_else(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_bucket: str
) -> None:
    stub.stub.when(op("Head"), answer(404, "NoSuchBucket"))
    stub.stub.when(bucket_create, answer(409, "BucketAlreadyExists", "taken"))
    error = await expect_failure(via_stub().ensure_bucket(), S3RequestError)
    assert "BucketAlreadyExists" in str(error) and moto_bucket in str(error)


@pytest_twisted.ensureDeferred
async def test_ensure_bucket_explains_access_denied(
    via_stub: Callable[..., S3Storage], stub: StubServer, moto_bucket: str
) -> None:
    stub.stub.when(op("Head"), answer(403, "AccessDenied"))
    error = await expect_failure(via_stub().ensure_bucket(), StorageError)
    assert "access denied" in str(error) and moto_bucket in str(error) and stub.url in str(error)


@pytest_twisted.ensureDeferred
async def test_a_stopped_upload_body_is_not_rewound_under_a_running_read() -> None:
    body = GatedBody(pattern(5000))
    producer = ThreadedFileProducer(
        reactor, body, 5000, chunk_size=1000, declared=True, describe="'k'"
    )
    collector = Collector()
    done = producer.startProducing(collector)
    await body.started  # the first read returned; the second is blocked
    await eventually(lambda: len(collector.chunks) == 1, "the first chunk", interval=0.001)
    producer.stopProducing()  # as when the connection fails mid-body
    idle = producer.wait_idle()
    assert not idle.called
    body.release.set()
    await idle
    assert not done.called  # stopped producers never fire


@pytest_twisted.ensureDeferred
async def test_multipart_memory_is_a_few_reused_part_buffers(
    on_moto: Callable[..., S3Storage],
    moto_s3: S3Server,
    moto_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from revenge.storage import _s3_upload

    buffers: set[int] = set()
    original = _s3_upload.PartReader.read_part

    def recording(reader: Any) -> Any:
        part = original(reader)
        buffers.add(id(part._buffer))
        return part

    monkeypatch.setattr(_s3_upload.PartReader, "read_part", recording)
    storage = on_moto(part_concurrency=2)
    data = pattern(6 * PART + 1, seed=4)
    stored = await storage.store("big", NonSeekable(data), "video/mp4")
    assert stored.etag.endswith("-7")
    # Two parts on the wire and one being read, whatever the size.
    assert len(buffers) <= 3
    assert moto_s3.read(moto_bucket, "big")[0] == data
