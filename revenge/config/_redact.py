"""
Showing a configuration without its secrets.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, urlencode

from revenge.config._duration import format_duration
from revenge.config._schema import DURATION, SECRET, URL_PASSWORD, Config

MASK = "***"


def redact_url(url: str) -> str:
    """
    ``url`` with the password of its userinfo (and a ``password`` query
    parameter, which libpq also reads) replaced by ``***``.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    before_query, question, query = rest.partition("?")
    # Mask from the first ":" to the last "@" before the query rather than
    # parse strictly: a password with an unescaped "@" or "/" is malformed,
    # but must still not be shown. A leading "/" (sqlite:///path) means no
    # authority and so no password.
    at = before_query.rfind("@")
    if at != -1 and not before_query.startswith("/"):
        user, colon, _ = before_query[:at].partition(":")
        if colon:
            before_query = f"{user}:{MASK}{before_query[at:]}"
    if question:
        query, hash_mark, fragment = query.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name == "password" for name, _ in pairs):
            masked = [
                (name, MASK if name == "password" else value) for name, value in pairs
            ]
            query = urlencode(masked, safe="*")
        return f"{scheme}://{before_query}?{query}{hash_mark}{fragment}"
    return f"{scheme}://{before_query}"


def _redact(section: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if dataclasses.is_dataclass(value):
            shown[field.name] = _redact(value)
        elif field.metadata.get(SECRET):
            # Empty stays empty so "not set" is still visible.
            shown[field.name] = MASK if value else ""
        elif field.metadata.get(URL_PASSWORD):
            shown[field.name] = redact_url(value)
        elif field.metadata.get(DURATION):
            shown[field.name] = format_duration(value)
        elif isinstance(value, tuple):
            shown[field.name] = list(value)
        else:
            shown[field.name] = value
    return shown


def redacted(config: Config, *, sections: bool = False) -> dict[str, Any]:
    """
    The effective configuration as nested plain data, safe to print: secrets
    are ``***`` (``""`` when unset), the database URL's password is ``***``,
    durations are written back as ``25s``/``1h``/``90d`` and lists are lists.
    The result, dumped as YAML, is itself a valid config file.

    Revenge's own keys only, unless ``sections``: then the sections that
    installed distributions declare follow, by the same rules.
    """
    shown = _redact(config)
    if sections:
        for name in config.section_names():
            shown[name] = _redact(config.section(name, object))
    return shown
