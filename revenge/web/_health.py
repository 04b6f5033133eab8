"""
Readiness: named checks that components register, and the draining state.

``/readyz`` is 200 only when every check passes and the server is not
draining; otherwise 503 naming what failed, so an orchestrator takes the
replica out of rotation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

ReadinessCheck = Callable[[], "Awaitable[object] | Deferred[object]"]

_log = Logger(namespace="revenge.health")


@dataclass
class Readiness:
    """The outcome of one evaluation."""

    draining: bool
    failing: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.draining and not self.failing


class HealthChecks:
    """The registry behind ``/readyz``."""

    def __init__(self, reactor: IReactorTime, check_timeout: float = 2.0) -> None:
        self._reactor = reactor
        self._checks: dict[str, ReadinessCheck] = {}
        self._timeout = check_timeout
        self._last_failing: set[str] = set()
        self.draining = False

    def register(self, name: str, check: ReadinessCheck) -> None:
        """Add a check; it fails by raising (or failing its Deferred), or by timing out."""
        if name in self._checks:
            raise ValueError(f"a readiness check named {name!r} is already registered")
        self._checks[name] = check

    def names(self) -> list[str]:
        return sorted(self._checks)

    def start_draining(self) -> None:
        """From now on the server is not ready, whatever the checks say."""
        self.draining = True

    def _run_one(self, name: str, check: ReadinessCheck) -> Deferred[object]:
        async def call() -> object:
            return await check()

        d: Deferred[object] = ensureDeferred(call())
        d.addTimeout(self._timeout, self._reactor)
        return d

    async def evaluate(self) -> Readiness:
        if self.draining:
            return Readiness(draining=True)
        names = self.names()
        results = await DeferredList(
            [self._run_one(name, self._checks[name]) for name in names],
            consumeErrors=True,
        )
        failing = []
        for name, (succeeded, outcome) in zip(names, results):
            if not succeeded:
                failing.append(name)
                if name not in self._last_failing:
                    # One line when a check starts failing, not one per probe.
                    assert isinstance(outcome, Failure)
                    _log.warn(
                        "readiness check {check} failing: {reason}",
                        check=name,
                        reason=outcome.getErrorMessage() or repr(outcome.value),
                    )
        for name in self._last_failing - set(failing):
            _log.info("readiness check {check} passing again", check=name)
        self._last_failing = set(failing)
        return Readiness(draining=False, failing=failing)
