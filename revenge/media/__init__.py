"""
Media libraries on read-only mounts: listing directories and streaming
files with ranges and validators, never outside a library root
(docs/media.md).

Exported: what the server assembles a node from, the read size benchmarks
compare against, and the one rule of hidden names (docs/media.md, "Hidden
names"). Everything else is imported from the private modules.
"""

from revenge.media._paths import is_hidden_name
from revenge.media._routes import MediaService, install_media_routes
from revenge.media._stream import DEFAULT_CHUNK_SIZE

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MediaService",
    "install_media_routes",
    "is_hidden_name",
]
