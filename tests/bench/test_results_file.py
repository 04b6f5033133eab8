"""
``bench/run.py --results PATH`` writes the markdown table (date, machine,
each figure beside its target) and, from the failover benchmark's per-run
samples, the plot beside it. A real quick run of one cheap benchmark, and the
plot from made-up samples (the failover benchmark itself is too slow here).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def load_bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_results_file_from_a_quick_run(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--results", str(results), "startup_to_ready"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert "- date: 20" in text and "- machine: `" in text and "- cores: " in text
    row = next(line for line in text.splitlines() if line.startswith("| startup_to_ready |"))
    assert "p50_s=" in row and "p50_s <= 1.5" in row
    # No failover run, so no plot, and the file says why.
    assert "No failover plot: no failover samples" in text
    assert not (tmp_path / "failover.png").exists()


def test_failover_samples_make_a_plot_and_stay_out_of_the_table(tmp_path: Path) -> None:
    run = load_bench_module("run")
    records = [
        {
            "name": "failover",
            "p50_s": 0.4,
            "p99_s": 1.1,
            "runs": 4,
            "samples_s": [0.31, 0.4, 0.52, 1.1],
            "target": "p99_s <= 1.5",
            "met": True,
            "quick": True,
            "machine": "test",
            "date": "2026-01-01T00:00:00+00:00",
        }
    ]
    text = run.render_markdown(records, run.machine(), "2026-01-01", plot="failover.png")
    assert "![failover distribution](failover.png)" in text
    assert "samples_s" not in text and "0.31" not in text
    pytest.importorskip("matplotlib")
    plot = load_bench_module("_plot")
    path = tmp_path / "failover.png"
    assert plot.write_failover_plot(records, path) is None
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert plot.write_failover_plot([{"name": "startup_to_ready", "p50_s": 1}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
