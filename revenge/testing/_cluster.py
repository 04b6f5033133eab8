"""
What every cluster of real ``twistd -n revenge`` nodes has in common, whatever
elects its leader: N nodes, each in its own working directory with its own
:class:`ServerProcess`, an admin token to read ``GET /api/v1/cluster`` with,
starting and stopping them, signalling one, and asking who leads.

A backend's cluster (:class:`RaftCluster`, :class:`SharedDatabaseCluster`)
says only what differs: each node's environment, where admin tokens come
from, and what "one leader" means for it (:meth:`ProcessCluster.current_leader`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from revenge.testing._process import ServerProcess, fetch_cluster_status
from revenge.testing._waiting import wait_until

Status = dict[str, Any]


def revenge_executable() -> str:
    """The ``revenge`` command beside the running interpreter (same virtualenv)."""
    return str(Path(sys.executable).with_name("revenge"))


def add_admins(places: Sequence[tuple[str, Path, Mapping[str, str]]]) -> list[str]:
    """
    ``revenge user add admin --admin`` once per ``(who, workdir, env)``, all
    at once (each migrates its database first, the slow part); the tokens,
    in order. ``env`` holds the node's REVENGE_* settings: the caller's own
    are left out, so that only the node's database is written.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    running = []
    for _, workdir, env in places:
        workdir.mkdir(parents=True, exist_ok=True)
        running.append(
            subprocess.Popen(
                [revenge_executable(), "user", "add", "admin", "--admin"],
                cwd=workdir,
                env={**base, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    tokens = []
    for (who, _, _), process in zip(places, running):
        out, err = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"revenge user add failed for {who}: {err.strip()}")
        tokens.append(out.strip())
    return tokens


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


NodeT = TypeVar("NodeT", bound=ClusterNode)


class ProcessCluster(Generic[NodeT]):
    """
    Real nodes under ``root`` with ``env`` added to each node's environment;
    nothing runs until :meth:`start`. Subclasses make :attr:`nodes` and say
    what differs (the methods that raise ``NotImplementedError`` here).
    """

    # What :meth:`wait_for_leader` is waiting for, in its timeout error.
    leader_wanted = "one leader"

    def __init__(self, root: Path, env: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.env = dict(env or {})
        self.nodes: list[NodeT] = []

    # What a backend says.

    def node_env(self, node: NodeT) -> dict[str, str]:
        """The node's REVENGE_* settings (on top of :class:`ServerProcess`'s)."""
        raise NotImplementedError

    def admin_token(self, node: NodeT) -> str:
        """The token that reads ``node``'s ``GET /api/v1/cluster``."""
        raise NotImplementedError

    def make_admins(self, nodes: list[NodeT]) -> None:
        """Make the admin tokens that ``nodes`` need and do not have yet."""
        raise NotImplementedError

    def current_leader(self, among: list[NodeT] | None = None) -> NodeT | None:
        """The leader of ``among`` (default: all running) if there is one now, else None."""
        raise NotImplementedError

    def command_prefix(self, node: NodeT) -> list[str]:
        """What goes in front of ``node``'s twistd command (nothing here)."""
        return []

    def server_args(self, node: NodeT) -> list[str]:
        """``node``'s arguments to ``twistd revenge`` (none here: any free port)."""
        return []

    # Running the nodes.

    def start(self) -> Self:
        """Start every node (making admin tokens first) and wait until each serves HTTP."""
        self.make_admins(self.nodes)
        for node in self.nodes:
            self.start_node(node, wait=False)
        for node in self.nodes:
            assert node.process is not None
            node.process.port  # noqa: B018 (waits for the listener)
        return self

    def start_node(self, node: NodeT, wait: bool = True) -> ServerProcess:
        self.make_admins([node])
        process = ServerProcess(
            node.workdir,
            env=self.node_env(node),
            args=self.server_args(node),
            command_prefix=self.command_prefix(node),
        )
        node.process = process
        process.start()
        if wait:
            process.port  # noqa: B018 (waits for the listener)
        return process

    def signal(self, node: NodeT, signum: int) -> None:
        assert node.process is not None
        node.process.signal(signum)

    def kill(self, node: NodeT) -> None:
        """SIGKILL and reap."""
        self.signal(node, signal.SIGKILL)
        assert node.process is not None
        node.process.wait(30)

    def stop(self) -> None:
        """Stop every node still running: SIGCONT (it may be stopped), then SIGKILL."""
        for node in self.nodes:
            if node.running:
                assert node.process is not None
                node.process.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Reading the election through the API.

    def status(self, node: NodeT, timeout: float = 1.0) -> Status | None:
        """The node's ``GET /api/v1/cluster``, or None when it does not answer in time."""
        if not node.running:
            return None
        assert node.process is not None
        try:
            port = node.process.port
        except (RuntimeError, TimeoutError):
            return None
        return fetch_cluster_status(port, self.admin_token(node), timeout)

    def leaders(self, among: list[NodeT] | None = None, timeout: float = 1.0) -> list[NodeT]:
        """The nodes (of ``among``, default all running) that now say they lead."""
        candidates = among if among is not None else [n for n in self.nodes if n.running]
        found = []
        for node in candidates:
            status = self.status(node, timeout)
            if status is not None and status.get("is_leader"):
                found.append(node)
        return found

    def sole_leader(self, among: list[NodeT] | None = None) -> NodeT | None:
        """The node of ``among`` (default: all running) that says it leads, if only one does."""
        found = self.leaders(among)
        return found[0] if len(found) == 1 else None

    def agreed_leader(self, among: list[NodeT] | None = None) -> NodeT | None:
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

    def wait_for_leader(self, among: list[NodeT] | None = None, timeout: float = 30.0) -> NodeT:
        """Wait until :meth:`current_leader` finds one among ``among``; return it."""
        leader: NodeT = wait_until(
            lambda: self.current_leader(among), timeout, self.leader_wanted, interval=0.02
        )
        return leader

    def term(self, node: NodeT) -> int:
        status = self.status(node)
        if status is None:
            raise RuntimeError(f"{node.node_id} does not answer")
        term: int = status["term"]
        return term
