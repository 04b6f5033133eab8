"""The top-level service: start in order, stop in reverse order one by one."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from revenge.web import HealthChecks, ListenerService, StartupError

_log = Logger(namespace="revenge.server")


class RevengeService(MultiService):
    """
    Children start in the order they were added and stop in reverse order,
    each waiting for the one before (``MultiService`` stops them all at once).
    On stop, ``/readyz`` turns 503 and the listeners start draining before
    anything else happens.
    """

    def __init__(
        self,
        reactor: Any,
        health: HealthChecks,
        log_observer: ILogObserver | None = None,
        handle_signals: bool = False,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self._health = health
        self._log_observer = log_observer
        self._handle_signals = handle_signals
        self._shutdown_requested = False

    def setServiceParent(self, parent: Any) -> None:  # noqa: N802 (Twisted's name)
        # twistd asks the Application for an ILogObserver component right
        # after makeService; registering ours there makes twistd log through
        # it instead of its own text observer.
        if self._log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self._log_observer)
        super().setServiceParent(parent)

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        if self._handle_signals:
            # Now, for a SIGTERM that arrives before the reactor runs, and
            # again once it runs, because the reactor installs its own
            # handlers on the way.
            self._install_signal_handlers()
            self._reactor.callWhenRunning(self._install_signal_handlers)
        try:
            super().startService()
        except StartupError as error:
            _log.critical("cannot start: {error}", error=str(error))
            if self._handle_signals:
                # Under twistd: exit non-zero with the one line above, no traceback.
                raise SystemExit(1) from None
            raise

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        self._health.start_draining()
        # The listeners' linger counts from the moment /readyz turns, not from
        # their turn to stop: the services stopped before them (jobs, the
        # election hand-over) take time the linger need not add to. They keep
        # listening until then, and still close before the database does.
        for child in self:
            if isinstance(child, ListenerService):
                child.start_draining()
        # Service's version only marks this service stopped; the children are
        # stopped below, one after the other.
        Service.stopService(self)
        return ensureDeferred(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                _log.failure("stopping {service} failed", service=child.name)
        _log.info("stopped")

    def _install_signal_handlers(self) -> None:
        # Replaces twistd's own handlers, which record the signal and make the
        # process die by it after shutdown; a drained shutdown is a success
        # and exits 0.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of the main thread: do nothing here that
        # takes a lock (logging does); hand over to the reactor.
        self._reactor.callFromThread(self._shutdown, signal.Signals(signum).name)

    def _shutdown(self, signal_name: str) -> None:
        if self._shutdown_requested:
            _log.info("{signal} received again; already shutting down", signal=signal_name)
            return
        self._shutdown_requested = True
        _log.info("{signal} received: draining, then stopping", signal=signal_name)
        self._reactor.stop()
