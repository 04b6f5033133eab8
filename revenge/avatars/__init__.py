"""
User avatars: ``PUT``/``GET``/``DELETE /api/v1/users/<name>/avatar``, stored
through ``IStorage`` under ``avatars/`` (see docs/avatars.md).
"""

from revenge.avatars._images import (
    AVATAR_CONTENT_TYPES,
    SNIFF_BYTES,
    declared_image_type,
    image_type_of,
)
from revenge.avatars._pointer import (
    AVATAR_KEY_PREFIX,
    NoSuchUser,
    clear_avatar,
    entity_tag,
    new_avatar_key,
    point_avatar_at,
    read_avatar_key,
)
from revenge.avatars._uploads import (
    MAX_UPLOADS_PER_USER,
    UPLOAD_RETRY_AFTER_SECONDS,
    UploadSlots,
)
from revenge.avatars._routes import (
    AVATAR_ROUTE,
    CACHE_CONTROL,
    CONTENT_SECURITY_POLICY,
    avatar_url,
    install_avatar_routes,
)

__all__ = [
    "AVATAR_CONTENT_TYPES",
    "AVATAR_KEY_PREFIX",
    "AVATAR_ROUTE",
    "CACHE_CONTROL",
    "CONTENT_SECURITY_POLICY",
    "MAX_UPLOADS_PER_USER",
    "SNIFF_BYTES",
    "UPLOAD_RETRY_AFTER_SECONDS",
    "NoSuchUser",
    "UploadSlots",
    "avatar_url",
    "clear_avatar",
    "declared_image_type",
    "entity_tag",
    "image_type_of",
    "install_avatar_routes",
    "new_avatar_key",
    "point_avatar_at",
    "read_avatar_key",
]
