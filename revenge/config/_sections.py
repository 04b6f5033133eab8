"""
Configuration sections declared by installed distributions.

Revenge's keys are a closed set: an unknown key stops startup. A provider
distribution that needs settings of its own declares a top-level section in
the entry point group ``revenge.config``: the entry point's name is the
section's name, its object a frozen dataclass whose fields are the section's
keys (``str``, ``int``, ``bool``, ``tuple[str, ...]``, durations, nested
dataclasses; see :mod:`revenge.config._schema` for the field helpers). The
loader then reads ``NAME.KEY`` from the file and ``REVENGE_NAME_KEY`` from the
environment with exactly the rules of Revenge's own keys.

Every installed section is read, used or not: a section that cannot be read
(the entry point fails to import, is no frozen dataclass, clashes with another
key) is a configuration error, so a broken image fails at once rather than on
the day its provider is chosen.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from revenge.config._errors import ConfigError
from revenge.config._keys import Key, Schema, schema, walk

SECTION_GROUP = "revenge.config"

_SECTION_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class InstalledSection:
    """A section found in the entry point group ``revenge.config``."""

    name: str
    settings: type[Any]
    # The entry point's value (``module:Class``), named in error messages.
    source: str


def _problem(name: str, source: str, detail: str) -> ConfigError:
    return ConfigError(
        f"config section {name!r} from entry point group {SECTION_GROUP!r} "
        f"({source}): {detail}"
    )


def _is_frozen_dataclass(candidate: object) -> bool:
    if not (isinstance(candidate, type) and dataclasses.is_dataclass(candidate)):
        return False
    return bool(getattr(candidate, "__dataclass_params__").frozen)


def installed_sections() -> tuple[InstalledSection, ...]:
    """
    The sections registered in ``revenge.config``, sorted by name.

    @raise ConfigError: for a section that cannot be used (one line naming
        the group, the section and its entry point).
    """
    # Several installed copies may register the same name (an editable install
    # beside a wheel); the first on sys.path wins, as for providers.
    found: dict[str, Any] = {}
    for entry_point in entry_points(group=SECTION_GROUP):
        found.setdefault(entry_point.name, entry_point)
    own = {key.name.partition(".")[0] for key in schema().keys}
    sections = []
    for name in sorted(found):
        entry_point = found[name]
        source = entry_point.value
        if not _SECTION_NAME.match(name):
            raise _problem(
                name, source, "a section name is lower-case letters, digits and _, "
                "starting with a letter"
            )
        if name in own:
            raise _problem(name, source, "Revenge's own configuration already has this key")
        try:
            settings = entry_point.load()
        except Exception as error:
            raise _problem(
                name, source, f"failed to load: {type(error).__name__}: {error}"
            ) from None
        if not _is_frozen_dataclass(settings):
            raise _problem(name, source, "is not a frozen dataclass")
        sections.append(InstalledSection(name, settings, source))
    return tuple(sections)


@functools.cache
def schema_with(sections: tuple[InstalledSection, ...]) -> Schema:
    """
    Revenge's own keys followed by those of ``sections``.

    @raise ConfigError: when a section's field has a type the loader cannot
        read, lacks a default, or shares an environment variable with another key.
    """
    base = schema()
    keys: list[Key] = list(base.keys)
    subsections = dict(base.sections)
    owner_of_env = {key.env: key.name for key in base.keys}
    for section in sections:
        added: list[Key] = []
        try:
            walk(section.settings, section.name + ".", added, subsections)
        except (TypeError, NameError) as error:
            # NameError: an annotation that does not resolve.
            raise _problem(section.name, section.source, str(error)) from None
        for key in added:
            if key.default is dataclasses.MISSING:
                raise _problem(
                    section.name,
                    section.source,
                    f"key {key.name!r} has no default (a plain default: "
                    "default_factory is for nested sections only)",
                )
            # "a_b.c" and "a.b_c" are both REVENGE_A_B_C.
            clash = owner_of_env.get(key.env)
            if clash is not None:
                raise _problem(
                    section.name,
                    section.source,
                    f"key {key.name!r} and key {clash!r} would share the "
                    f"environment variable {key.env}",
                )
            owner_of_env[key.env] = key.name
        subsections[section.name] = section.settings
        keys.extend(added)
    return Schema(
        keys=tuple(keys),
        sections=subsections,
        plugin_sections=tuple(section.name for section in sections),
    )


def full_schema() -> Schema:
    """Revenge's own keys and those of every installed section."""
    return schema_with(installed_sections())
