"""
Why a job run ended as it did: ``job_runs.reason`` (e.g. why a run was
abandoned, docs/jobs.md "Abandoned runs").

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table's columns in place.
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("reason", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("reason")
