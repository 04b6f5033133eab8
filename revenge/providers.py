"""
Finding storage and election providers through entry points.

The built-ins (``local``, ``s3``; ``standalone``, ``raft``) are registered the
same way as third-party ones. An entry point names a factory
``factory(config, reactor) -> provider``; the provider must provide the
group's interface, which :func:`create_provider` verifies.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from zope.interface.exceptions import Invalid
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

STORAGE_GROUP = "revenge.storage"
ELECTION_GROUP = "revenge.election"


class ProviderError(Exception):
    """A provider is missing or broken; the message names group, name and choices."""


def _entry_points(group: str) -> dict[str, EntryPoint]:
    # Several installed copies may register the same name (an editable
    # install beside a wheel); the first one on sys.path wins, as for imports.
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=group):
        found.setdefault(entry_point.name, entry_point)
    return found


def installed_names(group: str) -> list[str]:
    """The provider names registered in ``group``, sorted."""
    return sorted(_entry_points(group))


def _unknown(group: str, name: str) -> ProviderError:
    choices = ", ".join(installed_names(group)) or "none"
    return ProviderError(
        f"no provider named {name!r} in entry point group {group!r} "
        f"(installed: {choices})"
    )


def check_name(group: str, name: str) -> None:
    """Raise :class:`ProviderError` unless ``name`` is registered in ``group``."""
    if name not in _entry_points(group):
        raise _unknown(group, name)


def create_provider(
    group: str, name: str, interface: InterfaceClass, config: object, reactor: Any
) -> Any:
    """
    Load, build and verify the provider ``name`` of ``group``. ``config`` (the
    node's ``revenge.config.Config``) is passed on unread: typed ``object`` so
    that this module, which the config loader uses to check backend names,
    does not import the config package back.
    """
    entry_point = _entry_points(group).get(name)
    if entry_point is None:
        raise _unknown(group, name)
    try:
        factory = entry_point.load()
    except Exception as error:
        raise ProviderError(
            f"provider {name!r} in entry point group {group!r} failed to load "
            f"from {entry_point.value!r}: {type(error).__name__}: {error}"
        ) from error
    provider = factory(config, reactor)
    try:
        verifyObject(interface, provider)
    except Invalid as error:
        summary = " ".join(str(error).split())
        raise ProviderError(
            f"provider {name!r} in entry point group {group!r} does not provide "
            f"{interface.__name__}: {summary}"
        ) from error
    return provider
