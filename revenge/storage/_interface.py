"""The storage provider contract (see docs/design.md, "Interfaces")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from twisted.internet.defer import Deferred
from twisted.web.iweb import IBodyProducer
from zope.interface import Attribute, Interface


class StorageError(Exception):
    """A storage backend failed; the message never carries credentials."""


class ObjectNotFound(StorageError):
    """No object is stored under the requested key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object stored under key {key!r}")
        self.key = key


class InvalidKey(StorageError, ValueError):
    """A key that could escape the provider's namespace or is otherwise unusable."""


@dataclass(frozen=True)
class StoredObject:
    """
    What a provider knows of one object.

    ``body`` is set only by ``get``: a producer that streams the bytes (with
    pause/resume for backpressure) into any ``IConsumer``, such as a
    ``twisted.web`` request. ``store`` and ``list`` return metadata only.
    """

    key: str
    length: int
    content_type: str
    etag: str
    last_modified: datetime
    body: IBodyProducer | None = None


class IStorage(Interface):
    """Object storage for user content. Bodies stream: nothing is read whole."""

    name = Attribute("The backend's registered name, e.g. 'local' or 's3'.")

    def store(
        key: str, body: BinaryIO, content_type: str, length: int | None = None
    ) -> Deferred[StoredObject]:
        """
        Store ``body`` (a binary file-like object read in chunks until EOF)
        under ``key``, replacing any previous object atomically: readers see the
        old object or the new one, never a part. Fails with ``InvalidKey`` for a
        key that is not a relative path of ``[A-Za-z0-9._-]`` segments.
        """

    def get(key: str) -> Deferred[StoredObject]:
        """The object with a streaming ``body``; fails with ``ObjectNotFound``."""

    def delete(key: str) -> Deferred[None]:
        """Remove the object; deleting a missing key is not an error."""

    def exists(key: str) -> Deferred[bool]:
        """Whether an object is stored under ``key``."""

    def list(prefix: str) -> Deferred[list[StoredObject]]:
        """Metadata (no body) of every object whose key starts with ``prefix``, sorted by key."""

    def check() -> Deferred[None]:
        """Succeed when the backend can serve requests; fail with ``StorageError`` otherwise."""


class IInitializableStorage(Interface):
    """
    Optional beside ``IStorage``: a provider that can make its backend ready,
    for ``revenge storage init``. Declare it with ``@implementer`` next to
    ``IStorage``; the command uses it whenever a provider provides it, and
    runs only ``check()`` for one that does not.
    """

    description = Attribute(
        "Where this provider keeps objects, in words for an operator's one-line"
        " messages, without secrets: \"S3 bucket 'media' at https://minio:9000\"."
    )

    def initialize() -> Deferred[str]:
        """
        Create what the backend needs (a bucket, a directory) unless it is
        there, then make sure the provider can serve requests. Safe to run
        again, and from several replicas at once. Fires with what was done,
        a few words the command prints after ``description`` (``created``,
        ``already exists``, ``ready``); fails with ``StorageError`` when the
        backend cannot be made ready.
        """

    def describe_error(error: StorageError) -> str:
        """
        The one-line message for ``error``, raised by this provider while
        it was being initialized or probed: its text, plus whatever an
        operator needs to find the backend (``description``, say) when the
        text does not already say so.
        """

    def close() -> Deferred[None]:
        """Let go of what the provider holds (pooled connections) once the command is done."""
