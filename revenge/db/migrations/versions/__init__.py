"""Schema revisions, one module each, applied in order of ``down_revision``."""
