"""Which image a body holds, judged by its first bytes, never by what the client says."""

from __future__ import annotations

# The types an avatar may have; anything else is refused with a 415.
PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
WEBP = "image/webp"
AVATAR_CONTENT_TYPES = frozenset({PNG, JPEG, GIF, WEBP})

# Enough bytes to tell every accepted type apart (WebP needs twelve).
SNIFF_BYTES = 12

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOI marker followed by the first marker's 0xFF; every JPEG (JFIF, Exif, raw) starts so.
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_GIF_SIGNATURES = (b"GIF87a", b"GIF89a")


def image_type_of(head: bytes) -> str | None:
    """
    The content type of the image whose first bytes are ``head`` (give at
    least ``SNIFF_BYTES``), or None when it is none of PNG, JPEG, GIF, WebP.
    """
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(_JPEG_SIGNATURE):
        return JPEG
    if head.startswith(_GIF_SIGNATURES):
        return GIF
    # A RIFF container (4-byte size in between) whose form type is WEBP.
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def declared_image_type(header: bytes | None) -> str | None:
    """
    The media type of a ``Content-Type`` header value when it is one of the
    accepted image types (parameters and case ignored), else None.
    """
    if header is None:
        return None
    media_type = header.split(b";", 1)[0].strip().lower()
    try:
        text = media_type.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text in AVATAR_CONTENT_TYPES else None
