"""Content types of media files, by file name extension."""

from __future__ import annotations

import posixpath

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# A fixed table rather than the ``mimetypes`` module: that one reads the
# host's /etc/mime.types, so two replicas built from different images could
# answer differently, and it does not know most subtitle formats. Anything
# not listed (HTML and SVG included: they would run script on this origin)
# is served as application/octet-stream.
CONTENT_TYPES: dict[str, str] = {
    # video
    "mkv": "video/x-matroska",
    "mk3d": "video/x-matroska",
    "mp4": "video/mp4",
    "m4v": "video/x-m4v",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "mov": "video/quicktime",
    "wmv": "video/x-ms-wmv",
    "flv": "video/x-flv",
    "mpg": "video/mpeg",
    "mpeg": "video/mpeg",
    "ts": "video/mp2t",
    "m2ts": "video/mp2t",
    "ogv": "video/ogg",
    "3gp": "video/3gpp",
    # audio
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/opus",
    "m4a": "audio/mp4",
    "m4b": "audio/mp4",
    "aac": "audio/aac",
    "wav": "audio/wav",
    "wma": "audio/x-ms-wma",
    "aiff": "audio/aiff",
    "aif": "audio/aiff",
    "alac": "audio/mp4",
    "mka": "audio/x-matroska",
    # subtitles
    "srt": "application/x-subrip",
    "vtt": "text/vtt; charset=utf-8",
    "ass": "text/x-ssa",
    "ssa": "text/x-ssa",
    "sub": "text/plain",
    "idx": "text/plain",
    # images (posters, fan art, album covers)
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "avif": "image/avif",
    # metadata that sits beside media
    "nfo": "text/plain",
    "txt": "text/plain",
    "cue": "text/plain",
    "m3u": "audio/x-mpegurl",
    "m3u8": "application/vnd.apple.mpegurl",
}


def content_type_for(name: str) -> str:
    """The Content-Type to serve a file called ``name`` with (extension, case-insensitive)."""
    extension = posixpath.splitext(name)[1][1:].lower()
    return CONTENT_TYPES.get(extension, DEFAULT_CONTENT_TYPE)
