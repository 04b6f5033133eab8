"""
``rolling_restart``: load held while three raft nodes restart in turn.

Three real ``twistd -n revenge`` processes (``FixedPortCluster``: SQLite, local
storage and a raft journal per node; each keeps its HTTP port across
restarts) under the chaos suite's load generator (``bench/_chaos_load.py``,
its own process: clients going round the nodes with ``GET /healthz`` and
``GET /api/v1/activity``, a fresh connection per request). Once the load
runs, each node in turn gets SIGTERM, is started again and waited for
(``/readyz`` 200, the cluster warm); the load stops after the last one.
Quick: one pass over the three nodes; full: three.

Figures: ``requests_per_s`` and ``ok_per_s`` (200 answers) over the whole
run; ``lost`` (connected, then no response: what the drain must prevent);
``server_errors`` (5xx, except ``not_ready_503``: the 503 a restarted node
answers between listening and its ``/readyz`` turning 200, which the load,
going round every node blindly, asks anyway); ``refused`` (connections refused by the node being restarted, which a load
balancer following ``/readyz`` would not have sent there); ``requests``,
``seconds``, ``restarts``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from revenge.testing import FixedPortCluster, wait_until

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]

LOAD = Path(__file__).with_name("_chaos_load.py")
DEADLINE_S = 60.0


def rolling_restart(quick: bool) -> Figures:
    passes = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="revenge-bench-rolling-") as tmp:
        root = Path(tmp)
        cluster = FixedPortCluster(root / "nodes")
        load: subprocess.Popen[str] | None = None
        try:
            cluster.start()
            for node in cluster.nodes:
                assert node.process is not None
                node.process.wait_ready(DEADLINE_S)
            cluster.wait_warm(DEADLINE_S)
            out = root / "requests.json"
            stop_file = root / "stop"
            plan = {
                "nodes": [cluster.url(n) for n in cluster.nodes],
                "admin_tokens": [n.token for n in cluster.nodes],
                "admin_token": cluster.nodes[0].token,
                "users": [],
                "clients": 3,
                "out": str(out),
                "stop_file": str(stop_file),
                "max_seconds": 120.0 * passes,
            }
            (root / "plan.json").write_text(json.dumps(plan))
            load = subprocess.Popen(
                [sys.executable, str(LOAD), str(root / "plan.json")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            windows: list[tuple[int, float, float]] = []
            for _ in range(passes):
                for index, node in enumerate(cluster.nodes):
                    terminated = time.time()
                    cluster.signal(node, signal.SIGTERM)
                    assert node.process is not None
                    code = node.process.wait(DEADLINE_S)
                    if code != 0:
                        raise RuntimeError(f"{node.node_id} exited with {code} after SIGTERM")
                    restarted = cluster.start_node(node)
                    restarted.wait_ready(DEADLINE_S)
                    windows.append((index, terminated, time.time()))
                    cluster.wait_warm(DEADLINE_S)
            stop_file.write_text("stop")
            _, err = load.communicate(timeout=DEADLINE_S)
            if load.returncode != 0:
                raise RuntimeError(f"the load generator failed: {err[-2000:]}")
            wait_until(out.exists, 10, "the load record")
            requests: list[dict[str, Any]] = json.loads(out.read_text())["requests"]
        finally:
            if load is not None and load.poll() is None:
                load.kill()
                load.wait(10)
            cluster.stop()
    if not requests:
        raise RuntimeError("the load generator recorded nothing")
    seconds = max(r["t1"] for r in requests) - min(r["t0"] for r in requests)

    def restarting(request: dict[str, Any]) -> bool:
        return any(
            node == request["node"] and begin <= request["t0"] and request["t1"] <= end
            for node, begin, end in windows
        )

    failed = [r for r in requests if (r["status"] or 0) >= 500]
    return {
        "requests_per_s": round(len(requests) / seconds, 1),
        "ok_per_s": round(sum(1 for r in requests if r["status"] == 200) / seconds, 1),
        "lost": sum(1 for r in requests if r["outcome"] == "lost"),
        "server_errors": sum(1 for r in failed if not restarting(r)),
        "not_ready_503": sum(1 for r in failed if restarting(r) and r["status"] == 503),
        "refused": sum(1 for r in requests if r["outcome"] == "refused"),
        "requests": len(requests),
        "seconds": round(seconds, 2),
        "restarts": 3 * passes,
    }


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add this benchmark to ``bench/run.py``'s registry."""
    benchmark(
        "rolling_restart",
        target="lost == 0 and server_errors == 0",
        met=lambda figures: bool(figures["lost"] == 0 and figures["server_errors"] == 0),
    )(rolling_restart)


if __name__ == "__main__":
    sys.stdout.write(json.dumps({"name": "rolling_restart", **rolling_restart("--quick" in sys.argv)}) + "\n")
