"""Storage metrics for any provider, built-in or third-party, in one place."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from revenge.metrics import Metrics
from revenge.storage._interface import (
    IInitializableStorage,
    IStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
)

_T = TypeVar("_T")


@implementer(IStorage)
class InstrumentedStorage:
    """
    Wraps a provider: counts and times each call by backend, op and result.

    A provider's ``IInitializableStorage`` shows through the wrapper, which
    is all that code holding it sees; those calls are handed on unmeasured,
    as they make a backend ready rather than serve requests.
    """

    def __init__(self, provider: Any, metrics: Metrics) -> None:
        self.provider = provider
        self.name = provider.name
        self._metrics = metrics
        if IInitializableStorage.providedBy(provider):
            alsoProvides(self, IInitializableStorage)

    def _measure(self, op: str, call: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        started = time.monotonic()

        def record(result: Any) -> Any:
            if isinstance(result, Failure):
                # A missing object is an answer, not a backend fault.
                outcome = "not_found" if result.check(ObjectNotFound) else "error"
            else:
                outcome = "success"
            self._metrics.storage_operations_total.labels(self.name, op, outcome).inc()
            self._metrics.storage_operation_duration_seconds.labels(self.name, op).observe(
                time.monotonic() - started
            )
            return result

        d: Deferred[_T] = maybeDeferred(call)
        return d.addBoth(record)

    def store(
        self, key: str, body: BinaryIO, content_type: str, length: int | None = None
    ) -> Deferred[StoredObject]:
        return self._measure("store", lambda: self.provider.store(key, body, content_type, length))

    def get(self, key: str) -> Deferred[StoredObject]:
        return self._measure("get", lambda: self.provider.get(key))

    def delete(self, key: str) -> Deferred[None]:
        return self._measure("delete", lambda: self.provider.delete(key))

    def exists(self, key: str) -> Deferred[bool]:
        return self._measure("exists", lambda: self.provider.exists(key))

    def list(self, prefix: str) -> Deferred[list[StoredObject]]:
        return self._measure("list", lambda: self.provider.list(prefix))

    def check(self) -> Deferred[None]:
        return self._measure("check", lambda: self.provider.check())

    # IInitializableStorage, provided only when the provider provides it.

    @property
    def description(self) -> str:
        description: str = self.provider.description
        return description

    def initialize(self) -> Deferred[str]:
        result: Deferred[str] = self.provider.initialize()
        return result

    def describe_error(self, error: StorageError) -> str:
        message: str = self.provider.describe_error(error)
        return message

    def close(self) -> Deferred[None]:
        result: Deferred[None] = self.provider.close()
        return result
