"""
The flat view of the configuration tree: one L{Key} per leaf field, named by
its dotted path, with the environment variable that sets it.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any, Literal

from revenge.config._schema import DURATION, SECRET, URL_PASSWORD, Config

Kind = Literal["str", "int", "bool", "duration", "list"]

ENV_PREFIX = "REVENGE_"


def env_name(dotted: str) -> str:
    """The environment variable for a dotted key (``a.b_c`` → ``REVENGE_A_B_C``)."""
    return ENV_PREFIX + dotted.upper().replace(".", "_")


@dataclass(frozen=True)
class Key:
    """One leaf of the configuration tree."""

    name: str
    kind: Kind
    default: Any
    secret: bool
    url_password: bool

    @property
    def env(self) -> str:
        return env_name(self.name)


@dataclass(frozen=True)
class Schema:
    keys: tuple[Key, ...]
    # Dotted name of every section (``storage``, ``storage.s3``) → its class.
    sections: dict[str, type[Any]]
    # The top-level sections that installed distributions declare, in order;
    # empty for Revenge's own schema.
    plugin_sections: tuple[str, ...] = ()

    @functools.cached_property
    def by_name(self) -> dict[str, Key]:
        return {key.name: key for key in self.keys}

    @functools.cached_property
    def by_env(self) -> dict[str, Key]:
        return {key.env: key for key in self.keys}


def _kind(hint: Any, metadata: typing.Mapping[str, Any], where: str) -> Kind:
    if hint is str:
        return "str"
    if hint is bool:
        return "bool"
    if hint is int:
        return "int"
    if hint is float and metadata.get(DURATION):
        return "duration"
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...):
        return "list"
    # A new field of another type needs parsing rules first; fail at import.
    raise TypeError(f"config field {where} has unsupported type {hint!r}")


def walk(
    cls: type[Any], prefix: str, keys: list[Key], sections: dict[str, type[Any]]
) -> None:
    """Add the leaves of dataclass ``cls`` to ``keys`` and its subsections to ``sections``."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        name = prefix + field.name
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            assert isinstance(hint, type)
            sections[name] = hint
            walk(hint, name + ".", keys, sections)
            continue
        keys.append(
            Key(
                name=name,
                kind=_kind(hint, field.metadata, name),
                default=field.default,
                secret=bool(field.metadata.get(SECRET)),
                url_password=bool(field.metadata.get(URL_PASSWORD)),
            )
        )


@functools.cache
def schema() -> Schema:
    """Revenge's own keys: the fields of :class:`Config`, whatever is installed."""
    keys: list[Key] = []
    sections: dict[str, type[Any]] = {}
    walk(Config, "", keys, sections)
    envs = [key.env for key in keys]
    # Underscores inside names could make two keys share a variable.
    if len(set(envs)) != len(envs):
        raise TypeError("two config keys map to the same environment variable")
    return Schema(keys=tuple(keys), sections=sections)
