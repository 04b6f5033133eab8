"""
``bench/run.py`` runs and speaks the JSON it promises.

Only the startup benchmark, in its quick form: the load benchmark takes too
long for the suite. No timing is asserted here; targets live in the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_startup_to_ready_quick_json() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", "startup_to_ready"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stdout
    record = json.loads(lines[0])
    assert record["name"] == "startup_to_ready"
    for field in ("p50_s", "max_s"):
        value = record[field]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), record
        assert value > 0, record
    assert record["max_s"] >= record["p50_s"], record
    assert isinstance(record["target"], str) and record["target"], record
    assert isinstance(record["met"], bool), record
    assert isinstance(record["machine"], str) and record["machine"], record
    assert isinstance(record["date"], str) and record["date"], record
