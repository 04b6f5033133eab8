"""
The database: SQLite by default, PostgreSQL for clusters, one schema for both
(SQLAlchemy Core tables, Alembic migrations), and the rules for using it from
the reactor: blocking work goes through :class:`Database`, which runs it in
the thread pool. See docs/database.md.
"""

from revenge.db._database import Database
from revenge.db._engine import (
    DatabaseUrlError,
    begin_immediately,
    create_database_engine,
    database_url,
    read_transaction,
    sqlite_path,
    write_transaction,
)
from revenge.db._errors import DatabaseUnavailable, describe_database_error
from revenge.db._migrate import (
    MigrationLockTimeout,
    SchemaUpgrade,
    alembic_config,
    current_revision,
    downgrade_schema,
    head_revision,
    upgrade_schema,
)
from revenge.db._schema import (
    REASON_MAX,
    activity,
    election_terms,
    job_fences,
    job_runs,
    metadata,
    users,
)
from revenge.db._service import DatabaseService
from revenge.db._terms import advance_term, read_term
from revenge.db._types import UtcDateTime, utc_now

__all__ = [
    "REASON_MAX",
    "Database",
    "DatabaseService",
    "DatabaseUnavailable",
    "DatabaseUrlError",
    "MigrationLockTimeout",
    "SchemaUpgrade",
    "UtcDateTime",
    "activity",
    "advance_term",
    "alembic_config",
    "begin_immediately",
    "create_database_engine",
    "current_revision",
    "database_url",
    "describe_database_error",
    "downgrade_schema",
    "election_terms",
    "head_revision",
    "job_fences",
    "job_runs",
    "metadata",
    "read_term",
    "read_transaction",
    "sqlite_path",
    "upgrade_schema",
    "users",
    "utc_now",
    "write_transaction",
]
