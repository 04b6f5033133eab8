"""
The first schema: users, activity, the job ledger and fences, election terms.

Revision ID: 0001
Revises: (none)

Self-contained on purpose: a revision describes the schema as it was when it
was written, so it uses plain SQLAlchemy types, not revenge.db's classes that
may change later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("token_selector", sa.String(32), nullable=False),
        sa.Column("token_verifier_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("avatar_key", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.UniqueConstraint("token_selector", name="uq_users_token_selector"),
    )
    op.create_table(
        "activity",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(1024), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_activity"),
    )
    op.create_index("ix_activity_created_at", "activity", ["created_at"])
    op.create_table(
        "job_runs",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.Column("result", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
        sa.UniqueConstraint("job", "period", name="uq_job_runs_job_period"),
    )
    op.create_table(
        "job_fences",
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("job", name="pk_job_fences"),
    )
    op.create_table(
        "election_terms",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("updated_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_election_terms"),
    )


def downgrade() -> None:
    op.drop_table("election_terms")
    op.drop_table("job_fences")
    op.drop_table("job_runs")
    op.drop_index("ix_activity_created_at", table_name="activity")
    op.drop_table("activity")
    op.drop_table("users")
