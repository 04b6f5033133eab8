"""
The activity log: one row per state change, carrying the request id and node
id, written in the same transaction as the change (:func:`record_activity`).
"""

from revenge.activity._record import record_activity
from revenge.activity._routes import install_activity_routes

__all__ = [
    "install_activity_routes",
    "record_activity",
]
