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

Watching a cluster's leadership from outside (never two leaders at once):
:class:`LeaderWatch`.

Network faults between real processes on loopback (Linux, root, nftables,
cgroup v2; :func:`network_faults_unavailable` says why not):
:class:`FaultyNetwork` for a :class:`RaftCluster`, built from
:class:`NodeCgroups`, :class:`LoopbackFirewall` and :class:`DelayProxy`.
"""

from revenge.testing._database_cluster import ClusterNode, SharedDatabaseCluster
from revenge.testing._delay_proxy import DelayProxy
from revenge.testing._faulty_network import FaultyNetwork
from revenge.testing._leader_watch import LeaderWatch, Observation, Overlap
from revenge.testing._netfaults import (
    Fault,
    LoopbackFirewall,
    NftError,
    NodeCgroup,
    NodeCgroups,
    network_faults_unavailable,
)
from revenge.testing._postgres import PostgresServer
from revenge.testing._process import (
    ServerProcess,
    add_user_with_cli,
    fetch_cluster_status,
    hold,
    put_avatar,
    twistd_executable,
    wait_until,
    write_sample_media_library,
)
from revenge.testing._proxy import TcpProxy
from revenge.testing._raft_cluster import RaftCluster, RaftNode, free_raft_addresses
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

__all__ = [
    "ANSWER_TIMEOUT",
    "CONTINUE_LINE",
    "RAW_DEADLINE",
    "ClusterNode",
    "DelayProxy",
    "Fault",
    "FaultyNetwork",
    "LeaderWatch",
    "LoopbackFirewall",
    "NftError",
    "NodeCgroup",
    "NodeCgroups",
    "Observation",
    "Overlap",
    "PostgresServer",
    "RaftCluster",
    "RaftNode",
    "RawAnswer",
    "RawConnection",
    "ServerProcess",
    "SharedDatabaseCluster",
    "SocketAnswer",
    "SocketExchange",
    "TcpProxy",
    "add_user_with_cli",
    "answer_problems",
    "connect_raw",
    "error_body_problems",
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
    "twistd_executable",
    "wait_until",
    "write_sample_media_library",
]
