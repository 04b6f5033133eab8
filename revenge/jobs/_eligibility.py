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
# How often a follower probes the storage (the leader: four times per bound).
FOLLOWER_STORAGE_INTERVAL_S = 10.0


class _Probe:
    def __init__(self, name: str, check: Check, follower_interval: float | None) -> None:
        self.name = name
        self.check = check
        # Probed this often while this node follows (None: as often as when leading).
        self.follower_interval = follower_interval
        self.started_at: float | None = None  # of the probe in flight, or the last one
        self.in_flight = False
        # When the current run of failures began (the start of its first probe).
        self.failing_since: float | None = None
        self.last_error: str | None = None

    def failed_for(self, now: float) -> float:
        """How long this check has been failing, or hanging, as of ``now`` (0: it is not)."""
        since = self.failing_since
        if since is None and self.in_flight and self.started_at is not None:
            since = self.started_at  # an unanswered probe fails from when it was sent
        return 0.0 if since is None else now - since


class Eligibility(Service):
    """
    Probes ``checks`` (name: an async callable that raises when failing)
    every ``bound / 4`` seconds, one probe per check at a time. This node is
    not eligible once a check has failed (or a probe of it gone unanswered)
    for ``bound`` seconds. A check named in ``follower_intervals`` is probed
    only that often while this node does not lead: storage probes cost a
    request each (money, on AWS), and only a leader needs to know within the
    bound; a follower that becomes leader probes at the leader's pace at once.
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
        follower_intervals: Mapping[str, float] | None = None,
    ) -> None:
        if not bound > 0:
            raise ValueError("the bound must be positive")
        self._checks = dict(checks)
        self._follower_intervals = dict(follower_intervals or {})
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
        self._probes = {
            name: _Probe(name, check, self._follower_intervals.get(name))
            for name, check in self._checks.items()
        }
        self._loop.start(self._interval, now=True).addErrback(
            lambda failure: _log.failure("the eligibility probes stopped", failure=failure)
        )

    def stopService(self) -> None:  # noqa: N802 (Twisted's name)
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def _probe_all(self) -> None:
        now = self._clock.seconds()
        leading = self._election.is_leader()
        for probe in self._probes.values():
            if probe.in_flight:
                continue
            interval = self._interval
            if not leading and probe.follower_interval is not None:
                interval = probe.follower_interval
            if probe.started_at is not None and now - probe.started_at < interval - 1e-6:
                continue
            probe.in_flight = True
            probe.started_at = now
            probing = ensureDeferred(self._probe(probe, now))
            probing.addErrback(
                lambda failure: _log.failure("an eligibility probe crashed", failure=failure)
            )
        self._evaluate()

    async def _probe(self, probe: _Probe, started: float) -> None:
        try:
            await probe.check()
        except Exception:
            probe.last_error = _describe(Failure())
            if probe.failing_since is None:
                probe.failing_since = started
        else:
            probe.failing_since = None
            probe.last_error = None
        finally:
            probe.in_flight = False
        self._evaluate()

    def _evaluate(self) -> None:
        now = self._clock.seconds()
        failing = [
            probe for probe in self._probes.values() if probe.failed_for(now) >= self.bound
        ]
        eligible = not failing
        reason = None
        if failing:
            reason = "; ".join(
                f"{probe.name} has not answered for {probe.failed_for(now):.1f}s"
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
