"""The raft provider's timings and limits, with the rules that relate them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RaftTuning:
    """
    Timings in seconds, sizes in bytes. The defaults come from the
    measurements in docs/deployment/raft-clustering.md; change them with care.
    """

    # pysyncobj's appendEntriesPeriod: how often the leader sends heartbeats.
    heartbeat_interval: float = 0.05
    # pysyncobj's raftMinTimeout/raftMaxTimeout: a follower that hears no
    # heartbeat for a random time in this range starts an election. The
    # minimum is also the leader's lease (see the package docstring).
    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.6
    # pysyncobj's connectionTimeout: a connection on which nothing arrived
    # for this long is closed.
    connection_timeout: float = 1.5
    # pysyncobj's connectionRetryTime: how often to retry an unreachable peer.
    reconnect_interval: float = 0.25
    # pysyncobj's autoTickPeriod: the tick thread wakes at least this often
    # (after a random wait between a quarter of it and all of it).
    tick_interval: float = 0.02
    # A hello to every connected peer this often keeps every link warm and
    # tells the peers whether this node may lead.
    keepalive_interval: float = 0.25
    # Delay per rank before a survivor takes over from a leader whose
    # connection closed; None waits for the election timeout instead.
    takeover_step: float | None = 0.1
    # How long a stopping leader waits for its successor before leaving anyway.
    handoff_timeout: float = 1.0
    # How often peer host names are resolved again.
    resolve_interval: float = 2.0
    # How often the reactor re-checks the lease and the view.
    watch_interval: float = 0.1
    # pysyncobj's logCompactionMinTime: the raft log (one entry per
    # leadership) is compacted into raft.data_dir/snapshot.json this often.
    compaction_interval: float = 300.0
    # A connection to the raft port must prove it knows the secret (its first
    # frame decrypts) and name a peer within this time, or it is closed.
    auth_timeout: float = 3.0
    # The largest frame read from a connection that has proved nothing yet
    # (pysyncobj's key exchange is about 150 bytes), and from a peer.
    max_unauthenticated_frame: int = 4096
    max_frame: int = 1 << 20
    # Connections from one address (and from all) that have not proved
    # anything yet; beyond it the oldest of them is closed.
    max_pending_per_address: int = 16
    max_pending_total: int = 128
    # The tick thread failing without a break for this long makes the node
    # step down: raft is stopped and started again after restart_delay
    # (doubling up to restart_delay_max while it keeps failing).
    tick_failure_limit: float = 1.0
    restart_delay: float = 5.0
    restart_delay_max: float = 60.0
    # A node that cannot do the leader's work (set_eligible(False)) seeks
    # leadership only after this long without any leader; a leader in that
    # state offers leadership to an eligible peer this often.
    ineligible_campaign_delay: float = 3.0
    handover_retry: float = 1.0
    # A leader that lost its lease (see the package docstring) waits this long
    # before it seeks leadership again, so that a node with better links wins.
    lease_loss_backoff: float = 1.2

    @property
    def lease(self) -> float:
        """How long a majority's answer to a heartbeat keeps this node leader."""
        return self.election_timeout_min

    @property
    def slow_answer(self) -> float:
        """An answer that took longer than this to come back counts as none."""
        return self.election_timeout_min / 2

    def check(self) -> None:
        """Raise ValueError when pysyncobj would refuse these timings or they make no sense."""
        problems = []
        if not self.heartbeat_interval > 0:
            problems.append("heartbeat_interval must be positive")
        if not self.election_timeout_min > 3 * self.heartbeat_interval:
            problems.append("election_timeout_min must exceed 3 heartbeat intervals")
        if not self.election_timeout_max > self.election_timeout_min:
            problems.append("election_timeout_max must exceed election_timeout_min")
        if not self.connection_timeout >= self.election_timeout_max:
            problems.append("connection_timeout must be at least election_timeout_max")
        if not 0 < self.keepalive_interval < self.connection_timeout / 2:
            problems.append("keepalive_interval must be under half of connection_timeout")
        if self.takeover_step is not None and not self.takeover_step >= 0:
            problems.append("takeover_step must not be negative")
        for name in (
            "reconnect_interval", "tick_interval", "handoff_timeout", "resolve_interval",
            "watch_interval", "compaction_interval", "auth_timeout", "tick_failure_limit",
            "restart_delay", "ineligible_campaign_delay", "handover_retry",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive")
        if not self.restart_delay_max >= self.restart_delay:
            problems.append("restart_delay_max must be at least restart_delay")
        if not self.lease_loss_backoff >= 0:
            problems.append("lease_loss_backoff must not be negative")
        for name in ("max_unauthenticated_frame", "max_frame", "max_pending_per_address",
                     "max_pending_total"):
            if not getattr(self, name) >= 1:
                problems.append(f"{name} must be at least 1")
        if not self.max_frame >= self.max_unauthenticated_frame:
            problems.append("max_frame must be at least max_unauthenticated_frame")
        if problems:
            raise ValueError("; ".join(problems))
