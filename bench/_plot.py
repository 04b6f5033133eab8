"""
The failover plot written next to ``RESULTS.md``: every run of the
``failover`` benchmark (and ``handoff``/``failover_pause`` when they ran),
seconds until a survivor led, as a histogram with the target marked.

matplotlib is optional (``pip install -e '.[bench]'``): without it no plot is
written and :func:`write_failover_plot` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PLOTTED = ("failover", "failover_pause", "failover_partition", "handoff")
SAMPLES_KEY = "samples_s"
FAILOVER_TARGET_S = 1.5


def failover_samples(records: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per plotted benchmark that ran: its per-run seconds."""
    found: dict[str, list[float]] = {}
    for record in records:
        samples = record.get(SAMPLES_KEY)
        if record.get("name") in PLOTTED and isinstance(samples, list) and samples:
            found[str(record["name"])] = [float(value) for value in samples]
    return found


def write_failover_plot(records: Sequence[Mapping[str, Any]], path: Path) -> str | None:
    """Write the PNG; returns None when written, else the reason it was not."""
    samples = failover_samples(records)
    if not samples:
        return "no failover samples (the failover benchmark did not run)"
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4), dpi=100)
    try:
        top = max(max(values) for values in samples.values())
        bins = [i * top / 30 for i in range(31)] if top > 0 else 10
        for name, values in samples.items():
            axes.hist(values, bins=bins, alpha=0.6, label=f"{name} ({len(values)} runs)")
        axes.axvline(FAILOVER_TARGET_S, color="red", linestyle="--", label="target p99 1.5 s")
        axes.set_xlabel("seconds until a survivor reports itself leader")
        axes.set_ylabel("runs")
        axes.set_title("Raft failover, three nodes on loopback")
        axes.legend()
        figure.tight_layout()
        figure.savefig(path)
    finally:
        pyplot.close(figure)
    return None
