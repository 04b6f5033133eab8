"""
API tokens: a public selector to find the user, a secret verifier to prove it.

A token reads ``rvg_<selector>_<verifier>``: the selector is 16 hex digits
(64 random bits) stored as is and indexed; the verifier is 256 random bits,
base64url, stored only as its SHA-256. Checking a token is one indexed
lookup and one constant-time comparison of hashes, so neither the database
nor response timing gives an attacker anything to work from.

A fast hash is enough: slow password hashes exist to stretch guessable
secrets, and 256 random bits are not guessable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

TOKEN_PREFIX = "rvg_"
_SELECTOR_BYTES = 8
_VERIFIER_BYTES = 32
_SELECTOR = re.compile(r"[0-9a-f]{16}")
_VERIFIER = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class IssuedToken:
    """A new token and what is stored of it. ``token`` is shown once, never stored."""

    token: str = field(repr=False)
    selector: str
    verifier_hash: str = field(repr=False)


@dataclass(frozen=True)
class TokenParts:
    selector: str
    verifier: str = field(repr=False)


def hash_verifier(verifier: str) -> str:
    return hashlib.sha256(verifier.encode("ascii")).hexdigest()


def issue_token() -> IssuedToken:
    selector = secrets.token_hex(_SELECTOR_BYTES)
    verifier = secrets.token_urlsafe(_VERIFIER_BYTES)
    return IssuedToken(
        token=f"{TOKEN_PREFIX}{selector}_{verifier}",
        selector=selector,
        verifier_hash=hash_verifier(verifier),
    )


def parse_token(token: str) -> TokenParts | None:
    """The token's parts, or None when it cannot be one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    selector, separator, verifier = token[len(TOKEN_PREFIX) :].partition("_")
    if not separator or not _SELECTOR.fullmatch(selector) or not _VERIFIER.fullmatch(verifier):
        return None
    return TokenParts(selector, verifier)


# Compared against when the selector matches no user, so that an unknown
# selector costs the same work as a wrong verifier.
_NO_USER_HASH = hash_verifier(secrets.token_urlsafe(_VERIFIER_BYTES))


def verifier_matches(verifier: str, stored_hash: str | None) -> bool:
    """Constant-time check of ``verifier`` against a stored hash (None: no such user)."""
    expected = stored_hash if stored_hash is not None else _NO_USER_HASH
    matches = hmac.compare_digest(hash_verifier(verifier), expected)
    return matches and stored_hash is not None
