from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from revenge.server._service import RevengeService
from revenge.web import HealthChecks


class Recorder(Service):
    def __init__(self, name: str, log: list[str], hold: bool = False) -> None:
        self.setName(name)
        self.log = log
        self.hold = hold
        self.release: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self.log.append(f"start {self.name}")

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.log.append(f"stop {self.name}")
        if self.hold:
            self.release = Deferred()
            return self.release
        return None


def test_children_stop_in_reverse_order_one_after_the_other():
    log: list[str] = []
    health = HealthChecks(Clock())
    top = RevengeService(Clock(), health)
    first = Recorder("database", log)
    second = Recorder("web", log, hold=True)
    third = Recorder("election", log)
    for child in (first, second, third):
        child.setServiceParent(top)
    top.startService()
    assert log == ["start database", "start web", "start election"]
    stopped = top.stopService()
    # Readiness turns at once, before any child has finished stopping.
    assert health.draining
    assert log[3:] == ["stop election", "stop web"]
    assert not stopped.called
    assert second.release is not None
    second.release.callback(None)
    assert log[3:] == ["stop election", "stop web", "stop database"]
    assert stopped.called


def test_a_failing_child_does_not_keep_the_others_running(captured_log):
    log: list[str] = []
    top = RevengeService(Clock(), HealthChecks(Clock()))

    class Broken(Recorder):
        def stopService(self) -> None:
            super().stopService()
            raise RuntimeError("cannot stop")

    Recorder("database", log).setServiceParent(top)
    Broken("web", log).setServiceParent(top)
    top.startService()
    stopped = top.stopService()
    assert stopped.called
    assert log[-2:] == ["stop web", "stop database"]
    assert any(r["message"] == "stopping web failed" for r in captured_log.records)


def test_signal_handlers_are_ours_before_the_reactor_runs():
    """
    twistd opens the listener before the reactor runs; a SIGTERM in that
    window must already reach our handler (a clean stop, exit 0), not the
    default one.
    """
    import signal

    class NotRunningReactor(Clock):
        def __init__(self) -> None:
            super().__init__()
            self.when_running: list[object] = []
            self.from_thread: list[object] = []

        def callWhenRunning(self, f, *a, **kw):
            self.when_running.append(f)

        def callFromThread(self, f, *a, **kw):
            self.from_thread.append((f, a))

    reactor = NotRunningReactor()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        top = RevengeService(reactor, HealthChecks(Clock()), handle_signals=True)
        top.startService()
        handler = signal.getsignal(signal.SIGTERM)
        assert getattr(handler, "__self__", None) is top
        assert signal.getsignal(signal.SIGINT) == handler
        # Installed again once running: the reactor's own handlers replace ours.
        assert len(reactor.when_running) == 1
        handler(signal.SIGTERM, None)  # type: ignore[operator]
        assert len(reactor.from_thread) == 1
    finally:
        for sig, previous in before.items():
            signal.signal(sig, previous)


def test_listeners_start_draining_as_readiness_turns_and_linger_from_then():
    """
    The linger counts from the stop of the whole node, not from the
    listener's turn: the services stopped before it (jobs, the election)
    spend time that the linger need not add to. The listener still closes
    before the services started before it (the database) stop.
    """
    from twisted.internet.testing import MemoryReactorClock

    from revenge.web import ListenerService, RevengeSite

    log: list[str] = []
    reactor = MemoryReactorClock()
    health = HealthChecks(reactor)
    top = RevengeService(reactor, health)
    Recorder("database", log).setServiceParent(top)
    site = RevengeSite(Resource())
    listener = ListenerService(reactor, "tcp:0", site, 25.0, "http", linger=2.0)
    listener.setServiceParent(top)
    election = Recorder("election", log, hold=True)
    election.setServiceParent(top)
    top.startService()
    assert listener.port is not None

    stopped = top.stopService()
    assert health.draining and site.draining
    assert log[-1] == "stop election"
    # The election hands over for 1.5 s: the listener is still open, then
    # has 0.5 s of its linger left.
    reactor.advance(1.5)
    assert election.release is not None
    election.release.callback(None)
    assert listener.port is not None
    assert log[-1] == "stop election"
    reactor.advance(0.5)
    assert listener.port is None
    assert log[-1] == "stop database"
    assert stopped.called
