"""
How the ``s3`` provider's ``store`` sends a body: one streamed PUT, one
buffered PUT, or a multipart upload of parts read a few at a time.

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

The requests go through an ``S3Engine`` (``revenge.storage._s3_engine``);
``revenge.storage._s3`` turns what :func:`upload` returns into a
``StoredObject``.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from xml.sax.saxutils import escape

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer, IResponse

from revenge.logs._context import run_in_thread
from revenge.storage._file_producer import BodyLengthMismatch, ThreadedFileProducer
from revenge.storage._interface import StorageError
from revenge.storage._keys import shorten
from revenge.storage._s3_engine import (
    S3_NAMESPACE,
    S3Engine,
    S3Request,
    child_text,
    header,
    local_name,
    unquote_etag,
)
from revenge.storage._s3_signing import UNSIGNED_PAYLOAD
from revenge.storage._s3_transport import ChunksProducer

__all__ = ["Part", "PartReader", "answer_time", "upload"]

# Same namespace as the rest of the provider's log lines (see _s3_engine).
_log = Logger(namespace="revenge.storage._s3")

_STREAM_CHUNK = 256 * 1024
_PART_READ_CHUNK = 1024 * 1024
_WRITE_SLICE = 256 * 1024


def _rewind_point(body: BinaryIO) -> int | None:
    """Where a seekable body starts, or None when it cannot be read again (thread only)."""
    try:
        seekable = getattr(body, "seekable", None)
        if callable(seekable) and seekable():
            return body.tell()
    except (OSError, ValueError, AttributeError):
        pass
    return None


def answer_time(response: IResponse) -> datetime:
    """
    When a PUT stored its object, from the answer alone: its Last-Modified
    where the server sends one (moto does), else its Date (AWS S3 sends
    only that), else now. A HEAD would give ``get``'s exact value, at
    the price of one more request per upload whose callers want no more
    than success.
    """
    text = header(response, "last-modified") or header(response, "date")
    try:
        moment = parsedate_to_datetime(text) if text else datetime.now(timezone.utc)
    except (TypeError, ValueError):
        moment = datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class Part:
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

    def slices(self) -> list[memoryview]:
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


class PartReader:
    """Reads a body part by part (thread only), checking a declared length."""

    def __init__(
        self, body: BinaryIO, part_size: int, declared: int | None, describe: str
    ) -> None:
        self.total = 0
        self.at_end = False
        self._body = body
        self._part_size = part_size
        self._declared = declared
        self._describe = describe
        self._spare: list[bytearray] = []

    def _give_back(self, buffer: bytearray) -> None:
        self._spare.append(buffer)

    def _longer(self) -> BodyLengthMismatch:
        return BodyLengthMismatch(
            f"the body of {self._describe} is longer than its declared length"
        )

    def read_part(self) -> Part:
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
        return Part(buffer, size, crc32, self._give_back)


async def upload(
    engine: S3Engine,
    key: str,
    body: BinaryIO,
    content_type: str,
    length: int | None,
    *,
    multipart_threshold: int,
    part_size: int,
    part_concurrency: int,
    request_id: str | None,
) -> tuple[int, str, datetime | None]:
    """
    Store ``body`` under ``key`` the way the module docstring describes.
    Returns the size, the ETag and, after a single PUT, when its answer says
    the object was stored; None in its place after a multipart upload, whose
    answers do not say.
    """
    if length is not None and length <= multipart_threshold:
        etag, modified = await _put_streaming(engine, key, body, content_type, length, request_id)
        return length, etag, modified
    return await _put_in_parts(
        engine, key, body, content_type, length, part_size, part_concurrency, request_id
    )


async def _put(
    engine: S3Engine, request: S3Request, request_id: str | None
) -> tuple[str, datetime]:
    """Send a PutObject; what it stored: its ETag and when (no HEAD after it)."""
    response = await engine.send(request, request_id)
    await engine.expect_success(request, response)
    return unquote_etag(header(response, "etag") or ""), answer_time(response)


async def _put_streaming(
    engine: S3Engine,
    key: str,
    body: BinaryIO,
    content_type: str,
    length: int,
    request_id: str | None,
) -> tuple[str, datetime]:
    start = await run_in_thread(engine.reactor, _rewind_point, body)
    describe = shorten(key)

    async def make_body(attempt: int) -> IBodyProducer:
        if attempt > 1:
            assert start is not None
            await run_in_thread(engine.reactor, body.seek, start)
        return ThreadedFileProducer(
            engine.reactor,
            body,
            length,
            chunk_size=_STREAM_CHUNK,
            declared=True,
            describe=describe,
        )

    request = S3Request(
        "PutObject",
        "PUT",
        engine.addressing.url(key),
        engine.object_target(key),
        headers={"Content-Type": content_type},
        payload_hash=UNSIGNED_PAYLOAD,
        body=make_body,
        retry=start is not None,
        fresh_connection=start is None,
    )
    return await _put(engine, request, request_id)


async def _put_in_parts(
    engine: S3Engine,
    key: str,
    body: BinaryIO,
    content_type: str,
    length: int | None,
    part_size: int,
    part_concurrency: int,
    request_id: str | None,
) -> tuple[int, str, datetime | None]:
    """
    Size, ETag and (for a single PUT) the stored time of a body sent in
    parts; the time is None after a multipart upload (then ``S3Storage._stored``
    asks).
    """
    reader = PartReader(body, part_size, length, shorten(key))
    first = await run_in_thread(engine.reactor, reader.read_part)
    second = None
    if not reader.at_end:
        second = await run_in_thread(engine.reactor, reader.read_part)
    try:
        if second is None or second.size == 0:
            etag, modified = await _put_buffered(engine, key, first, content_type, request_id)
            return first.size, etag, modified
        etag = await _upload_multipart(
            engine,
            key,
            reader,
            [first, second],
            content_type,
            part_concurrency,
            request_id,
        )
        return reader.total, etag, None
    finally:
        # Parts are dropped as soon as they are sent (see _upload_multipart);
        # these two are also held by this frame.
        first.release()
        if second is not None:
            second.release()


async def _put_buffered(
    engine: S3Engine, key: str, part: Part, content_type: str, request_id: str | None
) -> tuple[str, datetime]:
    async def make_body(attempt: int) -> IBodyProducer:
        return ChunksProducer(part.slices())

    request = S3Request(
        "PutObject",
        "PUT",
        engine.addressing.url(key),
        engine.object_target(key),
        headers={"Content-Type": content_type, "x-amz-checksum-crc32": part.crc32},
        payload_hash=UNSIGNED_PAYLOAD,
        body=make_body,
    )
    return await _put(engine, request, request_id)


async def _upload_multipart(
    engine: S3Engine,
    key: str,
    reader: PartReader,
    parts: list[Part],
    content_type: str,
    part_concurrency: int,
    request_id: str | None,
) -> str:
    """
    Send the body as a multipart upload and return the object's ETag: up to
    ``part_concurrency`` parts on the wire while the next one is read, so at
    most that many parts plus one are in memory. ``parts`` are the ones
    already read. Any failure (the body's, a part's) lets the parts in
    flight settle, then aborts the upload.
    """
    upload_id = await _create(engine, key, content_type, request_id)
    waiting: deque[Part] = deque(parts)
    slots = DeferredSemaphore(part_concurrency)
    uploads: list[Deferred[None]] = []
    sent: dict[int, tuple[str, str]] = {}  # part number: (ETag, CRC32)
    failures: list[Failure] = []
    current: Part | None = None

    async def send(number: int, part: Part) -> None:
        try:
            etag = await _upload_part(engine, key, upload_id, number, part, request_id)
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
                current = await run_in_thread(engine.reactor, reader.read_part)
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
        return await _complete(engine, key, upload_id, ordered, request_id)
    except BaseException:
        if current is not None:
            current.release()
        for unsent in waiting:
            unsent.release()
        # Parts still on the wire could land after an abort; let them settle.
        await DeferredList(uploads)
        await _abort(engine, key, upload_id, request_id)
        raise


async def _create(
    engine: S3Engine, key: str, content_type: str, request_id: str | None
) -> str:
    request = S3Request(
        "CreateMultipartUpload",
        "POST",
        engine.addressing.url(key, [("uploads", "")]),
        engine.object_target(key),
        # Every part then carries its CRC32 and S3 checks each one.
        headers={"Content-Type": content_type, "x-amz-checksum-algorithm": "CRC32"},
        retry=False,
    )
    document = await engine.expect_success(request, await engine.send(request, request_id))
    upload_id = child_text(engine.parse(request, document), "UploadId")
    if not upload_id:
        raise StorageError(
            f"S3 {request.operation} {request.target} returned no upload id"
        )
    return upload_id


async def _upload_part(
    engine: S3Engine, key: str, upload_id: str, number: int, part: Part, request_id: str | None
) -> str:
    async def make_body(attempt: int) -> IBodyProducer:
        return ChunksProducer(part.slices())

    request = S3Request(
        "UploadPart",
        "PUT",
        engine.addressing.url(key, [("partNumber", str(number)), ("uploadId", upload_id)]),
        f"{number} {engine.object_target(key)}",
        headers={"x-amz-checksum-crc32": part.crc32},
        payload_hash=UNSIGNED_PAYLOAD,
        body=make_body,
    )
    response = await engine.send(request, request_id)
    await engine.expect_success(request, response)
    etag = header(response, "etag")
    if not etag:
        raise StorageError(f"S3 {request.operation} {request.target} returned no ETag")
    return etag


async def _complete(
    engine: S3Engine,
    key: str,
    upload_id: str,
    parts: Sequence[tuple[str, str]],
    request_id: str | None,
) -> str:
    document = (
        f'<CompleteMultipartUpload xmlns="{S3_NAMESPACE}">'
        + "".join(
            f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag>"
            f"<ChecksumCRC32>{crc32}</ChecksumCRC32></Part>"
            for number, (etag, crc32) in enumerate(parts, start=1)
        )
        + "</CompleteMultipartUpload>"
    ).encode("utf-8")

    async def make_body(attempt: int) -> IBodyProducer:
        return ChunksProducer([document])

    request = S3Request(
        "CompleteMultipartUpload",
        "POST",
        engine.addressing.url(key, [("uploadId", upload_id)]),
        engine.object_target(key),
        headers={"Content-Type": "application/xml"},
        payload_hash=hashlib.sha256(document).hexdigest(),
        body=make_body,
        retry=False,
    )
    response = await engine.send(request, request_id)
    answer = engine.parse(request, await engine.expect_success(request, response))
    # S3 may answer 200 and still have failed: the error is in the body.
    if local_name(answer) == "Error":
        raise engine.error_from(
            request, response, child_text(answer, "Code"), child_text(answer, "Message")
        )
    return unquote_etag(child_text(answer, "ETag") or "")


async def _abort(engine: S3Engine, key: str, upload_id: str, request_id: str | None) -> None:
    request = S3Request(
        "AbortMultipartUpload",
        "DELETE",
        engine.addressing.url(key, [("uploadId", upload_id)]),
        engine.object_target(key),
    )
    try:
        response = await engine.send(request, request_id)
        if response.code != 404:  # already gone is fine
            await engine.expect_success(request, response)
        else:
            await engine.drain(response)
    except Exception as error:
        # The upload's failure is what the caller needs to hear about; a
        # lifecycle rule on incomplete uploads cleans up what is left.
        _log.warn(
            "could not abort a failed multipart upload {target}: {error}",
            target=request.target,
            error=str(error),
        )
