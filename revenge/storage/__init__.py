"""
Object storage for user content: the contract (and its optional parts), the
key rules every provider applies, what providers share for streaming files,
and the built-in ``local`` provider.
"""

from revenge.storage._file_producer import BodyLengthMismatch, ThreadedFileProducer
from revenge.storage._interface import (
    IInitializableStorage,
    InvalidKey,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from revenge.storage._keys import (
    MAX_KEY_LENGTH,
    is_key_segment,
    split_key,
    split_prefix,
    validate_key,
    validate_prefix,
)
from revenge.storage._local import LocalStorage

__all__ = [
    "BodyLengthMismatch",
    "IInitializableStorage",
    "IStorage",
    "InvalidKey",
    "LocalStorage",
    "MAX_KEY_LENGTH",
    "ObjectNotFound",
    "StorageError",
    "StoredObject",
    "ThreadedFileProducer",
    "is_key_segment",
    "split_key",
    "split_prefix",
    "validate_key",
    "validate_prefix",
]
