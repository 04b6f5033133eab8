"""Users: creating and deleting them, from the API and the command line."""

from revenge.users._routes import install_user_routes
from revenge.users._store import USER_NAME_RULE, UserExists, create_user, is_valid_user_name

__all__ = [
    "USER_NAME_RULE",
    "UserExists",
    "create_user",
    "install_user_routes",
    "is_valid_user_name",
]
