"""Periods and ticks: the arithmetic of docs/jobs.md, "The tick"."""

from __future__ import annotations

import math
from datetime import datetime, timezone

# The longest time between two ticks of a job: how late a period may start
# being attempted, and how soon a failed claim is retried.
MAX_TICK_S = 5.0
# Even short periods get several ticks: a claim that failed, or a tick that
# fell in a moment without leadership (a lease renewed late under load), is
# retried within the same period.
MIN_TICKS_PER_PERIOD = 4


def tick_interval(interval: float, max_tick: float = MAX_TICK_S) -> float:
    """
    The tick of a job: the interval divided into the fewest equal parts no
    longer than ``max_tick``, and at least MIN_TICKS_PER_PERIOD of them. A
    whole number of ticks per period keeps a tick on every period boundary
    once the loop is started on one.
    """
    return interval / max(MIN_TICKS_PER_PERIOD, math.ceil(interval / max_tick))


def tick_lag(tick: float) -> float:
    """How long after a boundary a tick falls, so that it reads the new period."""
    return min(0.05, tick / 100)


def period_of(seconds: float, interval: float) -> int:
    """``floor(unix seconds / interval seconds)`` (docs/design.md, "Periodic jobs")."""
    return math.floor(seconds / interval)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
