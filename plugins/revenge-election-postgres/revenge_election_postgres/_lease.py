"""
The lease row and the statements that move it. Everything here blocks: the
provider runs it on its own worker thread, never on the reactor's.

One row (``name = 'leader'``) in the lease table::

    name        text primary key
    term        bigint     -- the fencing token: +1 on every acquisition
    holder      text       -- node id of the holder (kept after release, for people)
    instance    text       -- random id of the holding process; NULL once released
    acquired_at timestamptz
    renewed_at  timestamptz
    expires_at  timestamptz -- by the database's clock

Every time comparison uses the database's ``now()``, so the nodes' clocks do
not matter. ``instance`` rather than ``holder`` decides who holds the lease:
a node restarted under the same node id is a new process that must wait for
its predecessor's lease like anyone else, and two nodes misconfigured with
one node id cannot both renew one lease.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

ROW_NAME = "leader"

# Serialises table creation across nodes: CREATE TABLE IF NOT EXISTS is not
# safe against itself (two creators can collide in the catalog).
_CREATE_LOCK_PREFIX = "revenge_election_postgres:"

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    name text PRIMARY KEY,
    term bigint NOT NULL DEFAULT 0,
    holder text,
    instance text,
    acquired_at timestamptz,
    renewed_at timestamptz,
    expires_at timestamptz
)
"""

_INSERT_ROW = "INSERT INTO {table} (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING"

# Renew our own lease, or take one that is free or expired. Renewing a lease
# of ours that is still current keeps the term; anything else is a new
# acquisition and takes the next term. Under READ COMMITTED, of two nodes
# that race for an expired lease the second re-checks the WHERE clause
# against the first one's row once it commits, and matches nothing.
_CLAIM = """
UPDATE {table} SET
    term = CASE WHEN instance = %(instance)s AND expires_at > now()
                THEN term ELSE term + 1 END,
    acquired_at = CASE WHEN instance = %(instance)s AND expires_at > now()
                       THEN acquired_at ELSE now() END,
    holder = %(holder)s,
    instance = %(instance)s,
    renewed_at = now(),
    expires_at = now() + make_interval(secs => %(lease)s)
WHERE name = %(name)s
  AND (instance = %(instance)s OR expires_at IS NULL OR expires_at <= now())
RETURNING term
"""

_READ = """
SELECT holder, term, expires_at > now(),
       greatest(extract(epoch FROM expires_at - now()), 0)::float8
FROM {table} WHERE name = %(name)s
"""

_RELEASE = """
UPDATE {table} SET expires_at = now(), instance = NULL
WHERE name = %(name)s AND instance = %(instance)s
RETURNING term
"""


@dataclass(frozen=True)
class LeaseView:
    """The lease row as one statement saw it."""

    holder: str | None
    term: int
    # Whether the lease had not expired, by the database's clock.
    current: bool
    # Seconds the lease had left (0 when not current).
    remaining: float


class LeaseTable:
    """The statements on one lease table; the caller owns the connection (autocommit)."""

    def __init__(self, table: str) -> None:
        self.table = table
        # LISTEN/NOTIFY channel: changes of the lease are announced on it.
        self.channel = table
        identifier = sql.Identifier(table)
        self._create = sql.SQL(_CREATE).format(table=identifier)
        self._insert_row = sql.SQL(_INSERT_ROW).format(table=identifier)
        self._claim = sql.SQL(_CLAIM).format(table=identifier)
        self._read = sql.SQL(_READ).format(table=identifier)
        self._release = sql.SQL(_RELEASE).format(table=identifier)
        self.listen = sql.SQL("LISTEN {channel}").format(channel=sql.Identifier(table))

    def create(self, connection: psycopg.Connection[TupleRow]) -> None:
        """Create the table and its row when missing."""
        with connection.transaction():
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (_CREATE_LOCK_PREFIX + self.table,),
            )
            connection.execute(self._create)
            connection.execute(self._insert_row, {"name": ROW_NAME})

    def claim(
        self,
        connection: psycopg.Connection[TupleRow],
        holder: str,
        instance: str,
        lease: float,
    ) -> int | None:
        """Renew or take the lease for ``lease`` seconds; its term, or None when another holds it."""
        row = connection.execute(
            self._claim,
            {"name": ROW_NAME, "holder": holder, "instance": instance, "lease": lease},
        ).fetchone()
        return None if row is None else _integer(row[0])

    def read(self, connection: psycopg.Connection[TupleRow]) -> LeaseView:
        row = connection.execute(self._read, {"name": ROW_NAME}).fetchone()
        if row is None:
            return LeaseView(None, 0, False, 0.0)
        holder, term, current, remaining = row
        return LeaseView(
            holder if isinstance(holder, str) else None,
            _integer(term),
            current is True,
            float(remaining) if isinstance(remaining, float) else 0.0,
        )

    def release(
        self, connection: psycopg.Connection[TupleRow], instance: str
    ) -> int | None:
        """
        End the lease ``instance`` holds and tell the others at once; the
        released term, or None when it held none.
        """
        with connection.transaction():
            row = connection.execute(
                self._release, {"name": ROW_NAME, "instance": instance}
            ).fetchone()
            if row is None:
                return None
            self.announce(connection, instance)
        return _integer(row[0])

    def announce(self, connection: psycopg.Connection[TupleRow], instance: str) -> None:
        """Wake the listeners of the channel (delivered when the transaction commits)."""
        connection.execute("SELECT pg_notify(%s, %s)", (self.channel, instance))


def _integer(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer term from the database, got {value!r}")
    return value
