"""
Faults under load on a real three-node cluster (raft, PostgreSQL, S3): the
driver SIGKILLs, SIGSTOPs (then SIGCONTs) and SIGTERM-restarts nodes in
turn, cuts S3 and PostgreSQL (each through its proxy: see harness.py) while
``bench/_chaos_load.py`` keeps requests coming from its own process. Then the
invariants (invariants.py): the job ledger without a gap outside the
outages, avatars without a dangling pointer or an unexplained orphan,
nothing lost that a node accepted before its SIGTERM, every node ready
again by itself.

Short form (the default suite): each fault once. Long form:
``REVENGE_CHAOS=long pytest -m chaos tests/chaos``: every fault five times,
rotating the nodes, with more clients.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .harness import Chaos, current_period, long_form, readyz, summarize
from .invariants import check_avatars, check_lost_requests, check_ledger, check_terminations

pytestmark = pytest.mark.chaos


def test_faults_under_load(chaos: Chaos) -> None:
    rounds, clients = (5, 5) if long_form() else (1, 3)
    chaos.faults.clear()
    chaos.outages.clear()
    chaos.terminations.clear()
    first = current_period()
    chaos.wait_for_success(first)
    load = chaos.start_load("chaos", clients, max_seconds=60.0 + 120.0 * rounds)
    try:
        nodes = chaos.cluster.nodes
        for round_ in range(rounds):
            chaos.sigkill(chaos.leader())
            chaos.sigstop(chaos.leader())
            chaos.sigterm_restart(nodes[round_ % len(nodes)])
            chaos.cut_s3()
            chaos.cut_postgres()
        # Two whole periods after the last fault, run by the cluster as it is now.
        last = current_period() + 2
        chaos.wait_for_success(last)
        requests = load.finish()
    finally:
        load.kill()

    assert requests, "the load generator recorded nothing"
    # Each node's /readyz is 200 again without anyone's help.
    assert [readyz(chaos.cluster.url(n)) for n in chaos.cluster.nodes] == [200, 200, 200]
    ledger = check_ledger(chaos, first, last)
    avatars = check_avatars(chaos, requests)
    terminations = check_terminations(chaos, requests)
    lost = check_lost_requests(chaos, requests)
    assert all(f.survived for f in chaos.faults), [f for f in chaos.faults if not f.survived]
    assert sum(1 for r in requests if r["status"] == 201) > 0, "no upload ever succeeded"

    faults: dict[str, int] = {}
    for fault in chaos.faults:
        faults[fault.kind] = faults.get(fault.kind, 0) + 1
    summary: dict[str, Any] = {
        "form": "long" if long_form() else "short",
        "faults_injected": faults,
        "faults_survived": sum(1 for f in chaos.faults if f.survived),
        "load": summarize(requests),
        "lost_to_sigkill_or_sigstop": lost,
        "ledger": ledger,
        "avatars": avatars,
        "terminations": terminations,
        "faults": [
            {"kind": f.kind, "target": f.target, "seconds": round((f.ended or f.started) - f.started, 2)}
            for f in chaos.faults
        ],
    }
    path = chaos.workdir / "chaos-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    load_figures = summary["load"]
    print(
        f"\nchaos ({summary['form']}): {sum(faults.values())} faults injected, "
        f"{summary['faults_survived']} survived; {load_figures['requests']} requests, "
        f"{load_figures['errors']} errors ({load_figures['by_outcome']}); "
        f"{lost} lost to SIGKILL/SIGSTOP, {terminations['lost']} lost to SIGTERM; "
        f"{avatars['orphans']} orphans ({avatars['orphans_of_failed_uploads']} from failed "
        f"uploads); summary {path}"
    )
