"""Users: creating and deleting them, from the API and the command line."""

from revenge.users._routes import MAX_BODY_BYTES, install_user_routes, read_new_user
from revenge.users._store import (
    USER_NAME_PATTERN,
    USER_NAME_RULE,
    NewUser,
    UserExists,
    create_user,
    delete_user,
    find_user,
    is_valid_user_name,
)

__all__ = [
    "MAX_BODY_BYTES",
    "USER_NAME_PATTERN",
    "USER_NAME_RULE",
    "NewUser",
    "UserExists",
    "create_user",
    "delete_user",
    "find_user",
    "install_user_routes",
    "is_valid_user_name",
    "read_new_user",
]
