"""Prometheus metrics of the server (names per DESIGN.md)."""

from revenge.metrics._registry import PREFIX, Metrics

__all__ = ["PREFIX", "Metrics"]
