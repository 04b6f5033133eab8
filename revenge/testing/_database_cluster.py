"""
Real ``twistd -n revenge`` nodes that share one database, for tests and
benchmarks of election backends that need nothing else between the nodes
(e.g. the ``postgres`` plugin). Each node has its own working directory; one
admin token, made with ``revenge user add`` against the shared database,
reads ``GET /api/v1/cluster`` on every node.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revenge.testing._process import ServerProcess, fetch_cluster_status, wait_until

Status = dict[str, Any]


@dataclass
class ClusterNode:
    """One node: its identity, its directory and (while running) its process."""

    node_id: str
    workdir: Path
    process: ServerProcess | None = None

    @property
    def running(self) -> bool:
        return (
            self.process is not None
            and self.process.process is not None
            and self.process.process.poll() is None
        )


class SharedDatabaseCluster:
    """
    ``size`` nodes on ``database_url`` with ``env`` (the election backend
    and its settings) added to each node's environment; nothing runs until
    :meth:`start`.
    """

    def __init__(
        self,
        root: Path,
        database_url: str,
        size: int = 2,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.database_url = database_url
        self.env = dict(env or {})
        self.token = ""
        self.nodes = [
            ClusterNode(f"node-{index}", self.root / f"node-{index}") for index in range(size)
        ]

    def node_env(self, node: ClusterNode) -> dict[str, str]:
        return {
            "REVENGE_NODE_ID": node.node_id,
            "REVENGE_DATA_DIR": str(node.workdir / "data"),
            "REVENGE_DATABASE_URL": self.database_url,
            # Rolling restarts behind a balancer are what the linger is for:
            # the real default, not ServerProcess's 0s.
            "REVENGE_SERVER_SHUTDOWN_LINGER": "2s",
            **self.env,
        }

    def make_admin(self) -> str:
        """``revenge user add admin --admin`` on the shared database (migrating it first)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
        self.root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(Path(sys.executable).with_name("revenge")), "user", "add", "admin", "--admin"],
            cwd=self.root,
            env={**base, "REVENGE_DATABASE_URL": self.database_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"revenge user add failed: {done.stderr.strip()}")
        self.token = done.stdout.strip()
        return self.token

    def start(self) -> SharedDatabaseCluster:
        """Make the admin (once), start every node and wait until each serves HTTP."""
        if not self.token:
            self.make_admin()
        for node in self.nodes:
            self.start_node(node, wait=False)
        for node in self.nodes:
            assert node.process is not None
            node.process.port  # noqa: B018 (waits for the listener)
        return self

    def start_node(self, node: ClusterNode, wait: bool = True) -> ServerProcess:
        node.process = ServerProcess(node.workdir, env=self.node_env(node)).start()
        if wait:
            node.process.port  # noqa: B018 (waits for the listener)
        return node.process

    def signal(self, node: ClusterNode, signum: int) -> None:
        assert node.process is not None
        node.process.signal(signum)

    def stop(self) -> None:
        """Kill every node still running (SIGCONT first: it may be stopped)."""
        for node in self.nodes:
            if node.running:
                assert node.process is not None
                node.process.kill()

    def __enter__(self) -> SharedDatabaseCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Reading the election through the API.

    def status(self, node: ClusterNode, timeout: float = 1.0) -> Status | None:
        """The node's ``GET /api/v1/cluster``, or None when it does not answer in time."""
        if not node.running:
            return None
        assert node.process is not None
        try:
            port = node.process.port
        except (RuntimeError, TimeoutError):
            return None
        return fetch_cluster_status(port, self.token, timeout)

    def agreed_leader(self, among: list[ClusterNode] | None = None) -> ClusterNode | None:
        """The one node of ``among`` (default: all running) that leads, if all of them name it."""
        candidates = among if among is not None else [n for n in self.nodes if n.running]
        statuses = [self.status(node) for node in candidates]
        if not statuses or any(status is None for status in statuses):
            return None
        leading = [n for n, s in zip(candidates, statuses) if s is not None and s["is_leader"]]
        if len(leading) != 1:
            return None
        named = {s["leader"] for s in statuses if s is not None}
        return leading[0] if named == {leading[0].node_id} else None

    def wait_for_leader(
        self, among: list[ClusterNode] | None = None, timeout: float = 30.0
    ) -> ClusterNode:
        """Wait until exactly one node of ``among`` leads and all of them name it."""
        leader: ClusterNode = wait_until(
            lambda: self.agreed_leader(among), timeout, "one leader that every node names"
        )
        return leader

    def term(self, node: ClusterNode) -> int:
        status = self.status(node)
        if status is None:
            raise RuntimeError(f"{node.node_id} does not answer")
        term: int = status["term"]
        return term
