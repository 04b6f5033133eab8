"""
A rolling restart under load: SIGTERM each node in turn, restart it, wait
until it is ready and the cluster warm, then the next. Nothing a node
accepted is lost; a node refuses new connections only after its ``/readyz``
answered 503 (watched from the driver on fresh connections, every few ms).
"""

from __future__ import annotations

import json

import pytest

from .harness import Chaos, long_form, summarize
from .invariants import check_lost_requests, check_server_errors, check_terminations

pytestmark = pytest.mark.chaos


def test_rolling_restart_under_load(chaos: Chaos) -> None:
    passes = 3 if long_form() else 1
    chaos.faults.clear()
    chaos.outages.clear()
    chaos.terminations.clear()
    chaos.wait_all_ready()
    chaos.cluster.wait_warm(45)
    load = chaos.start_load("rolling", 3, max_seconds=60.0 + 90.0 * passes)
    try:
        for _ in range(passes):
            for node in chaos.cluster.nodes:
                chaos.sigterm_restart(node)
        requests = load.finish()
    finally:
        load.kill()

    # Kept for a look after a failure too.
    (chaos.workdir / "rolling-restart-raw.json").write_text(
        json.dumps({"terminations": chaos.terminations, "requests": requests})
    )
    assert len(chaos.terminations) == 3 * passes
    terminations = check_terminations(chaos, requests)
    assert terminations["lost"] == 0
    # Nothing else was lost either (no SIGKILL or SIGSTOP here).
    assert check_lost_requests(chaos, requests) == terminations["reset_in_backlog_after_503"]
    # 503 only from the restarting node before it is ready again.
    not_ready = check_server_errors(chaos, requests)
    assert any(r["status"] == 200 for r in requests)
    figures = summarize(requests)
    figures["not_ready_503"] = not_ready
    figures["reset_in_backlog_after_503"] = terminations["reset_in_backlog_after_503"]
    figures["refused_after_503"] = terminations["refused_after_503"]
    summary = {"load": figures, "terminations": chaos.terminations}
    path = chaos.workdir / "rolling-restart-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    print(
        f"\nrolling restart of {len(chaos.terminations)} nodes: {figures['requests']} requests "
        f"({figures['requests_per_s']}/s), {figures['errors']} errors ({figures['by_outcome']}), "
        f"0 lost, {not_ready} not-ready 503s, "
        f"{figures['reset_in_backlog_after_503']} backlog resets after 503; summary {path}"
    )
