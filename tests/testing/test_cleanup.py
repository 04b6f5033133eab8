"""
The network-fault helpers leave nothing behind: their nft tables and
cgroups go on close, and what a test process that died left behind is
removed by the next one. And a :class:`ServerProcess` given a cgroup's
command prefix really runs inside that cgroup.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from revenge.testing import (
    FaultyNetwork,
    LoopbackFirewall,
    NodeCgroups,
    ServerProcess,
    free_raft_addresses,
    wait_until,
)
from revenge.testing._netfaults import cgroup2_mount


def tables() -> set[str]:
    listed = subprocess.run(["nft", "list", "tables", "inet"], capture_output=True, text=True, check=True)
    return {line.split()[2] for line in listed.stdout.splitlines() if line.startswith("table inet ")}


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait(10)
    return process.pid


def test_close_removes_the_tables_and_the_cgroups(netfaults: None) -> None:
    network = FaultyNetwork(delays=True)
    assert network.proxy is not None
    address = free_raft_addresses(1)[0]

    class Node:  # The two attributes FaultyNetwork reads from a RaftNode.
        node_id = "node-0"
        raft_address = address

    network.add(Node())  # type: ignore[arg-type]
    made = {network.firewall.table, network.proxy.table}
    parent = network.cgroups.parent
    assert made <= tables()
    assert (parent / "node-0" / "cgroup.procs").exists()
    assert network.command_prefix(Node())[-1] == str(parent / "node-0")  # type: ignore[arg-type]

    network.close()
    assert not made & tables()
    assert not parent.exists()


def test_what_a_dead_test_process_left_is_removed(netfaults: None) -> None:
    pid = dead_pid()
    stale_table = f"revenge_faults_{pid}_0"
    ours_table = "revenge_faults_1_0"  # pid 1 is alive: not stale, kept.
    subprocess.run(["nft", "add", "table", "inet", stale_table], check=True)
    subprocess.run(["nft", "add", "table", "inet", ours_table], check=True)
    mount = cgroup2_mount()
    assert mount is not None
    stale_cgroup = mount / f"revenge-test-{pid}-0"
    (stale_cgroup / "node-0").mkdir(parents=True)
    try:
        with LoopbackFirewall() as firewall, NodeCgroups() as cgroups:
            found = tables()
            assert stale_table not in found
            assert {ours_table, firewall.table} <= found
            assert not stale_cgroup.exists()
            assert cgroups.parent.exists()
    finally:
        subprocess.run(["nft", "delete", "table", "inet", ours_table], check=False)
        for path in (stale_cgroup / "node-0", stale_cgroup):
            if path.exists():
                path.rmdir()


def test_a_server_process_runs_inside_its_cgroup(cgroups: NodeCgroups, tmp_path: Path) -> None:
    cgroup = cgroups.add("server")
    with ServerProcess(tmp_path, command_prefix=cgroup.command_prefix) as server:
        server.port  # noqa: B018 (waits for the listener)
        assert server.process is not None
        # The wrapper exec'd twistd: the same pid, inside the cgroup.
        assert cgroup.pids() == [server.process.pid]
        assert server.command[: len(cgroup.command_prefix)] == cgroup.command_prefix
    wait_until(lambda: cgroup.pids() == [], 5, "the cgroup to be empty")
    assert cgroups.close() == []
