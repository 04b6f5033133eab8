"""
One body producer for every file-like object a provider streams: an object
file the ``local`` provider serves, an upload the ``s3`` provider sends on.

A read may block (a disk or network volume, a client still uploading), so
each chunk is read in the reactor's thread pool and written on the reactor
thread, one read at a time.

``revenge.media`` streams files its own way (``FileStream``): reads at
offsets of a raw descriptor in the media volume's own thread pool (which a
stuck NFS mount may fill without stalling the reactor's), registered as a
push producer on the request, holding a chunk back while the transport is
paused, and cutting the connection when the file turns out shorter than the
Content-Length already sent. That is a different contract, not this one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from revenge.logs._context import run_in_thread
from revenge.storage._interface import StorageError

__all__ = ["BodyLengthMismatch", "ThreadedFileProducer"]

_log = Logger()


class BodyLengthMismatch(StorageError):
    """The body held more or fewer bytes than the declared length."""


def _read_declared(body: IO[bytes], remaining: int, chunk_size: int, describe: str) -> bytes:
    """
    The next chunk of a body declared to hold ``remaining`` more bytes
    (thread only). The chunk that completes the declared length is returned
    only once the body has shown its end, so a longer body fails before the
    consumer has received all that it was promised.
    """
    if remaining == 0:
        if body.read(1):
            raise BodyLengthMismatch(f"the body of {describe} is longer than its declared length")
        return b""
    chunk = body.read(min(chunk_size, remaining))
    if not chunk:
        raise BodyLengthMismatch(f"the body of {describe} is shorter than its declared length")
    if len(chunk) > remaining or (len(chunk) == remaining and body.read(1)):
        raise BodyLengthMismatch(f"the body of {describe} is longer than its declared length")
    return chunk


@implementer(IBodyProducer)
class ThreadedFileProducer:
    """
    Streams ``file`` to a consumer, each chunk read in the reactor's thread
    pool and written on the reactor thread. At most one read is in flight,
    so a pause takes effect after that chunk; once stopped (or cancelled)
    the Deferred of ``startProducing`` never fires.

    - ``length`` is the length the producer announces. With ``declared``
      the file must hold exactly that many bytes more: production ends when
      they are written, and a body that turns out shorter or longer fails
      with ``BodyLengthMismatch`` before its last chunk is written. Without
      it the file is read to its end.
    - ``owns_file``: the producer closes the file (in a thread) when it has
      been read, or production stopped or failed; otherwise it is the
      caller's.
    - A failed read fails the Deferred with the read's own exception (kept
      in ``read_error`` too, so a caller can tell it from its consumer's
      failure), or with what ``wrap_error`` makes of it.
    - ``on_progress`` is called after each write (a timeout watchdog, say).
    - ``describe`` names the body in messages and log lines.
    """

    def __init__(
        self,
        reactor: IReactorThreads,
        file: IO[bytes],
        length: int,
        *,
        chunk_size: int = 64 * 1024,
        declared: bool = False,
        owns_file: bool = False,
        wrap_error: Callable[[BaseException], BaseException] | None = None,
        on_progress: Callable[[], None] | None = None,
        describe: str = "a stored object",
    ) -> None:
        self.length = length
        self.read_error: BaseException | None = None
        self.on_progress = on_progress
        self._reactor = reactor
        self._file = file
        self._remaining = length
        self._chunk_size = chunk_size
        self._declared = declared
        self._owns_file = owns_file
        self._wrap_error = wrap_error
        self._describe = describe
        self._consumer: IConsumer | None = None
        self._done: Deferred[None] | None = None
        self._reading = False
        self._idle_waiters: list[Deferred[None]] = []
        self._paused = False
        self._stopped = False
        self._finished = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        if self._consumer is not None:
            raise RuntimeError("this body has already been started")
        self._consumer = consumer
        # Cancelling stops production; the Deferred then fails with CancelledError.
        self._done = Deferred(lambda _: self.stopProducing())
        self._read_next()
        return self._done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._read_next()

    def stopProducing(self) -> None:
        # IBodyProducer: after stopProducing the Deferred must never fire.
        if self._stopped or self._finished:
            return
        self._stopped = True
        if not self._reading:
            self._close()

    def wait_idle(self) -> Deferred[None]:
        """
        Fires once no read of the file is running: a stopped producer's last
        read may still be in its thread, and the file must not be rewound
        (or closed) under it.
        """
        if not self._reading:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    # Reading ----------------------------------------------------------------------

    def _read_next(self) -> None:
        if self._reading or self._paused or self._stopped or self._finished:
            return
        if self._consumer is None:
            return  # resumed before being started
        self._reading = True
        run_in_thread(self._reactor, self._read, self._remaining).addCallbacks(
            self._got_chunk, self._read_failed
        )

    def _read(self, remaining: int) -> bytes:
        """One chunk (worker thread only: at most one runs, so state is stable)."""
        if self._declared:
            chunk = _read_declared(self._file, remaining, self._chunk_size, self._describe)
            ended = len(chunk) == remaining
        else:
            chunk = self._file.read(self._chunk_size)
            ended = not chunk
        if ended and self._owns_file:
            # Closing here, in the worker thread, keeps that call off the reactor too.
            self._file.close()
        return chunk

    def _now_idle(self) -> None:
        self._reading = False
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _got_chunk(self, chunk: bytes) -> None:
        self._now_idle()
        if self._stopped:
            self._close()
            return
        assert self._consumer is not None and self._done is not None
        if chunk:
            self._remaining -= len(chunk)
            # write() may pause, resume or stop us synchronously; _read_next checks.
            self._consumer.write(chunk)
            if self.on_progress is not None:
                self.on_progress()
        if not chunk or (self._declared and self._remaining == 0):
            # A declared body's last read has already seen its end.
            self._finished = True
            self._done.callback(None)
            return
        self._read_next()

    def _read_failed(self, failure: Failure) -> None:
        self._now_idle()
        self.read_error = failure.value
        self._close()
        if self._stopped or self._finished:
            return
        self._finished = True
        assert self._done is not None
        if self._wrap_error is not None and failure.value is not None:
            self._done.errback(self._wrap_error(failure.value))
        else:
            self._done.errback(failure)

    def _close(self) -> None:
        if not self._owns_file:
            return
        run_in_thread(self._reactor, self._file.close).addErrback(
            lambda failure: _log.failure("closing {what} failed", failure, what=self._describe)
        )
