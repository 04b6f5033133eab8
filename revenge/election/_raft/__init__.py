"""
The ``raft`` election provider: Raft among a static list of nodes, with pysyncobj.

Only the election part of Raft is used; nothing is replicated. See
docs/deployment/raft-clustering.md for operators; this is for readers of the
code. The modules:

- ``_election``: :class:`RaftElection`, the reactor's side;
- ``_transport``: pysyncobj's TCP transport with this provider's additions
  (everything below marked *tick thread*);
- ``_syncobj``: pysyncobj's SyncObj with the few of its insides we touch;
- ``_guard``: the raft port against strangers;
- ``_snapshot``: the log's snapshot as JSON instead of a pickle;
- ``_bridge``: where the two threads meet; ``_tuning``: timings and limits.

Threads
    pysyncobj runs Raft on its own thread (the "tick thread": network I/O and
    timers). Nothing on that thread touches reactor state. It talks to the
    reactor in three ways only: it publishes an immutable view of its state
    after every tick and state change (one attribute assignment, read by the
    reactor); when something a subscriber cares about changed it wakes the
    reactor with ``reactor.callFromThread``, and its log lines travel the same
    way; the reactor hands it work (the leadership transfer on stop) through
    a queue that it drains on every tick. The reactor also re-checks the view
    every ``watch_interval``: leadership can lapse by time alone.

Leadership only with quorum: a lease from send times
    pysyncobj lets a leader that lost its followers believe it leads for
    ``leaderFallbackTimeout`` (30 s by default), and a paused leader wakes up
    believing it. Here every heartbeat carries the leader's monotonic send
    time and term; a follower echoes both in its answer. ``is_leader()`` is
    true while the newest heartbeat that a majority (this node included)
    answered was *sent* less than ``election_timeout_min`` ago, checked with
    the clock at call time, so answers that waited in a socket buffer while
    the process was stopped renew nothing.

The lease and Raft agree
    A leader whose links are slow (acks late) used to lose its lease while
    staying Raft leader and heartbeating, so the followers never elected:
    no leader at all for as long as the links stayed slow. An answer that
    comes back more than half the lease after its heartbeat was sent is now
    dropped as if it never arrived; pysyncobj's own fallback (set to the
    lease) then makes the leader step down within one election timeout, its
    heartbeats stop, and a node with better links is elected. A node that
    just lost leadership waits ``lease_loss_backoff`` before standing again.

Pre-vote and a sticky leader
    pysyncobj has no pre-vote: a node cut off from the others raised its term
    with every election timeout, and on the heal its vote requests deposed a
    healthy leader (a new fencing term each time). Before pysyncobj may start
    an election, this node now asks its peers whether they would vote for it
    in the next term (``revenge.prevote``); nothing is stored and no term is
    spent. A peer says yes only when the candidate's log is as new as its own
    and it knows no live leader (connected to it and heard from within the
    election timeout, or, for the leader itself, holding its lease). Only a
    majority of yeses lets pysyncobj's election start. A vote request that
    would depose a live leader is dropped, unless the leader asked for the
    election (TimeoutNow: the request then says so). A node whose term did
    grow while cut off answers the leader's lower-term heartbeats with its
    term, and the leader steps down so that it can rejoin (once).

Faster failover when the leader's process dies
    When the connection to the leader closes (its process exited: the kernel
    closed its sockets), the survivors do not wait out their election
    timeouts. They rank themselves by address among the peers they are still
    connected to; the first asks for pre-votes at once, the others only
    ``takeover_step`` seconds per rank later. Peers that lost the leader's
    connection too grant it. A leader that vanishes without closing its
    connections (host lost, partition, paused process) is replaced through
    the ordinary election timeout.

Stepping down on stop, and when this node cannot do the work
    A stopping leader first stops calling itself leader, then sends Raft's
    TimeoutNow (pysyncobj's ``transferLeadership``) to its most up-to-date
    follower; it stays a voter until it sees the successor's heartbeat (or
    ``handoff_timeout``). A leader told that it cannot do the leader's work
    (``set_eligible(False)``: its database is unreachable) sends TimeoutNow to
    a connected peer whose hellos say it can, every ``handover_retry``, and
    keeps leading when there is none. A node in that state does not stand for
    election unless no leader has been known for ``ineligible_campaign_delay``.

Warm links and node ids
    pysyncobj drops a connection on which nothing arrived for
    ``connectionTimeout`` and notices only when it next sends. Every node
    sends a small hello (its node id, whether it can lead) to every
    connected peer every ``keepalive_interval``.

Ticks out of step
    Followers woken by the same heartbeat would tick in step and split their
    votes; every tick waits a random time instead.

A tick that fails
    An exception in pysyncobj's tick used to skip its network poll and repeat
    on every tick, 60-90 tracebacks a second, for ever. Every tick is now
    guarded (``_syncobj``): the failure is logged once (then once a minute),
    the poll still happens, and after ``tick_failure_limit`` of failing ticks
    the node steps down for real (pysyncobj is stopped, which closes its
    connections), ``/readyz`` names the failure, and raft is started again
    after ``restart_delay`` (doubling while it keeps failing).

Log compaction
    pysyncobj's compaction pickled its own instance state, threads included,
    and failed on every tick from the first compaction (300 s) on. The log is
    compacted into JSON instead (``_snapshot``), which never fails on state
    and never unpickles what a peer sends.

Strangers
    The port bounds every frame before it is buffered, closes connections
    that did not authenticate within ``auth_timeout``, caps unproven
    connections per address, and counts and logs failed authentications
    (``_guard``). ``raft.secret`` must be long and random (revenge.config).

Names that do not resolve yet
    Peer host names are resolved on the reactor's thread pool, never on the
    tick thread, again every ``resolve_interval``; until a name resolves its
    node is simply not connected.

Durable term and vote
    pysyncobj's journal keeps the current term and vote in ``raft.data_dir``:
    without them a node that restarts mid-election could vote twice in one
    term.
"""

from revenge.election._raft._election import (
    RaftBroken,
    RaftElection,
    RaftSetupError,
    TermSource,
    create_raft_election,
    resolve_host,
)
from revenge.election._raft._tuning import RaftTuning

__all__ = [
    "RaftBroken",
    "RaftElection",
    "RaftSetupError",
    "RaftTuning",
    "TermSource",
    "create_raft_election",
    "resolve_host",
]
