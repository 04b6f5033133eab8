"""Prometheus metrics of the server (names per docs/design.md)."""

from revenge.metrics._instrumented import IInstrumented
from revenge.metrics._registry import PREFIX, Metrics

__all__ = ["PREFIX", "IInstrumented", "Metrics"]
