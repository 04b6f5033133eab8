"""
The typed form of the pytest-twisted decorator the contract kits use
(pytest-twisted ships no type information). Imported by the kits only:
pytest is a test extra, never needed to run the server.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

import pytest_twisted
from twisted.internet.defer import Deferred

_P = ParamSpec("_P")


def twisted_test(
    test: Callable[_P, Coroutine[Any, Any, None]],
) -> Callable[_P, Deferred[None]]:
    """An ``async def`` test that runs on the reactor (``pytest_twisted.ensureDeferred``)."""
    wrapped: Callable[_P, Deferred[None]] = pytest_twisted.ensureDeferred(test)
    return wrapped

