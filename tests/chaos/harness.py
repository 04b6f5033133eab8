"""
The chaos suite's machinery: a three-node raft cluster on PostgreSQL and S3,
both reached through a :class:`TcpProxy` the driver can cut; the load
generator (``bench/_chaos_load.py``) in its own process; a record of every fault; and
the invariants checked at the end.

"Restarting PostgreSQL" and "restarting S3" are simulated by cutting every
connection through their proxies (new ones are refused, open ones die) and
listening again later: the real PostgreSQL server is shared with the rest
of the suite, and moto keeps its objects in memory, so restarting either for
real would break other tests or lose the very objects whose fate is checked.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from revenge.db import job_runs, users
from revenge.jobs import ACTIVITY_CLEANUP, AVATAR_SWEEP
from revenge.jobs._ledger import SUCCESS
from revenge.testing import FixedPortCluster, RaftNode, TcpProxy, wait_until

INTERVAL_S = 2.0
DEADLINE_S = 45.0
# The load generator, shared with the rolling_restart benchmark.
LOADGEN = Path(__file__).resolve().parents[2] / "bench" / "_chaos_load.py"


def long_form() -> bool:
    """``REVENGE_CHAOS=long``: more clients, every fault several times."""
    return os.environ.get("REVENGE_CHAOS", "short") == "long"


REFUSED = -1


def readyz(url: str, timeout: float = 2.0) -> int | None:
    """
    ``GET /readyz`` on a fresh connection: its status; :data:`REFUSED` when
    the connection was refused; None for any other failure (reset, timeout).
    """
    parts = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=timeout)
    try:
        try:
            connection.connect()
        except ConnectionRefusedError:
            return REFUSED
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


@dataclass
class Fault:
    kind: str
    target: str
    started: float
    ended: float | None = None
    survived: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outage:
    """A window in which job periods may go without a run (here: the database unreachable)."""

    kind: str
    started: float
    ended: float


class Chaos:
    """The cluster, its dependencies' proxies and the record of what was done to them."""

    def __init__(
        self,
        cluster: FixedPortCluster,
        engine: Engine,
        postgres_proxy: TcpProxy,
        s3_proxy: TcpProxy,
        s3_client: Any,
        bucket: str,
        admin_token: str,
        users: list[dict[str, str]],
        workdir: Path,
    ) -> None:
        self.cluster = cluster
        self.engine = engine
        self.postgres_proxy = postgres_proxy
        self.s3_proxy = s3_proxy
        self.s3_client = s3_client
        self.bucket = bucket
        self.admin_token = admin_token
        self.users = users
        self.workdir = workdir
        self.faults: list[Fault] = []
        self.outages: list[Outage] = []
        self.terminations: list[dict[str, Any]] = []

    # Waiting on the cluster.

    def node_ready(self, node: RaftNode) -> bool:
        return node.running and readyz(self.cluster.url(node)) == 200

    def wait_all_ready(self, what: str = "every node ready") -> None:
        wait_until(
            lambda: all(self.node_ready(n) for n in self.cluster.nodes), DEADLINE_S, what, 0.1
        )

    def leader(self, among: list[RaftNode] | None = None) -> RaftNode:
        return self.cluster.wait_for_leader(among, timeout=DEADLINE_S)

    def others(self, node: RaftNode) -> list[RaftNode]:
        return [n for n in self.cluster.nodes if n is not node]

    # Faults. Each waits until the fault has had its effect and the cluster
    # has recovered; "survived" means that recovery happened in time.

    def sigkill(self, node: RaftNode) -> None:
        fault = Fault("sigkill", node.node_id, time.time())
        self.faults.append(fault)
        self.cluster.kill(node)
        self.leader(self.others(node))
        self.cluster.start_node(node)
        self.wait_all_ready()
        self.cluster.wait_warm(DEADLINE_S)
        fault.ended = time.time()
        fault.survived = True

    def sigstop(self, node: RaftNode) -> None:
        fault = Fault("sigstop", node.node_id, time.time())
        self.faults.append(fault)
        self.cluster.signal(node, signal.SIGSTOP)
        try:
            self.leader(self.others(node))
        finally:
            self.cluster.signal(node, signal.SIGCONT)
        fault.details["sigcont"] = time.time()
        self.wait_all_ready()
        self.cluster.wait_warm(DEADLINE_S)
        fault.ended = time.time()
        fault.survived = True

    def sigterm_restart(self, node: RaftNode) -> dict[str, Any]:
        """
        SIGTERM, watching ``/readyz`` on fresh connections from another
        thread: the first 503 and the first refused connection are recorded.
        Then restart and wait until ready and the cluster warm.
        """
        url = self.cluster.url(node)
        seen: dict[str, float | None] = {"first_503": None, "first_refused": None}
        stop = threading.Event()
        polled = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + DEADLINE_S
            while not stop.is_set() and time.monotonic() < deadline:
                status = readyz(url, timeout=5.0)
                now = time.time()
                polled.set()
                if status == 503 and seen["first_503"] is None:
                    seen["first_503"] = now
                if status == REFUSED:
                    seen["first_refused"] = now
                    return
                stop.wait(0.002)

        fault = Fault("sigterm", node.node_id, time.time())
        self.faults.append(fault)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # The watcher has polled at least once before the signal.
        assert polled.wait(10), "the /readyz watcher never got an answer"
        fault.started = time.time()
        self.cluster.signal(node, signal.SIGTERM)
        assert node.process is not None
        code = node.process.wait(DEADLINE_S)
        exited = time.time()
        # The port is closed now: the watcher's next poll is refused and it ends.
        watcher.join(DEADLINE_S)
        stop.set()
        record = {
            "node": node.node_id,
            "node_index": self.cluster.nodes.index(node),
            "sigterm": fault.started,
            "exited": exited,
            "exit_code": code,
            **seen,
        }
        self.cluster.start_node(node)
        self.wait_all_ready()
        self.cluster.wait_warm(DEADLINE_S)
        record["ready_again"] = time.time()
        self.terminations.append(record)
        fault.details = record
        fault.ended = time.time()
        fault.survived = code == 0
        return record

    def cut_s3(self) -> None:
        fault = Fault("s3_cut", "s3", time.time())
        self.faults.append(fault)
        self.s3_proxy.cut()
        try:
            # Seen by the nodes: some node's readiness fails on storage.
            wait_until(
                lambda: any(readyz(self.cluster.url(n)) == 503 for n in self.cluster.nodes),
                DEADLINE_S,
                "a node to report S3 unreachable",
                0.1,
            )
        finally:
            self.s3_proxy.restore()
        fault.details["restored"] = time.time()
        self.wait_all_ready("every node ready by itself after S3 came back")
        fault.ended = time.time()
        fault.survived = True

    def cut_postgres(self) -> None:
        """
        "Restart PostgreSQL": every connection through the proxy dropped and
        new ones refused until restored. The outage for the job ledger runs
        from the cut until every node is ready again.
        """
        fault = Fault("postgres_cut", "postgres", time.time())
        self.faults.append(fault)
        self.postgres_proxy.cut()
        try:
            wait_until(
                lambda: any(readyz(self.cluster.url(n)) == 503 for n in self.cluster.nodes),
                DEADLINE_S,
                "a node to report the database unreachable",
                0.1,
            )
        finally:
            self.postgres_proxy.restore()
        fault.details["restored"] = time.time()
        self.wait_all_ready("every node ready by itself after PostgreSQL came back")
        fault.ended = time.time()
        fault.survived = True
        self.outages.append(Outage("postgres", fault.started, fault.ended))

    # The load.

    def start_load(self, name: str, clients: int, max_seconds: float) -> LoadRun:
        out = self.workdir / f"{name}-requests.json"
        stop_file = self.workdir / f"{name}.stop"
        plan: dict[str, Any] = {
            "nodes": [self.cluster.url(n) for n in self.cluster.nodes],
            "admin_token": self.admin_token,
            "users": self.users,
            "clients": clients,
            "out": str(out),
            "stop_file": str(stop_file),
            "max_seconds": max_seconds,
        }
        plan_path = self.workdir / f"{name}-plan.json"
        plan_path.write_text(json.dumps(plan))
        process = subprocess.Popen(
            [sys.executable, str(LOADGEN), str(plan_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return LoadRun(process, out, stop_file)

    # What the database and the bucket say.

    def ledger(self) -> dict[str, dict[int, tuple[str, int, str | None]]]:
        found: dict[str, dict[int, tuple[str, int, str | None]]] = {
            ACTIVITY_CLEANUP: {},
            AVATAR_SWEEP: {},
        }
        with self.engine.connect() as connection:
            for row in connection.execute(select(job_runs)):
                found.setdefault(row.job, {})[int(row.period)] = (
                    row.node_id,
                    int(row.term),
                    row.result,
                )
        return found

    def avatar_keys(self) -> dict[str, str | None]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(users.c.name, users.c.avatar_key))
            return {row.name: row.avatar_key for row in rows}

    def wait_for_success(self, period: int) -> None:
        def done() -> bool:
            runs = self.ledger()
            return all(runs[job].get(period, ("", 0, None))[2] == SUCCESS for job in runs)

        wait_until(done, DEADLINE_S, f"a successful run of both jobs in period {period}", 0.1)


@dataclass
class LoadRun:
    process: subprocess.Popen[str]
    out: Path
    stop_file: Path

    def finish(self) -> list[dict[str, Any]]:
        self.stop_file.write_text("stop")
        _, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        requests: list[dict[str, Any]] = json.loads(self.out.read_text())["requests"]
        return requests

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def current_period() -> int:
    return math.floor(time.time() / INTERVAL_S)


def period_bounds(period: int) -> tuple[float, float]:
    return period * INTERVAL_S, (period + 1) * INTERVAL_S


def overlaps(period: int, started: float, ended: float) -> bool:
    begin, end = period_bounds(period)
    return begin < ended and started < end


def summarize(requests: list[dict[str, Any]]) -> dict[str, Any]:
    by_outcome: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for r in requests:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
        if r["status"] is not None:
            by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
    errors = sum(
        1 for r in requests if r["outcome"] != "response" or (r["status"] or 0) >= 500
    )
    span = (max(r["t1"] for r in requests) - min(r["t0"] for r in requests)) if requests else 0.0
    return {
        "requests": len(requests),
        "errors": errors,
        # Refusals are the stopped node's; a load balancer following /readyz routes around them.
        "errors_excluding_refused": errors - by_outcome.get("refused", 0),
        "by_outcome": by_outcome,
        "by_status": by_status,
        "seconds": round(span, 2),
        "requests_per_s": round(len(requests) / span, 1) if span else 0.0,
    }
