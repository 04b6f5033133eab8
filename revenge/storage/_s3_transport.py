"""
The byte-moving half of the ``s3`` provider: request bodies that stream
from memory, response bodies read whole (small XML documents) or relayed
to a consumer with backpressure, and a watchdog that turns a silent server
into a timeout. Bodies read from a file-like object go through the
providers' shared ``ThreadedFileProducer`` (``revenge.storage._file_producer``).

Nothing here knows about S3 itself; ``revenge.storage._s3_engine`` and the
operations built on it do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from twisted.internet import error as internet_error
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
)
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from revenge.storage._interface import StorageError

__all__ = [
    "ChunksProducer",
    "ObjectBodyProducer",
    "ResponseTimeout",
    "ResponseTooLarge",
    "Watchdog",
    "describe_failure",
    "discard_body",
    "is_transient",
    "read_body",
]


class ResponseTimeout(Exception):
    """The server showed no progress for the configured time."""


class ResponseTooLarge(Exception):
    """A response we read whole was larger than expected."""


class Watchdog:
    """
    Calls ``expire`` once ``timeout`` seconds pass without a ``poke``.

    Paused while our side is the one holding things up (a consumer that
    paused a download), so that only the server's silence counts.
    """

    def __init__(self, clock: IReactorTime, timeout: float, expire: Callable[[], None]) -> None:
        self.expired = False
        self._clock = clock
        self._timeout = timeout
        self._expire = expire
        self._stopped = False
        self._call: IDelayedCall | None = clock.callLater(timeout, self._fire)

    def poke(self) -> None:
        if self._call is not None and self._call.active():
            self._call.reset(self._timeout)

    def pause(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def resume(self) -> None:
        if self._call is None and not self._stopped and not self.expired:
            self._call = self._clock.callLater(self._timeout, self._fire)

    def stop(self) -> None:
        self._stopped = True
        self.pause()

    def _fire(self) -> None:
        self._call = None
        self.expired = True
        self._expire()


# Request bodies ---------------------------------------------------------------


@implementer(IBodyProducer)
class ChunksProducer:
    """
    Writes chunks already in memory (one multipart part, a small document),
    honouring pause and resume. Make a new one for each attempt.
    """

    def __init__(
        self,
        chunks: Sequence[bytes | memoryview],
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.length = sum(len(chunk) for chunk in chunks)
        self.on_progress = on_progress
        self._chunks = chunks
        self._next = 0
        self._consumer: IConsumer | None = None
        self._done: Deferred[None] | None = None
        self._paused = False
        self._stopped = False
        self._writing = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        self._done = Deferred(lambda _: self.stopProducing())
        self._write_some()
        return self._done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._write_some()

    def stopProducing(self) -> None:
        self._stopped = True
        self._chunks = ()

    def _write_some(self) -> None:
        # write() may pause or resume us re-entrantly; the loop below is the
        # only writer, so a nested resume just lets it carry on.
        if self._writing or self._consumer is None or self._done is None:
            return
        self._writing = True
        try:
            while not self._paused and not self._stopped and self._next < len(self._chunks):
                chunk = self._chunks[self._next]
                self._next += 1
                # Transports take bytes: a view is copied one slice at a time.
                self._consumer.write(chunk if isinstance(chunk, bytes) else bytes(chunk))
                if self.on_progress is not None:
                    self.on_progress()
        finally:
            self._writing = False
        if self._next == len(self._chunks) and not self._stopped and not self._done.called:
            self._chunks = ()
            self._done.callback(None)


# Response bodies --------------------------------------------------------------


class _Collector(Protocol):
    def __init__(self, limit: int, finished: Deferred[bytes], on_data: Callable[[], None]) -> None:
        self._limit = limit
        self._finished = finished
        self._on_data = on_data
        self._chunks: list[bytes] = []
        self._size = 0
        self._failed = False

    def dataReceived(self, data: bytes) -> None:
        if self._failed:
            return
        self._on_data()
        self._size += len(data)
        if self._size > self._limit:
            self._failed = True
            self._chunks = []
            self.abort()
            self._finished.errback(ResponseTooLarge(f"more than {self._limit} bytes"))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if self._failed:
            return
        if reason.check(ResponseDone):
            self._finished.callback(b"".join(self._chunks))
        else:
            self._finished.errback(reason)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]


async def read_body(clock: IReactorTime, response: IResponse, limit: int, timeout: float) -> bytes:
    """
    The whole body of a small response, failing past ``limit`` bytes or
    ``timeout`` seconds of silence.
    """
    finished: Deferred[bytes] = Deferred()
    collector: _Collector | None = None

    def expire() -> None:
        if collector is not None:
            collector.abort()

    watchdog = Watchdog(clock, timeout, expire)
    collector = _Collector(limit, finished, watchdog.poke)
    response.deliverBody(collector)
    try:
        return await finished
    except Exception:
        if watchdog.expired:
            raise ResponseTimeout(f"no data for {timeout:g}s while reading the response") from None
        raise
    finally:
        watchdog.stop()


class _Discarder(Protocol):
    def connectionMade(self) -> None:
        # Closing is cheaper than reading what nobody wants, and the pool
        # never gets a connection with a half-read response back.
        self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        pass


def discard_body(response: IResponse) -> None:
    """Drop a response's body by closing its connection."""
    response.deliverBody(_Discarder())


class _Relay(Protocol):
    def __init__(self, producer: ObjectBodyProducer) -> None:
        self._producer = producer

    def connectionMade(self) -> None:
        self._producer._connected(self.transport)  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        self._producer._data(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        self._producer._lost(reason)


@implementer(IBodyProducer)
class ObjectBodyProducer:
    """
    An object's bytes, relayed from an S3 response to a consumer as they
    arrive. Pausing pauses the S3 connection (TCP backpressure all the way
    to S3); data already read when a pause comes is held until resume, so
    nothing is written while paused. The response is not read until
    ``startProducing``; ``stopProducing`` closes the connection, and so does
    a body nobody starts within ``timeout`` seconds, so that a caller who
    drops it does not hold a connection open.
    """

    def __init__(
        self,
        clock: IReactorTime,
        response: IResponse,
        length: int,
        timeout: float,
        describe: str,
    ) -> None:
        self.length = length
        self._clock = clock
        self._response = response
        self._timeout = timeout
        self._describe = describe
        self._consumer: IConsumer | None = None
        self._transport: IPushProducer | None = None
        self._done: Deferred[None] | None = None
        self._watchdog: Watchdog | None = None
        self._held: deque[bytes] = deque()
        self._received = 0
        self._paused = False
        self._stopped = False
        self._ended: Failure | None = None
        self._finished = False
        self._abandoned = False
        self._unclaimed = Watchdog(clock, timeout, self._abandon)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._unclaimed.stop()
        if self._abandoned:
            return fail(
                StorageError(
                    f"the body of {self._describe} was not read within "
                    f"{self._timeout:g}s and its S3 connection was closed"
                )
            )
        if self._consumer is not None or self._stopped:
            raise RuntimeError("this body has already been started or stopped")
        self._consumer = consumer
        self._done = Deferred(lambda _: self.stopProducing())
        self._watchdog = Watchdog(self._clock, self._timeout, self._expire)
        if self._paused:
            self._watchdog.pause()
        self._response.deliverBody(_Relay(self))
        # deliverBody resumes the connection once it has replayed what was
        # buffered; a pause that came in the meantime must win.
        if self._paused and self._transport is not None:
            self._transport.pauseProducing()
        return self._done

    def pauseProducing(self) -> None:
        self._paused = True
        if self._watchdog is not None:
            self._watchdog.pause()
        if self._transport is not None:
            self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        self._flush()
        if self._paused or self._stopped or self._finished:
            return
        if self._watchdog is not None:
            self._watchdog.resume()
        if self._transport is not None:
            self._transport.resumeProducing()

    def stopProducing(self) -> None:
        # IBodyProducer: once stopped, the Deferred never fires.
        self._unclaimed.stop()
        if self._stopped or self._finished:
            return
        self._stopped = True
        self._held.clear()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._transport is not None:
            self._transport.stopProducing()
        elif self._consumer is None:
            discard_body(self._response)

    # Called by _Relay.

    def _connected(self, transport: IPushProducer) -> None:
        self._transport = transport
        if self._stopped:
            transport.stopProducing()

    def _data(self, data: bytes) -> None:
        if self._stopped or self._finished:
            return
        self._received += len(data)
        if self._watchdog is not None:
            self._watchdog.poke()
        if self._paused or self._held:
            self._held.append(data)
            return
        assert self._consumer is not None
        self._consumer.write(data)

    def _lost(self, reason: Failure) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._stopped or self._finished:
            return
        self._ended = reason
        self._flush()

    def _flush(self) -> None:
        while self._held and not self._paused and not self._stopped:
            assert self._consumer is not None
            self._consumer.write(self._held.popleft())
        if self._ended is not None and not self._held and not self._stopped:
            self._finish(self._ended)

    def _finish(self, reason: Failure) -> None:
        if self._finished:
            return
        self._finished = True
        assert self._done is not None
        if reason.check(ResponseDone) and self._received == self.length:
            self._done.callback(None)
            return
        if self._watchdog is not None and self._watchdog.expired:
            detail = f"no data from S3 for {self._timeout:g}s"
        elif reason.check(ResponseDone):
            detail = f"got {self._received} of {self.length} bytes"
        elif reason.value is not None:
            detail = describe_failure(reason.value)
        else:
            detail = "the connection failed"
        self._done.errback(StorageError(f"reading {self._describe} from S3 failed: {detail}"))

    def _abandon(self) -> None:
        self._abandoned = True
        self._stopped = True
        discard_body(self._response)

    def _expire(self) -> None:
        # Closing the connection makes the response end with an error,
        # which _lost turns into a StorageError naming the timeout.
        if self._transport is not None:
            self._transport.stopProducing()


# Failures -------------------------------------------------------------------------


def _innermost(error: BaseException) -> BaseException:
    # Twisted's HTTP client wraps the real reasons in a list of Failures.
    reasons = getattr(error, "reasons", None)
    if isinstance(error, (ResponseFailed, RequestTransmissionFailed)) and reasons:
        first = reasons[0]
        if isinstance(first, Failure) and isinstance(first.value, BaseException):
            return _innermost(first.value)
    return error


def describe_failure(error: BaseException) -> str:
    """A short, credential-free account of a connection-level failure."""
    inner = _innermost(error)
    if isinstance(inner, internet_error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, internet_error.DNSLookupError):
        return "host name lookup failed"
    if isinstance(inner, internet_error.TimeoutError):
        return "connecting timed out"
    if isinstance(inner, (internet_error.ConnectionLost, internet_error.ConnectionDone)):
        return "the connection was closed before the response was complete"
    if isinstance(inner, ResponseTimeout):
        return f"timed out: {inner}"
    text = " ".join(str(inner).split())
    name = type(inner).__name__
    return f"{name}: {text}" if text else name


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a network failure that a retry might not meet."""
    return isinstance(
        error,
        (
            internet_error.ConnectError,
            internet_error.DNSLookupError,
            internet_error.ConnectionClosed,
            ResponseFailed,  # includes ResponseNeverReceived
            RequestTransmissionFailed,
            RequestNotSent,
            ResponseTimeout,
        ),
    )
