"""Users: creating, listing, deleting them and rotating tokens, from the API and the CLI."""

from revenge.users._first_run import FIRST_ADMIN_HINT, hint_without_an_admin
from revenge.users._routes import install_user_routes
from revenge.users._store import (
    USER_NAME_RULE,
    UserExists,
    create_user,
    delete_user,
    is_valid_user_name,
    list_users,
    rotate_token,
)

__all__ = [
    "FIRST_ADMIN_HINT",
    "USER_NAME_RULE",
    "UserExists",
    "create_user",
    "delete_user",
    "hint_without_an_admin",
    "install_user_routes",
    "is_valid_user_name",
    "list_users",
    "rotate_token",
]
