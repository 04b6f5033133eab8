"""
The database: SQLite by default, PostgreSQL for clusters, one schema for both
(SQLAlchemy Core tables, Alembic migrations), and the rules for using it from
the reactor: blocking work goes through :class:`Database`, which runs it in
the thread pool. See docs/database.md.
"""

from revenge.db._database import Database
from revenge.db._engine import (
    DatabaseUrlError,
    create_database_engine,
    database_url,
    read_transaction,
    write_transaction,
)
from revenge.db._errors import DatabaseUnavailable, describe_database_error
from revenge.db._migrate import MigrationLockTimeout, alembic_config, upgrade_schema
from revenge.db._schema import REASON_MAX, activity, election_terms, job_fences, job_runs, users
from revenge.db._service import DatabaseService
from revenge.db._terms import advance_term, read_term
from revenge.db._types import utc_now

__all__ = [
    "Database",
    "DatabaseService",
    "DatabaseUnavailable",
    "DatabaseUrlError",
    "MigrationLockTimeout",
    "REASON_MAX",
    "activity",
    "advance_term",
    "alembic_config",
    "create_database_engine",
    "database_url",
    "describe_database_error",
    "election_terms",
    "job_fences",
    "job_runs",
    "read_term",
    "read_transaction",
    "upgrade_schema",
    "users",
    "utc_now",
    "write_transaction",
]
