"""
The fencing token of leader-only jobs, and the fence that every job write
passes through (docs/jobs.md, "Fencing").

A node that becomes leader takes a new term from the database counter
``election_terms["leader"]`` (:func:`take_office`). The counter only grows and
lives in the database, so it keeps growing across leader changes and across a
restart of the whole cluster, whatever the election backend's own term does.

Every transaction a job writes in first passes the job's fence
(:func:`pass_fence`): it raises ``job_fences.term`` to the writer's term, or
finds it already higher and raises :class:`Fenced`, which rolls the whole
transaction back. A stale leader (paused, partitioned) therefore changes
nothing once a newer leader has touched the fence, and a newer leader touches
every fence as it takes office.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from revenge.db import advance_term, job_fences

# The name of the counter in ``election_terms`` that fencing terms come from.
LEADER_TERM_COUNTER = "leader"

# On PostgreSQL every fenced transaction bounds how long it can hold or wait
# for a lock (docs/jobs.md, "No lock held across a pause"):
# - a session that sits idle inside one for this long is ended by the server:
#   a leader stopped between two statements (SIGSTOP, a frozen VM, a network
#   cut) holds the fence row and its claim's row only this long, so its
#   successor waits at most about a second to take office;
IDLE_IN_FENCED_TRANSACTION_MS = 1000
# - a statement waits this long for a lock, then fails (and is retried): long
#   enough to outlast a frozen holder's idle timeout above;
FENCED_LOCK_TIMEOUT_MS = 2000
# - and no statement of a job runs longer than this.
FENCED_STATEMENT_TIMEOUT_MS = 30000


class Fenced(Exception):
    """A job's write was refused: a higher term has written for this job."""

    def __init__(self, job: str, term: int, fence_term: int | None = None) -> None:
        held = f"term {fence_term}" if fence_term is not None else "a higher term"
        super().__init__(f"job {job!r}: term {term} is fenced off by {held}")
        self.job = job
        self.term = term
        self.fence_term = fence_term


def bound_waits(connection: Connection) -> None:
    """The time bounds above, for the rest of this transaction (PostgreSQL only)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                "SELECT set_config('idle_in_transaction_session_timeout', :idle, true),"
                " set_config('lock_timeout', :lock, true),"
                " set_config('statement_timeout', :statement, true)"
            ),
            {
                "idle": str(IDLE_IN_FENCED_TRANSACTION_MS),
                "lock": str(FENCED_LOCK_TIMEOUT_MS),
                "statement": str(FENCED_STATEMENT_TIMEOUT_MS),
            },
        )


def _update_fence(connection: Connection, job: str, term: int) -> bool:
    # The UPDATE locks the row until commit: writers of one job are serialised
    # here, and one that waited re-reads the row a newer term may have raised.
    raised = connection.execute(
        update(job_fences)
        .where(job_fences.c.job == job, job_fences.c.term <= term)
        .values(term=term)
    )
    return bool(raised.rowcount == 1)


def _raise_fence(connection: Connection, job: str, term: int) -> bool:
    """Set the fence of ``job`` to ``term`` unless it is higher; False when it is."""
    if _update_fence(connection, job, term):
        return True
    # No row raised: a higher term holds it, or the job has no fence yet.
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    created = connection.execute(
        insert(job_fences)
        .values(job=job, term=term)
        .on_conflict_do_nothing(index_elements=["job"])
    )
    if created.rowcount == 1:
        return True
    # Someone created it meanwhile (we waited on their insert): try again.
    return _update_fence(connection, job, term)


def pass_fence(connection: Connection, job: str, term: int) -> None:
    """
    First statement of every job transaction: claim the fence of ``job`` for
    ``term``, or raise :class:`Fenced` (the caller lets it roll the transaction
    back). Holds the fence row's lock until the transaction ends.
    """
    bound_waits(connection)
    if not _raise_fence(connection, job, term):
        held = connection.execute(
            job_fences.select().where(job_fences.c.job == job)
        ).one_or_none()
        raise Fenced(job, term, None if held is None else int(held.term))


def take_office(connection: Connection, node_id: str, jobs: Iterable[str]) -> int:
    """
    Take a new fencing term for ``node_id`` and raise the fence of every job
    in ``jobs`` to it, in one transaction; returns the term. From the commit
    on, every write of an older term to these jobs is refused.
    """
    bound_waits(connection)
    term = advance_term(connection, LEADER_TERM_COUNTER, node_id)
    # Sorted: two nodes taking office at once lock the rows in the same order.
    for job in sorted(set(jobs)):
        _raise_fence(connection, job, term)
    return term
