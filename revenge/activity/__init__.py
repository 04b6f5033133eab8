"""
The activity log: one row per state change, carrying the request id and node
id, written in the same transaction as the change (:func:`record_activity`).
"""

from revenge.activity._record import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ActivityEntry,
    list_activity,
    record_activity,
)
from revenge.activity._routes import install_activity_routes

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ActivityEntry",
    "install_activity_routes",
    "list_activity",
    "record_activity",
]

