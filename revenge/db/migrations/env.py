"""
Alembic's environment: migrate on the connection that
:func:`revenge.db.upgrade_schema` opened and locked, inside its transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

if context.is_offline_mode():
    raise RuntimeError("Revenge's migrations run against a live database only")

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through revenge.db.upgrade_schema (or `revenge migrate`)")

context.configure(
    connection=connection,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    # True on SQLite too: the engine emits its own BEGIN, so DDL is
    # transactional there as well (see revenge/db/_engine.py).
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
