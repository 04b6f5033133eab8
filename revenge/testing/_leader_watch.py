"""
Watching a cluster's leadership from outside, for tests and benchmarks.

A :class:`LeaderWatch` asks every node's ``GET /api/v1/cluster`` every
``interval`` (each node on its own thread, so that a frozen or cut-off node
delays nobody else's answers) and keeps what they said.

Two leaders at once are told apart from two polls that merely straddle a
hand-over by the raft provider's lease fields: a node that says it leads also
says since when it has held its lease without a break (``held_since``) and
the host's monotonic clock as it answered. Node B leading continuously from
``held_since`` to the moment it answered, while node A answered "leader" at a
moment inside that span, is proof that both led at that moment; polls that
merely come close are not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Status = dict[str, Any]


@dataclass(frozen=True)
class Observation:
    """One answer: when (the node's monotonic clock), who, and what it said."""

    node_id: str
    clock: float
    is_leader: bool
    held_since: float | None
    term: int | None
    raft_term: int | None


@dataclass
class _Span:
    """A stretch of one node's continuous leadership, as far as its answers prove it."""

    node_id: str
    since: float
    last_seen: float


@dataclass(frozen=True)
class Overlap:
    """Proof of two leaders at one moment."""

    first: str
    second: str
    moment: float

    def __str__(self) -> str:
        return f"{self.first} and {self.second} both led at monotonic {self.moment:.3f}"


@dataclass
class _Sample:
    """One poll round's view: the wall of leaders at roughly one moment."""

    at: float  # the watcher's monotonic clock
    leaders: frozenset[str]
    answered: frozenset[str]


@dataclass
class LeaderWatch:
    """
    Polls ``fetch(node_id)`` for every node in ``node_ids`` every ``interval``
    seconds until :meth:`stop`. ``fetch`` returns the node's status or None
    (not answering, not running).
    """

    node_ids: list[str]
    fetch: Callable[[str], Status | None]
    interval: float = 0.1
    observations: list[Observation] = field(default_factory=list)
    samples: list[_Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._spans: dict[str, list[_Span]] = {node: [] for node in self.node_ids}
        self._overlaps: list[Overlap] = []
        self._latest: dict[str, Status | None] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> LeaderWatch:
        for node_id in self.node_ids:
            thread = threading.Thread(
                target=self._poll, args=(node_id,), daemon=True, name=f"watch-{node_id}"
            )
            self._threads.append(thread)
            thread.start()
        sampler = threading.Thread(target=self._sample, daemon=True, name="watch-sampler")
        self._threads.append(sampler)
        sampler.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LeaderWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Polling.

    def _poll(self, node_id: str) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                status = self.fetch(node_id)
            except Exception:
                status = None
            self._record(node_id, status)
            self._stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _record(self, node_id: str, status: Status | None) -> None:
        with self._lock:
            self._latest[node_id] = status
            if status is None:
                return
            raft = status.get("raft") or {}
            lease = raft.get("lease") or {}
            clock = lease.get("clock")
            observation = Observation(
                node_id=node_id,
                clock=float(clock) if clock is not None else time.monotonic(),
                is_leader=bool(status.get("is_leader")),
                held_since=lease.get("held_since"),
                term=status.get("term"),
                raft_term=raft.get("term"),
            )
            self.observations.append(observation)
            if observation.is_leader and observation.held_since is not None:
                self._extend(observation)

    def _extend(self, observation: Observation) -> None:
        spans = self._spans.setdefault(observation.node_id, [])
        since = float(observation.held_since)  # type: ignore[arg-type]
        if spans and abs(spans[-1].since - since) < 1e-9:
            spans[-1].last_seen = max(spans[-1].last_seen, observation.clock)
            span = spans[-1]
        else:
            span = _Span(observation.node_id, since, observation.clock)
            spans.append(span)
        for other_node, others in self._spans.items():
            if other_node == observation.node_id:
                continue
            for other in others:
                start = max(span.since, other.since)
                end = min(span.last_seen, other.last_seen)
                if start <= end:
                    overlap = Overlap(other_node, observation.node_id, start)
                    if overlap not in self._overlaps:
                        self._overlaps.append(overlap)

    def _sample(self) -> None:
        while not self._stopping.wait(self.interval):
            with self._lock:
                answered = frozenset(n for n, s in self._latest.items() if s is not None)
                leaders = frozenset(
                    n for n, s in self._latest.items() if s is not None and s.get("is_leader")
                )
                self.samples.append(_Sample(time.monotonic(), leaders, answered))

    # What a test asks.

    def overlaps(self) -> list[Overlap]:
        """Every proven moment of two leaders at once (there must be none)."""
        with self._lock:
            return list(self._overlaps)

    def latest(self, node_id: str) -> Status | None:
        with self._lock:
            return self._latest.get(node_id)

    def seconds_without_one_leader(self, since: float | None = None) -> float:
        """Time (per sampling round) in which not exactly one node said it leads."""
        with self._lock:
            samples = [s for s in self.samples if since is None or s.at >= since]
        return sum(self.interval for sample in samples if len(sample.leaders) != 1)

    def leader_changes(self, since: float | None = None) -> int:
        """How often the single leader seen changed (rounds without one do not count)."""
        with self._lock:
            samples = [s for s in self.samples if since is None or s.at >= since]
        changes = 0
        previous: str | None = None
        for sample in samples:
            if len(sample.leaders) != 1:
                continue
            (leader,) = sample.leaders
            if previous is not None and leader != previous:
                changes += 1
            previous = leader
        return changes

    def raft_terms(self, node_ids: Iterable[str] | None = None) -> dict[str, int | None]:
        """The newest raft term each node reported."""
        wanted = set(node_ids) if node_ids is not None else set(self.node_ids)
        found: dict[str, int | None] = {node: None for node in wanted}
        with self._lock:
            for observation in self.observations:
                if observation.node_id in wanted and observation.raft_term is not None:
                    found[observation.node_id] = observation.raft_term
        return found
