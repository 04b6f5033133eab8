"""
Sending part of an open file as a response body, at the client's pace.

:class:`FileStream` is a push producer registered on the request: chunks
are read in worker threads (reads on NFS may block) and written as the
transport asks for them. At most one chunk is being read while at most one
waits for a paused transport, so a connection holds about two chunks of
the file however slow its reader is; the file is never read whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from revenge.media._paths import read_chunk
from revenge.media._threads import FilesystemThreads

_log = Logger(namespace="revenge.media")

# Large chunks keep the per-chunk costs (a thread hand-off, a Python call
# per write) small next to copying the bytes; see bench/media_benchmarks.py.
DEFAULT_CHUNK_SIZE = 1024 * 1024


@implementer(IPushProducer)
class FileStream:
    """
    Writes ``length`` bytes of ``fd`` from ``offset`` to ``request``. The
    Deferred of :meth:`start` fires (with None) once every byte is written
    or the connection is gone; the stream closes ``fd`` either way.
    """

    def __init__(
        self,
        threads: FilesystemThreads,
        request: Any,
        fd: int,
        offset: int,
        length: int,
        description: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_written: Callable[[int], object] | None = None,
    ) -> None:
        self._threads = threads
        # Told the size of each chunk as it is handed to the connection (the
        # media_bytes_sent_total counter), so a long stream counts as it goes.
        self._on_written = on_written
        self._request = request
        self._fd: int | None = fd
        self._read_offset = offset
        self._to_read = length
        self._to_write = length
        self._description = description
        self._chunk_size = chunk_size
        self._reading = False
        self._paused = False
        self._stopped = False
        # A chunk read while the transport was paused.
        self._waiting: bytes | None = None
        self._done: Deferred[None] = Deferred(lambda _: self._stop())

    def start(self) -> Deferred[None]:
        self._request.notifyFinish().addErrback(self._connection_lost)
        self._request.registerProducer(self, True)
        self._read_next()
        return self._done

    # IPushProducer, called by the transport.

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self._paused = False
        if self._waiting is not None:
            chunk, self._waiting = self._waiting, None
            self._write(chunk)
        else:
            self._read_next()

    def stopProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self._stop()
        self._fire_done()

    # Reading and writing.

    def _read_next(self) -> None:
        if self._reading or self._stopped or self._waiting is not None or not self._to_read:
            return
        size = min(self._chunk_size, self._to_read)
        assert self._fd is not None
        self._reading = True
        reading = self._threads.run(read_chunk, self._fd, self._read_offset, size)
        self._read_offset += size
        self._to_read -= size
        reading.addCallbacks(self._got_chunk, self._read_failed, callbackArgs=(size,))

    def _got_chunk(self, chunk: bytes, expected: int) -> None:
        self._reading = False
        if self._stopped:
            self._close_file()
            return
        if len(chunk) != expected:
            # The file shrank under us: the promised Content-Length cannot be kept.
            self._give_up(f"the file ended {expected - len(chunk)} bytes early")
            return
        if self._paused:
            self._waiting = chunk
            return
        self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        self._to_write -= len(chunk)
        # May call pauseProducing (or stopProducing) before it returns.
        self._request.write(chunk)
        if self._on_written is not None:
            self._on_written(len(chunk))
        if self._stopped:
            return
        if not self._to_write:
            self._complete()
            return
        # Read the next chunk while this one drains.
        self._read_next()

    def _read_failed(self, failure: Failure) -> None:
        self._reading = False
        if self._stopped:
            self._close_file()
            return
        self._give_up(f"reading failed: {failure.getErrorMessage()}")

    def _give_up(self, reason: str) -> None:
        # The status line and Content-Length are gone; cutting the connection
        # is the only way left to tell the client its copy is incomplete.
        _log.warn(
            "streaming {file} cut short: {reason}", file=self._description, reason=reason
        )
        self._stop()
        transport = getattr(getattr(self._request, "channel", None), "transport", None)
        if transport is not None:
            transport.abortConnection()
        # The Deferred fires when the connection is lost (_connection_lost),
        # so the request is never finished as if complete.

    # Ending.

    def _complete(self) -> None:
        self._stopped = True
        self._request.unregisterProducer()
        self._close_file()
        self._fire_done()

    def _connection_lost(self, failure: Failure) -> None:
        self._stop()
        self._fire_done()

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._waiting = None
        # After the connection is lost the request has no channel left to unregister from.
        if not self._request.finished and self._request.channel is not None:
            self._request.unregisterProducer()
        if not self._reading:
            self._close_file()

    def _fire_done(self) -> None:
        if not self._done.called:
            self._done.callback(None)

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing an NFS file is a round trip to the server: not here either.
            self._threads.run(os.close, fd).addErrback(
                lambda failure: _log.failure("closing {file} failed", failure, file=self._description)
            )
