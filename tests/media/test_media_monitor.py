"""LibraryMonitor on its own: shared probes, a root that does not answer, state changes logged once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from revenge.media._libraries import Library, LibraryMonitor, LibraryUnavailable, RootProblem

LIBRARY = Library("movies", "movies", "/media/movies")


class HeldThreads:
    """Stands in for FilesystemThreads: every call waits until the test answers it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        result: Deferred[Any] = Deferred()
        self.calls.append((fn, args, result))
        return result


def media_lines(captured_log: Any) -> list[str]:
    return [record["message"] for record in captured_log.matching(namespace="revenge.media")]


def test_a_root_that_does_not_answer(captured_log: Any) -> None:
    threads = HeldThreads()
    clock = Clock()
    monitor = LibraryMonitor([LIBRARY], threads, clock, timeout=1.5)  # type: ignore[arg-type]

    first = ensureDeferred(monitor.problem(LIBRARY))
    second = ensureDeferred(monitor.problem(LIBRARY))
    # One probe in a thread for both callers: a hung mount holds one thread, not one per probe.
    assert len(threads.calls) == 1
    clock.advance(1.5)
    for outcome in (first, second):
        problem = outcome.result
        assert isinstance(problem, RootProblem) and problem.code == "not_responding"
    lines = media_lines(captured_log)
    assert len(lines) == 1 and "did not answer within 1.5s" in lines[0]

    # The readiness check fails meanwhile, naming the root; still one thread, one line.
    check = ensureDeferred(monitor.check(LIBRARY))
    clock.advance(1.5)
    failure = check.result
    check.addErrback(lambda _: None)
    assert isinstance(failure.value, LibraryUnavailable)
    assert "/media/movies" in str(failure.value)
    assert len(threads.calls) == 1
    assert len(media_lines(captured_log)) == 1

    # The server answers at last: the root is fine again, said once.
    threads.calls[0][2].callback(None)
    assert media_lines(captured_log)[1:] == ["media library movies (movies) available again at /media/movies"]
    later = ensureDeferred(monitor.problem(LIBRARY))
    assert len(threads.calls) == 2
    threads.calls[1][2].callback(None)
    assert later.result is None
    assert len(media_lines(captured_log)) == 2


def test_repeated_failures_are_logged_once(captured_log: Any) -> None:
    threads = HeldThreads()
    monitor = LibraryMonitor([LIBRARY], threads, Clock())  # type: ignore[arg-type]
    empty = RootProblem("empty", "is empty")
    for _ in range(5):
        probe = ensureDeferred(monitor.problem(LIBRARY))
        threads.calls[-1][2].callback(empty)
        assert probe.result == empty
    assert len(media_lines(captured_log)) == 1
    missing = RootProblem("missing", "does not exist")
    ensureDeferred(monitor.problem(LIBRARY))
    threads.calls[-1][2].callback(missing)
    lines = media_lines(captured_log)
    assert len(lines) == 2 and lines[1].endswith("/media/movies does not exist")
