"""
Alembic's script directory: ``env.py`` and the revisions in ``versions/``.

Run programmatically by :func:`revenge.db.upgrade_schema`; no ``alembic.ini``
is involved. See docs/database.md for writing a new revision.
"""
