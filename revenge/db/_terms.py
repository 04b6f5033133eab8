"""
Election terms: monotonic counters in ``election_terms`` that election
backends draw fencing tokens from (docs/design.md, "Periodic jobs").
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from revenge.db._schema import election_terms
from revenge.db._types import utc_now


def advance_term(connection: Connection, name: str, holder: str) -> int:
    """
    Increment the counter ``name`` (creating it at 0 first) and record
    ``holder`` as the node that took the new term; returns the new term.
    Atomic: concurrent callers on any node each get a different, higher term.
    """
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(
        insert(election_terms)
        .values(name=name, term=0, holder=None, updated_at=None)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    new_term = connection.execute(
        update(election_terms)
        .where(election_terms.c.name == name)
        .values(term=election_terms.c.term + 1, holder=holder, updated_at=utc_now())
        .returning(election_terms.c.term)
    ).scalar_one()
    return int(new_term)


def read_term(connection: Connection, name: str) -> int:
    """The counter's current value, 0 when it was never advanced."""
    term = connection.execute(
        select(election_terms.c.term).where(election_terms.c.name == name)
    ).scalar_one_or_none()
    return 0 if term is None else int(term)
