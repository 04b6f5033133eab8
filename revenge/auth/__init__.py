"""
Who is calling: API tokens (issued once, stored hashed) and the guards that
routes start with (``await require_admin(database, request)``).
"""

from revenge.auth._require import (
    authenticate,
    bearer_token,
    require_admin,
    require_self_or_admin,
    require_user,
)
from revenge.auth._tokens import (
    TOKEN_PREFIX,
    IssuedToken,
    TokenParts,
    hash_verifier,
    issue_token,
    parse_token,
    verifier_matches,
)
from revenge.auth._users import USER_COLUMNS, User, find_user_by_token

__all__ = [
    "TOKEN_PREFIX",
    "USER_COLUMNS",
    "IssuedToken",
    "TokenParts",
    "User",
    "authenticate",
    "bearer_token",
    "find_user_by_token",
    "hash_verifier",
    "issue_token",
    "parse_token",
    "require_admin",
    "require_self_or_admin",
    "require_user",
    "verifier_matches",
]
