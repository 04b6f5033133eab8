"""
Typed forms of the pytest-twisted decorators the contract kits use
(pytest-twisted ships no type information). Imported by the kits only:
pytest is a test extra, never needed to run the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pytest_twisted
from twisted.internet.defer import Deferred

_P = ParamSpec("_P")
_T = TypeVar("_T")


def twisted_test(
    test: Callable[_P, Coroutine[Any, Any, None]],
) -> Callable[_P, Deferred[None]]:
    """An ``async def`` test that runs on the reactor (``pytest_twisted.ensureDeferred``)."""
    wrapped: Callable[_P, Deferred[None]] = pytest_twisted.ensureDeferred(test)
    return wrapped


def twisted_fixture(
    fixture: Callable[_P, AsyncIterator[_T]],
) -> Callable[_P, AsyncIterator[_T]]:
    """An ``async def`` fixture with ``yield``, on the reactor (``async_yield_fixture``)."""
    wrapped: Callable[_P, AsyncIterator[_T]] = pytest_twisted.async_yield_fixture(fixture)
    return wrapped
