"""
Helpers for testing Revenge and its providers against real processes.

The contract kits for provider authors are submodules that import pytest,
so that importing this package never needs the test extra:
:mod:`revenge.testing.storage_contract`, :mod:`revenge.testing.election_contract`
and the ``postgres_server`` fixture in :mod:`revenge.testing.postgres`
(docs/plugins.md).

Raw HTTP/1.1 for the edge's tests (bytes no HTTP client would send):
:class:`RawConnection`, :func:`connect_raw`, :func:`parse_response` in the
reactor; :func:`socket_exchange` and :func:`answer_problems` over a plain
socket, for live processes (tests/fuzz/test_raw_http_fuzz.py).

Waiting with a deadline, never a fixed sleep: :func:`eventually` on the
reactor, :func:`wait_until` blocking; :func:`hold` lets a set time pass.

A whole node in the test's process (``build_server``, loopback, a real
database, an admin): :func:`start_in_process_node` gives an
:class:`InProcessNode`.

Clusters of real nodes: :class:`ProcessCluster` (starting, stopping and
signalling them, asking who leads) under :class:`RaftCluster` (and
:class:`FixedPortCluster`, whose nodes keep their HTTP port across restarts)
and :class:`SharedDatabaseCluster`.

Log events as emitted, for a test to look at: :func:`captured_log_events`.

Watching a cluster's leadership from outside (never two leaders at once):
:class:`LeaderWatch`.

Network faults between real processes on loopback (Linux, root, nftables,
cgroup v2; :func:`network_faults_unavailable` says why not):
:class:`FaultyNetwork` for a :class:`RaftCluster`, built from
:class:`NodeCgroups`, :class:`LoopbackFirewall` and :class:`DelayProxy`.
"""

from revenge.testing._cluster import ClusterNode, ProcessCluster
from revenge.testing._database_cluster import SharedDatabaseCluster
from revenge.testing._delay_proxy import DelayProxy
from revenge.testing._faulty_network import FaultyNetwork
from revenge.testing._log_capture import captured_log_events
from revenge.testing._leader_watch import LeaderWatch, Observation, Overlap
from revenge.testing._netfaults import (
    Fault,
    LoopbackFirewall,
    NftError,
    NodeCgroup,
    NodeCgroups,
    network_faults_unavailable,
)
from revenge.testing._node import (
    TEST_NODE_ID,
    InProcessNode,
    Reply,
    start_in_process_node,
)
from revenge.testing._postgres import PostgresServer
from revenge.testing._process import (
    ServerProcess,
    add_user_with_cli,
    fetch_cluster_status,
    put_avatar,
    twistd_executable,
    write_sample_media_library,
)
from revenge.testing._proxy import TcpProxy
from revenge.testing._raft_cluster import (
    FixedPortCluster,
    RaftCluster,
    RaftNode,
    free_raft_addresses,
)
from revenge.testing._raw_http import (
    CONTINUE_LINE,
    RAW_DEADLINE,
    RawAnswer,
    RawConnection,
    connect_raw,
    has_full_response,
    parse_response,
)
from revenge.testing._raw_socket import (
    ANSWER_TIMEOUT,
    SocketAnswer,
    SocketExchange,
    answer_problems,
    error_body_problems,
    known_reason_phrases,
    request_id_of,
    show_bytes,
    show_exchange,
    socket_exchange,
)
from revenge.testing._waiting import eventually, hold, wait_until

__all__ = [
    "ANSWER_TIMEOUT",
    "CONTINUE_LINE",
    "RAW_DEADLINE",
    "TEST_NODE_ID",
    "ClusterNode",
    "DelayProxy",
    "Fault",
    "FaultyNetwork",
    "FixedPortCluster",
    "InProcessNode",
    "LeaderWatch",
    "LoopbackFirewall",
    "NftError",
    "NodeCgroup",
    "NodeCgroups",
    "Observation",
    "Overlap",
    "PostgresServer",
    "ProcessCluster",
    "RaftCluster",
    "RaftNode",
    "RawAnswer",
    "RawConnection",
    "Reply",
    "ServerProcess",
    "SharedDatabaseCluster",
    "SocketAnswer",
    "SocketExchange",
    "TcpProxy",
    "add_user_with_cli",
    "answer_problems",
    "captured_log_events",
    "connect_raw",
    "error_body_problems",
    "eventually",
    "fetch_cluster_status",
    "free_raft_addresses",
    "has_full_response",
    "hold",
    "known_reason_phrases",
    "network_faults_unavailable",
    "parse_response",
    "put_avatar",
    "request_id_of",
    "show_bytes",
    "show_exchange",
    "socket_exchange",
    "start_in_process_node",
    "twistd_executable",
    "wait_until",
    "write_sample_media_library",
]
