"""
Whether this node can do the leader's work (docs/jobs.md, "Leadership
follows the work").

Measured in issue 13: a leader cut off from PostgreSQL (its raft links fine)
kept leading for the whole cut and 8 of its 10 periods were missed, because
nothing told the election that this leader could not run anything. This
service probes what the jobs need, the database and the storage, and tells an
election that listens (:class:`~revenge.election.IYieldingElection`) as soon
as one of them has not answered for ``bound`` seconds: the election then
hands leadership to a node that can, and this node does not seek it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from revenge.db import describe_database_error
from revenge.election import IElection, IYieldingElection
from revenge.metrics import Metrics

_log = Logger(namespace="revenge.jobs")

Check = Callable[[], Awaitable[object]]

# Probes per bound: a failure is noticed within bound + bound / PROBES_PER_BOUND.
PROBES_PER_BOUND = 4
MIN_PROBE_INTERVAL_S = 0.1
MAX_PROBE_INTERVAL_S = 1.0


class _Probe:
    def __init__(self, name: str, check: Check, now: float) -> None:
        self.name = name
        self.check = check
        # Counted from start-up: a node is given one bound to get going.
        self.last_success = now
        self.last_error: str | None = None
        self.in_flight = False


class Eligibility(Service):
    """
    Probes ``checks`` (name: an async callable that raises when failing)
    every ``bound / 4`` seconds, one probe per check at a time (a probe that
    hangs is a failure once ``bound`` has passed). This node is eligible while
    every check succeeded within the last ``bound`` seconds.
    """

    name = "eligibility"

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        election: IElection,
        metrics: Metrics,
        clock: IReactorTime,
        bound: float,
    ) -> None:
        if not bound > 0:
            raise ValueError("the bound must be positive")
        self._checks = dict(checks)
        self._election = election
        self._metrics = metrics
        self._clock = clock
        self.bound = bound
        self._probes: dict[str, _Probe] = {}
        self._eligible = True
        self._reason: str | None = None
        interval = min(max(bound / PROBES_PER_BOUND, MIN_PROBE_INTERVAL_S), MAX_PROBE_INTERVAL_S)
        self._interval = interval
        self._loop = LoopingCall(self._probe_all)
        self._loop.clock = clock
        metrics.election_eligible.set(1)

    @property
    def eligible(self) -> bool:
        return self._eligible

    def status(self) -> dict[str, Any]:
        """The ``eligible`` and ``ineligible_reason`` fields of ``/api/v1/cluster``."""
        return {"eligible": self._eligible, "ineligible_reason": self._reason}

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        now = self._clock.seconds()
        self._probes = {name: _Probe(name, check, now) for name, check in self._checks.items()}
        self._loop.start(self._interval, now=True).addErrback(
            lambda failure: _log.failure("the eligibility probes stopped", failure=failure)
        )

    def stopService(self) -> None:  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def _probe_all(self) -> None:
        for probe in self._probes.values():
            if not probe.in_flight:
                probe.in_flight = True
                probing = ensureDeferred(self._probe(probe))
                probing.addErrback(
                    lambda failure: _log.failure("an eligibility probe crashed", failure=failure)
                )
        self._evaluate()

    async def _probe(self, probe: _Probe) -> None:
        try:
            await probe.check()
        except Exception:
            probe.last_error = _describe(Failure())
        else:
            probe.last_success = self._clock.seconds()
            probe.last_error = None
        finally:
            probe.in_flight = False
        self._evaluate()

    def _evaluate(self) -> None:
        now = self._clock.seconds()
        failing = [
            probe for probe in self._probes.values() if now - probe.last_success >= self.bound
        ]
        eligible = not failing
        reason = None
        if failing:
            reason = "; ".join(
                f"{probe.name} has not answered for {now - probe.last_success:.1f}s"
                + (f" ({probe.last_error})" if probe.last_error else " (a probe is still waiting)")
                for probe in failing
            )
        if eligible == self._eligible:
            self._reason = reason
            return
        self._eligible = eligible
        self._reason = reason
        self._metrics.election_eligible.set(1 if eligible else 0)
        if eligible:
            _log.info("this node can do the leader's work again")
        else:
            _log.warn(
                "this node cannot do the leader's work: {reason}; it hands leadership to a "
                "node that can and does not seek it",
                reason=reason,
            )
        if IYieldingElection.providedBy(self._election):
            IYieldingElection(self._election).set_eligible(eligible, reason)


def _describe(failure: Failure) -> str:
    error = failure.value
    if isinstance(error, Exception):
        return describe_database_error(error)
    return failure.getErrorMessage()
