"""
The tables, as SQLAlchemy Core metadata for queries.

The migrations in ``revenge/db/migrations/versions`` create them; a test
compares the migrated database with this module, so the two cannot drift.
See docs/database.md for what each column means.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from revenge.db._types import BigIntegerKey, UtcDateTime

# Named constraints: SQLite can only alter a table by copying it (Alembic's
# batch mode), which needs every constraint to have a name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_NAME_MAX = 64
NODE_ID_MAX = 255
REQUEST_ID_MAX = 128
STORAGE_KEY_MAX = 1024
JOB_NAME_MAX = 64
# A run's reason is cut to fit.
REASON_MAX = 500

metadata = MetaData(naming_convention=NAMING_CONVENTION)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(USER_NAME_MAX), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    # The public half of the token, to find the row; the secret half is
    # stored only as its SHA-256 (see revenge/users/_tokens.py).
    Column("token_selector", String(32), nullable=False),
    Column("token_verifier_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("avatar_key", String(STORAGE_KEY_MAX), nullable=True),
    UniqueConstraint("name"),
    UniqueConstraint("token_selector"),
)

activity = Table(
    "activity",
    metadata,
    Column("id", BigIntegerKey, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    # A user name, or NULL for the command line and jobs.
    Column("actor", String(USER_NAME_MAX), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(STORAGE_KEY_MAX), nullable=True),
    Column("request_id", String(REQUEST_ID_MAX), nullable=True),
    Column("node_id", String(NODE_ID_MAX), nullable=False),
    Column("details", JSON, nullable=True),
    # Retention deletes by age.
    Index("ix_activity_created_at", "created_at"),
)

# One row per (job, period): the insert that claims a period is what makes a
# job run once per period across the cluster.
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigIntegerKey, primary_key=True),
    Column("job", String(JOB_NAME_MAX), nullable=False),
    Column("period", BigInteger, nullable=False),
    Column("node_id", String(NODE_ID_MAX), nullable=False),
    Column("term", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("result", String(32), nullable=True),
    # Why the run ended so, when that is not obvious (an abandoned run).
    Column("reason", String(REASON_MAX), nullable=True),
    UniqueConstraint("job", "period"),
)

# The highest election term that has written on behalf of each job; a writer
# with a lower term is a stale leader and must change nothing.
job_fences = Table(
    "job_fences",
    metadata,
    Column("job", String(JOB_NAME_MAX), primary_key=True),
    Column("term", BigInteger, nullable=False),
)

# Monotonic counters that election backends draw fencing tokens from.
election_terms = Table(
    "election_terms",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("term", BigInteger, nullable=False),
    Column("holder", String(NODE_ID_MAX), nullable=True),
    Column("updated_at", UtcDateTime, nullable=True),
)
