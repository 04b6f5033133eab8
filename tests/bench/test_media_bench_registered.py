"""``media_vs_nginx`` is registered in ``bench/run.py`` with its target (it is not run here: it moves GiBs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_media_vs_nginx_is_listed() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "media_vs_nginx  (target ratio >= 0.50)" in completed.stdout.splitlines()
