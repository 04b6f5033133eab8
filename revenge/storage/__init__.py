"""Object storage for user content: the contract and the built-in ``local`` provider."""

from revenge.storage._interface import (
    InvalidKey,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from revenge.storage._local import LocalStorage, validate_key, validate_prefix

__all__ = [
    "IStorage",
    "InvalidKey",
    "LocalStorage",
    "ObjectNotFound",
    "StorageError",
    "StoredObject",
    "validate_key",
    "validate_prefix",
]
