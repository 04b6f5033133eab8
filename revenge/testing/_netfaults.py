"""
Real packet loss between real processes on loopback, for tests and benchmarks.

On loopback every packet has source 127.0.0.1, so addresses cannot tell two
node processes apart; cgroups can. Each node runs in its own cgroup v2
(:class:`NodeCgroups`), and :class:`LoopbackFirewall` owns one nftables
table whose output chain marks every new connection with the mark of the
cgroup that opened it. Conntrack keeps that mark for both directions of the
connection, so the input chain can drop exactly the packets one node sends
or receives. Drops happen on input, not output: a drop on output makes
``connect()`` fail at once with EPERM, which no real partition does; a drop
on input leaves the sender retransmitting into silence, as a cut cable would.

Every fault change rewrites the fault chain in one ``nft -f -`` batch, so a
cut and a heal are atomic and take a few milliseconds.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

Direction = Literal["both", "out", "in"]

# nft resolves ``socket cgroupv2`` paths relative to this directory.
_NFT_CGROUP_BASE = Path("/sys/fs/cgroup")
# Our tables and cgroups carry the creating pid, so that a later run can
# delete what a test process that died left behind.
_TABLE_PREFIX = "revenge_faults"
_TABLE_RE = re.compile(rf"^{_TABLE_PREFIX}_(\d+)_(\d+)$")
_CGROUP_PREFIX = "revenge-test"
_CGROUP_RE = re.compile(rf"^{_CGROUP_PREFIX}-(\d+)-(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NFT_TIMEOUT_S = 10.0
# Puts the shell in the cgroup, then becomes the command (same pid, so
# signals sent to the process reach the command itself).
_ENTER_CGROUP = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'

_counter = itertools.count()
_counter_lock = threading.Lock()


def _unique_suffix() -> str:
    with _counter_lock:
        return f"{os.getpid()}_{next(_counter)}"


class NftError(RuntimeError):
    """``nft`` refused a change; the message carries its stderr."""


def run_nft(script: str) -> str:
    """Run ``script`` as one atomic ``nft -f -`` batch; its stdout."""
    done = subprocess.run(
        ["nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=_NFT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise NftError(f"nft failed ({done.returncode}): {done.stderr.strip()}\nscript:\n{script}")
    return done.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cgroup2_mount() -> Path | None:
    """Where cgroup v2 is mounted (``/sys/fs/cgroup`` or ``.../unified``), if anywhere."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    rows = (line.split() for line in lines)
    mounts = [Path(fields[1]) for fields in rows if fields[2:3] == ["cgroup2"]]
    # Prefer one nft can address (under /sys/fs/cgroup), the shallowest.
    mounts.sort(key=lambda p: (not p.is_relative_to(_NFT_CGROUP_BASE), len(p.parts)))
    return mounts[0] if mounts else None


def _mount_root_depth(mount: Path) -> int:
    """How deep the mounted directory sits in the hierarchy (a bind mount of a subtree)."""
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4 and Path(fields[4]) == mount and " - cgroup2 " in line:
                return len(Path(fields[3]).parts) - 1
    except OSError:
        pass
    return 0


def _probe() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"network faults need Linux (nftables, cgroup v2), not {sys.platform}"
    if os.geteuid() != 0:
        return f"network faults need root (nft, cgroups); running as uid {os.geteuid()}"
    if shutil.which("nft") is None:
        return "nft is not installed (apt-get install nftables)"
    mount = cgroup2_mount()
    if mount is None:
        return "no cgroup v2 mount in /proc/mounts"
    if not mount.is_relative_to(_NFT_CGROUP_BASE):
        return f"cgroup v2 is mounted at {mount}, outside {_NFT_CGROUP_BASE} (where nft finds cgroups)"
    try:
        cgroups = NodeCgroups()
    except OSError as error:
        return f"cannot create a cgroup under {mount}: {error}"
    table = f"{_TABLE_PREFIX}_{_unique_suffix()}"
    try:
        probe = cgroups.add("probe")
        run_nft(
            f"add table inet {table}\n"
            f"add chain inet {table} marking {{ type filter hook output priority mangle; }}\n"
            f"add chain inet {table} faults {{ type filter hook input priority filter; }}\n"
            f"add chain inet {table} redirects {{ type nat hook output priority -100; }}\n"
            f"add rule inet {table} marking ct state new {probe.nft_match} ct mark set 1\n"
            f"add rule inet {table} faults ct mark 1 meta l4proto tcp ct original proto-dst 9 "
            "ct direction reply drop\n"
            f"add rule inet {table} redirects {probe.nft_match} tcp dport 9 redirect to :9\n"
            f"delete table inet {table}\n"
        )
    except (NftError, OSError, subprocess.TimeoutExpired) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        return f"the kernel refused the nftables rules network faults need: {first}"
    finally:
        cgroups.close()
    return None


@functools.cache
def network_faults_unavailable() -> str | None:
    """
    None when this machine can inject network faults (root, ``nft``, a
    writable cgroup v2 mount nft can address, and a kernel that accepts the
    rules, checked once with a throwaway table); else a one-line reason
    for ``pytest.skip``.
    """
    return _probe()


@dataclass(frozen=True)
class NodeCgroup:
    """One node's cgroup: where it is, how nft names it, and how to start a command in it."""

    name: str
    path: Path
    nft_path: str
    level: int

    @property
    def nft_match(self) -> str:
        """The nft expression matching sockets created by processes in this cgroup."""
        return f'socket cgroupv2 level {self.level} "{self.nft_path}"'

    @property
    def command_prefix(self) -> list[str]:
        """Put in front of a command, makes it run in this cgroup (no preexec_fn needed)."""
        return ["sh", "-c", _ENTER_CGROUP, "sh", str(self.path)]

    def wrap(self, command: Sequence[str]) -> list[str]:
        """``command`` started inside this cgroup, with the same pid as the wrapper."""
        return [*self.command_prefix, *command]

    def pids(self) -> list[int]:
        """The processes now in this cgroup."""
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []


def _remove_cgroup(path: Path, timeout: float) -> bool:
    """rmdir a cgroup, waiting up to ``timeout`` for processes that are just exiting; done?"""
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() >= deadline:
                return False
        # A reaped process can take a moment to leave its cgroup.
        time.sleep(0.01)


class NodeCgroups:
    """
    One parent cgroup per instance (``revenge-test-<pid>-<n>`` at the top of
    the cgroup v2 mount), one child per node. Closing removes them; their
    processes must have exited by then (leftovers are reported with a
    warning and removed by a later run once this pid is gone).
    """

    def __init__(self) -> None:
        mount = cgroup2_mount()
        if mount is None:
            raise OSError(errno.ENOENT, "no cgroup v2 mount in /proc/mounts")
        self.mount = mount
        self._base_level = _mount_root_depth(mount)
        remove_stale_cgroups(mount)
        self.parent = mount / f"{_CGROUP_PREFIX}-{_unique_suffix().replace('_', '-')}"
        self.parent.mkdir()
        self._children: dict[str, NodeCgroup] = {}
        self._closed = False

    def add(self, name: str) -> NodeCgroup:
        """A new child cgroup for node ``name`` (letters, digits, ``_.-``)."""
        if not _NAME_RE.match(name):
            raise ValueError(f"not a usable cgroup name: {name!r}")
        if name in self._children:
            raise ValueError(f"{name!r} already has a cgroup")
        path = self.parent / name
        path.mkdir()
        relative = path.relative_to(self.mount)
        cgroup = NodeCgroup(
            name=name,
            path=path,
            nft_path=str(path.relative_to(_NFT_CGROUP_BASE)),
            level=self._base_level + len(relative.parts),
        )
        self._children[name] = cgroup
        return cgroup

    def __getitem__(self, name: str) -> NodeCgroup:
        return self._children[name]

    def __iter__(self) -> Iterator[NodeCgroup]:
        return iter(list(self._children.values()))

    def close(self, timeout: float = 2.0) -> list[Path]:
        """Remove every cgroup; the ones still busy (processes left in them)."""
        if self._closed:
            return []
        self._closed = True
        leftovers = [c.path for c in self._children.values() if not _remove_cgroup(c.path, timeout)]
        if not leftovers and not _remove_cgroup(self.parent, timeout):
            leftovers.append(self.parent)
        if leftovers:
            warnings.warn(
                f"cgroups still in use, left for a later run to remove: {leftovers}",
                ResourceWarning,
                stacklevel=2,
            )
        return leftovers

    def __enter__(self) -> NodeCgroups:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def remove_stale_cgroups(mount: Path | None = None) -> None:
    """Remove the empty ``revenge-test-<pid>-*`` cgroups of processes that no longer exist."""
    mount = mount if mount is not None else cgroup2_mount()
    if mount is None:
        return
    try:
        entries = list(mount.iterdir())
    except OSError:
        return
    for entry in entries:
        found = _CGROUP_RE.match(entry.name)
        if found is None or _pid_alive(int(found.group(1))):
            continue
        try:
            children = [child for child in entry.iterdir() if child.is_dir()]
        except OSError:
            continue
        for child in children:
            _remove_cgroup(child, 0)
        _remove_cgroup(entry, 0)


def remove_stale_tables() -> None:
    """Delete the ``revenge_faults_<pid>_*`` nft tables of processes that no longer exist."""
    listed = subprocess.run(
        ["nft", "list", "tables", "inet"],
        capture_output=True,
        text=True,
        timeout=_NFT_TIMEOUT_S,
        check=False,
    )
    stale = []
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[:2] == ["table", "inet"]:
            found = _TABLE_RE.match(fields[2])
            if found is not None and not _pid_alive(int(found.group(1))):
                stale.append(fields[2])
    for table in stale:
        try:
            run_nft(f"delete table inet {table}\n")
        except NftError:
            pass  # Another run removed it first.


def new_table_name() -> str:
    """A table name of our own (``rt`` and friends are nft keywords)."""
    return f"{_TABLE_PREFIX}_{_unique_suffix()}"


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` as (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not a host:port address: {address!r}")
    return host, int(port)


def ipv4_or_none(host: str | None) -> str | None:
    """``host`` when it is an IPv4 literal nft can match, else None (match the port only)."""
    if host is None:
        return None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


@dataclass(frozen=True)
class FirewallNode:
    """A registered node: its cgroup, the mark its connections carry, its raft listener."""

    name: str
    cgroup: NodeCgroup
    mark: int
    raft_host: str | None
    raft_port: int | None


@dataclass(frozen=True)
class Fault:
    """One active fault, as :meth:`LoopbackFirewall.faults` lists it."""

    kind: Literal["raft", "port"]
    node: str
    peers: tuple[str, ...] = ()
    direction: Direction = "both"
    port: int | None = None
    host: str | None = None

    def __str__(self) -> str:
        if self.kind == "port":
            return f"{self.node} cut from {self.host or '*'}:{self.port}"
        arrow = {"both": "<-x->", "out": "-x->", "in": "<-x-"}[self.direction]
        return f"raft {self.node} {arrow} {','.join(self.peers)} ({self.direction})"


class LoopbackFirewall:
    """
    One nft table of our own (inet family): an output chain that marks new
    connections by the cgroup of the node that opens them, and an input chain
    holding the current faults. Register every node before it starts (only
    new connections are marked), then cut and heal at will.
    """

    def __init__(self) -> None:
        remove_stale_tables()
        self.table = new_table_name()
        # Marks unique to this table, so that two firewalls side by side never
        # drop each other's traffic.
        self._mark_base = 0x52000000 | (zlib.crc32(self.table.encode()) & 0xFFFF) << 8
        self._nodes: dict[str, FirewallNode] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._closed = False
        run_nft(
            f"add table inet {self.table}\n"
            f"add chain inet {self.table} marking {{ type filter hook output priority mangle; }}\n"
            f"add chain inet {self.table} faults {{ type filter hook input priority filter; }}\n"
        )

    # Nodes.

    def register(self, name: str, cgroup: NodeCgroup, raft_address: str | None = None) -> int:
        """Mark the connections ``cgroup``'s processes open as ``name``'s; its mark."""
        with self._lock:
            if name in self._nodes:
                raise ValueError(f"{name!r} is already registered")
            if len(self._nodes) >= 0xFF:
                raise ValueError("too many nodes for one firewall")
            host, port = split_address(raft_address) if raft_address is not None else (None, None)
            mark = self._mark_base | (len(self._nodes) + 1)
            run_nft(
                f"add rule inet {self.table} marking ct state new {cgroup.nft_match} "
                f'ct mark set {mark:#x} comment "node {name}"\n'
            )
            self._nodes[name] = FirewallNode(name, cgroup, mark, host, port)
            return mark

    def node(self, name: str) -> FirewallNode:
        with self._lock:
            return self._node(name)

    def _node(self, name: str) -> FirewallNode:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"{name!r} is not registered with this firewall") from None

    @property
    def nodes(self) -> list[str]:
        with self._lock:
            return list(self._nodes)

    # Faults.

    def cut_raft(
        self, node: str, peers: Iterable[str] | None = None, direction: Direction = "both"
    ) -> Fault:
        """
        Drop raft traffic between ``node`` and ``peers`` (default: every other
        registered node): ``out`` the packets ``node`` sends, ``in`` the ones
        it receives, ``both`` all of them; on connections either side opened.
        """
        if direction not in ("both", "out", "in"):
            raise ValueError(f"direction must be both, out or in, not {direction!r}")
        with self._lock:
            subject = self._node(node)
            if peers is None:
                names = [n for n, p in self._nodes.items() if n != node and p.raft_port is not None]
            else:
                names = list(peers)
            for name in names:
                peer = self._node(name)
                if peer.raft_port is None or name == node:
                    raise ValueError(f"{name!r} has no raft port (or is {node!r} itself)")
            if subject.raft_port is None:
                raise ValueError(f"{node!r} has no raft port")
            fault = Fault("raft", node, tuple(names), direction)
            return self._add(fault)

    def cut_port(self, node: str, port: int, host: str | None = None) -> Fault:
        """
        Drop every packet, both ways, of the connections ``node`` opens to TCP
        ``port`` on ``host`` (an IPv4 literal; default any address).
        """
        if host is not None and ipv4_or_none(host) is None:
            raise ValueError(f"host must be an IPv4 address, not {host!r}")
        with self._lock:
            self._node(node)
            return self._add(Fault("port", node, port=port, host=host))

    def heal(self, node: str | None = None) -> None:
        """Remove every fault, or those made for ``node`` (its cuts, not the ones naming it a peer)."""
        with self._lock:
            self._faults = [f for f in self._faults if node is not None and f.node != node]
            self._apply()

    def faults(self) -> list[Fault]:
        """The active faults, oldest first."""
        with self._lock:
            return list(self._faults)

    def ruleset(self) -> str:
        """The table as nft lists it (for a failure message)."""
        listed = subprocess.run(
            ["nft", "list", "table", "inet", self.table],
            capture_output=True,
            text=True,
            timeout=_NFT_TIMEOUT_S,
            check=False,
        )
        return listed.stdout or listed.stderr

    def _add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        try:
            self._apply()
        except NftError:
            self._faults.remove(fault)
            raise
        return fault

    def _apply(self) -> None:
        """Replace the fault chain's rules in one batch: all of the change or none of it."""
        if self._closed:
            raise RuntimeError("the firewall is closed")
        lines = [f"flush chain inet {self.table} faults"]
        for fault in self._faults:
            for match in self._matches(fault):
                lines.append(f'add rule inet {self.table} faults {match} drop comment "{fault}"')
        run_nft("\n".join(lines) + "\n")

    def _matches(self, fault: Fault) -> list[str]:
        subject = self._nodes[fault.node]
        if fault.kind == "port":
            assert fault.port is not None
            host = ipv4_or_none(fault.host)
            return [_connection(subject, host, fault.port, None)]
        matches = []
        for name in fault.peers:
            peer = self._nodes[name]
            assert subject.raft_port is not None and peer.raft_port is not None
            # What the subject sends: on its own connections the original
            # direction, on the peer's connections (to the subject's raft
            # port) the reply direction. What it receives: the opposite.
            sent: list[tuple[FirewallNode, FirewallNode, str | None]] = [
                (subject, peer, "original"),
                (peer, subject, "reply"),
            ]
            received: list[tuple[FirewallNode, FirewallNode, str | None]] = [
                (subject, peer, "reply"),
                (peer, subject, "original"),
            ]
            if fault.direction == "out":
                chosen = sent
            elif fault.direction == "in":
                chosen = received
            else:
                chosen = [(subject, peer, None), (peer, subject, None)]
            for opener, listener, way in chosen:
                assert listener.raft_port is not None
                host = ipv4_or_none(listener.raft_host)
                matches.append(_connection(opener, host, listener.raft_port, way))
        return matches

    # Lifetime.

    def close(self) -> None:
        """Delete the table (every mark and fault with it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            run_nft(f"delete table inet {self.table}\n")

    def __enter__(self) -> LoopbackFirewall:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _connection(opener: FirewallNode, host: str | None, port: int, direction: str | None) -> str:
    """Packets of connections ``opener`` opened to ``host:port`` (one direction, or both)."""
    parts = [f"ct mark {opener.mark:#x}", "meta l4proto tcp"]
    if host is not None:
        parts.append(f"ct original ip daddr {host}")
    parts.append(f"ct original proto-dst {port}")
    if direction is not None:
        parts.append(f"ct direction {direction}")
    return " ".join(parts)
