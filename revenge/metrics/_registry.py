"""
Every metric of docs/design.md ("Metrics"), in one registry per server.

A registry per :class:`Metrics` instance (not prometheus_client's global one)
lets tests build as many servers in one process as they like.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "revenge_"

# Seconds; spans fast health checks up to slow uploads.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The server's metrics; attributes are the prometheus_client collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests_total = Counter(
            PREFIX + "http_requests_total",
            "HTTP requests served, by route template (never the raw path).",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration_seconds = Histogram(
            PREFIX + "http_request_duration_seconds",
            "Time from a request's arrival to its response's end.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.storage_operations_total = Counter(
            PREFIX + "storage_operations_total",
            "Storage provider calls by backend, operation and result.",
            ["backend", "op", "result"],
            registry=r,
        )
        self.storage_operation_duration_seconds = Histogram(
            PREFIX + "storage_operation_duration_seconds",
            "Duration of storage provider calls.",
            ["backend", "op"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.election_is_leader = Gauge(
            PREFIX + "election_is_leader", "1 while this node is the leader.", registry=r
        )
        self.election_term = Gauge(
            PREFIX + "election_term", "The current fencing term seen by this node.", registry=r
        )
        self.election_has_quorum = Gauge(
            PREFIX + "election_has_quorum",
            "1 while this node sees a quorum (always 1 for standalone).",
            registry=r,
        )
        self.election_eligible = Gauge(
            PREFIX + "election_eligible",
            "1 while this node can do the leader's work (its database and storage answer); "
            "a node at 0 hands leadership over and does not seek it.",
            registry=r,
        )
        self.election_leader_changes_total = Counter(
            PREFIX + "election_leader_changes_total",
            "Changes of leader seen by this node.",
            registry=r,
        )
        self.job_runs_total = Counter(
            PREFIX + "job_runs_total",
            "Job ticks by outcome: success, error, skipped_not_leader, "
            "skipped_already_ran, fenced.",
            ["job", "result"],
            registry=r,
        )
        self.job_duration_seconds = Histogram(
            PREFIX + "job_duration_seconds",
            "Duration of job runs on this node.",
            ["job"],
            registry=r,
        )
        self.job_last_success_timestamp_seconds = Gauge(
            PREFIX + "job_last_success_timestamp_seconds",
            "Unix time of the last successful run of each job on this node.",
            ["job"],
            registry=r,
        )
        self.media_bytes_sent_total = Counter(
            PREFIX + "media_bytes_sent_total",
            "Bytes of media files handed to clients' connections, by library.",
            ["library"],
            registry=r,
        )
        self.media_streams_active = Gauge(
            PREFIX + "media_streams_active",
            "Media file bodies being sent right now, by library.",
            ["library"],
            registry=r,
        )
        self.activity_rows_deleted_total = Counter(
            PREFIX + "activity_rows_deleted_total",
            "Activity log rows deleted by the retention job.",
            registry=r,
        )
