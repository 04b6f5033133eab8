"""
Showing a configuration without its secrets.

A URL's secrets are its password and the libpq parameters of its query that
carry one (:data:`SECRET_URL_PARAMETERS`). Masking them needs to know where
the password ends, so the user name and password must be percent-encoded
(:func:`userinfo_problem` says why one is not, and loading refuses it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from revenge.config._duration import format_duration
from revenge.config._schema import DURATION, SECRET, URL_PASSWORD, Config

MASK = "***"

# The libpq connection parameters (a URL's query) whose value is a secret:
# the ones libpq itself hides as password fields (PQconndefaults' dispchar
# "*": password, sslpassword, oauth_client_secret) and the SCRAM keys of
# pass-through authentication, which log in as well as the password does
# (libpq hides them as debug options). The rest are shown: sslkey, sslcert,
# sslrootcert, passfile and sslkeylogfile are paths, not the secrets inside.
SECRET_URL_PARAMETERS = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)

USERINFO_HINT = (
    "percent-encode the user name and the password, each with "
    "urllib.parse.quote(value, safe=''): '@' becomes %40, ':' %3A, '/' %2F, "
    "'?' %3F, '#' %23 and '%' %25 (and write an '@' in the path or query as %40)"
)

# How SQLAlchemy's URL parser (sqlalchemy.engine.url._parse_url) reads
# "user:password@" after "scheme://": the password runs to the first "@",
# even past a "/", "?" or "#" that ends the authority for everyone else.
_SQLALCHEMY_USERINFO = re.compile(r"([^:/]*(?::[^@]*)?)@")
# RFC 3986 userinfo: unreserved, sub-delims, ":" and %XX escapes, nothing else.
_USERINFO_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# In free text (a driver's message): a URL runs to the next blank, or to a
# '"', "<" or ">", which no URL holds unencoded (quoted "like this").
_URL_IN_TEXT = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*://[^\s"<>]*')
# libpq connection strings: name = value, the value quoted or running to the
# next blank ("&" and '"' included); one a URL's redaction masked is left be.
_SECRET_IN_CONNINFO = re.compile(
    r"\b(" + "|".join(sorted(SECRET_URL_PARAMETERS)) + r")(\s*=\s*)"
    r"(\*\*\*(?=[&\"\s]|$)|'(?:[^'\\]|\\.)*'?|\S*)",
    re.IGNORECASE,
)


def _userinfo(rest: str) -> tuple[str | None, str | None]:
    """
    The userinfo of a URL given after its ``scheme://``, as RFC 3986 reads it
    and as SQLAlchemy does (``None`` when there is none); the two differ only
    when a reserved character in it is not percent-encoded.
    """
    if rest.startswith("/"):
        # sqlite:///path: no authority, so no user name or password.
        return None, None
    ends = [found for found in (rest.find(mark) for mark in "/?#") if found != -1]
    authority = rest[: min(ends, default=len(rest))]
    standard = authority.rpartition("@")[0] if "@" in authority else None
    match = _SQLALCHEMY_USERINFO.match(rest)
    return standard, match.group(1) if match else None


def userinfo_problem(url: str) -> str | None:
    """
    Why the user name or password of ``url`` is not percent-encoded, or
    ``None`` when it is (or when ``url`` has neither). The reason names the
    offending kind of character, never the user name or password.
    """
    _, separator, rest = url.partition("://")
    if not separator or rest.startswith("/"):
        # No URL, or no authority (sqlite:///path, where an "@" is a file's).
        return None
    standard, lenient = _userinfo(rest)
    readings = [reading for reading in (standard, lenient) if reading is not None]
    if not readings:
        return _stray_at(rest)
    # The longer reading holds the stray character: a raw "@" lengthens the
    # standard one, a raw "/", "?" or "#" SQLAlchemy's.
    userinfo = max(readings, key=len)
    password = userinfo.partition(":")[2]
    for mark in "@/?#":
        if mark in userinfo:
            if standard is None:
                # The authority holds no "@": SQLAlchemy found one further on.
                return (
                    f"a raw {mark!r} comes before an '@' that SQLAlchemy takes as the "
                    "end of a user name and password"
                )
            part = "password" if mark in password else "user name"
            return f"the {part} holds a raw {mark!r}"
    if ":" in password:
        return "the password holds a raw ':'"
    if _BAD_ESCAPE.search(userinfo):
        part = "password" if _BAD_ESCAPE.search(password) else "user name"
        return f"the {part} holds a '%' that starts no %XX escape"
    if not _USERINFO_CHARACTERS.fullmatch(userinfo):
        part = "password" if not _USERINFO_CHARACTERS.fullmatch(password) else "user name"
        return (
            f"the {part} holds a character other than letters, digits, "
            "-._~!$&'()*+,;= and %XX escapes"
        )
    if standard != lenient:
        return "the user name and password do not read the same to every URL parser"
    return _stray_at(rest[len(userinfo) + 1 :])


def _stray_at(after_userinfo: str) -> str | None:
    # Both parsers agree on "u:p@s/s@db" (password "p", host "s"), yet it is
    # most likely the password "p@s/s" unencoded, whose tail every shown
    # URL would carry; an "@" the path or query means has to be %40.
    if "@" in after_userinfo:
        return (
            "the URL holds a raw '@' after the host, as a password with a raw '@' "
            "or '/' leaves one"
        )
    return None


def _mask_parameter(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    if equals and unquote_plus(name).lower() in SECRET_URL_PARAMETERS:
        return f"{name}={MASK}"
    return parameter


def redact_url(url: str) -> str:
    """
    ``url`` with the password of its userinfo and the value of each libpq
    secret parameter of its query (:data:`SECRET_URL_PARAMETERS`) replaced
    by ``***``; the rest is left as written. A URL whose user name or
    password is not percent-encoded is shown as ``scheme://***``.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    if userinfo_problem(url) is not None:
        # Where its password ends is a guess (loading refuses such a URL);
        # any guess could show a piece of it.
        return f"{scheme}://{MASK}"
    userinfo, _ = _userinfo(rest)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:{MASK}" if colon else user
        rest = f"{shown}{rest[len(userinfo):]}"
    # No "#" fragment: SQLAlchemy reads "?a=b#c" as a="b#c", so a "#" is
    # part of the value it follows.
    before_query, question, query = rest.partition("?")
    if question:
        query = "&".join(_mask_parameter(parameter) for parameter in query.split("&"))
    return f"{scheme}://{before_query}{question}{query}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """
    ``text`` (a driver's error message, say) fit for logs and terminals:
    each of ``secrets``, as written and percent-encoded, becomes ``***``;
    every URL in it is shown as :func:`redact_url` shows it; and in a libpq
    connection string the value of each secret parameter is ``***``.
    """
    spellings = {
        spelling
        for secret in secrets
        if secret
        for spelling in (secret, quote(secret, safe=""), quote_plus(secret, safe=""))
    }
    # Longest first: a secret that contains another is masked whole.
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, MASK)
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group()), text)
    return _SECRET_IN_CONNINFO.sub(lambda match: match.group(1) + match.group(2) + MASK, text)


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
    are ``***`` (``""`` when unset), so are a URL's password and secret
    libpq parameters (:func:`redact_url`), durations are written back as ``25s``/``1h``/``90d`` and lists are lists.
    The result, dumped as YAML, is itself a valid config file.

    Revenge's own keys only, unless ``sections``: then the sections that
    installed distributions declare follow, by the same rules.
    """
    shown = _redact(config)
    if sections:
        for name in config.section_names():
            shown[name] = _redact(config.section(name, object))
    return shown
