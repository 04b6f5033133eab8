"""
User avatars: ``PUT``/``GET``/``DELETE /api/v1/users/<name>/avatar``, stored
through ``IStorage`` under ``avatars/`` (see docs/avatars.md).
"""

from revenge.avatars._cleanup import remove_deleted_users_avatar
from revenge.avatars._pointer import AVATAR_KEY_PREFIX
from revenge.avatars._routes import install_avatar_routes

__all__ = [
    "AVATAR_KEY_PREFIX",
    "install_avatar_routes",
    "remove_deleted_users_avatar",
]
