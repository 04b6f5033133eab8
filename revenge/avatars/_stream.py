"""Sending a stored object's streaming body as a response, with backpressure."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer

_log = Logger(namespace="revenge.avatars")


async def stream_body(request: Any, body: IBodyProducer, describe: str) -> None:
    """
    Write ``body`` into ``request`` until it ends. ``startProducing`` starts
    the flow; registering the body as the request's (push) producer is what
    lets a slow client pause it, so no more than a socket buffer's worth waits
    in memory. When the client goes away, Twisted stops the producer and
    Klein cancels this coroutine (``CancelledError``). When the body fails
    half-way, the status line is long gone: the connection is aborted, the
    one honest signal left, and nothing more is written.
    """
    request.registerProducer(body, True)
    try:
        await body.startProducing(request)
    except CancelledError:
        raise
    except Exception as error:
        _log.warn(
            "sending {what} failed after {sent} bytes: {reason}",
            what=describe,
            sent=request.sentLength,
            reason=str(error),
        )
        await _abort(request)
    finally:
        # Twisted drops the channel (and with it the producer) on disconnect.
        if request.channel is not None:
            request.unregisterProducer()


async def _abort(request: Any) -> None:
    transport = getattr(request.channel, "transport", None)
    if transport is None:
        raise CancelledError()
    # Fires (as a failure) once the connection is down, which also makes
    # Klein cancel the handler instead of finishing a response it cannot.
    gone: Deferred[None] = request.notifyFinish()
    transport.abortConnection()
    await gone
