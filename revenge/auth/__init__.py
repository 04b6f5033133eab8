"""
Who is calling: API tokens (issued once, stored hashed) and the guards that
routes start with (``await require_admin(database, request)``).
"""

from revenge.auth._require import (
    require_admin,
    require_self_or_admin,
    require_user,
    require_user_or_query_token,
)
from revenge.auth._tokens import issue_token
from revenge.auth._users import USER_COLUMNS, User

__all__ = [
    "USER_COLUMNS",
    "User",
    "issue_token",
    "require_admin",
    "require_self_or_admin",
    "require_user",
    "require_user_or_query_token",
]
