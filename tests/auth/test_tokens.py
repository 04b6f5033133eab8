"""API tokens: random, parseable, stored only as a hash, checked in constant time."""

from __future__ import annotations

import base64

from revenge.auth import issue_token
from revenge.auth._tokens import TOKEN_PREFIX, hash_verifier, parse_token, verifier_matches


def test_a_token_carries_a_selector_and_a_256_bit_verifier():
    issued = issue_token()
    assert issued.token.startswith(TOKEN_PREFIX)
    parts = parse_token(issued.token)
    assert parts is not None
    assert parts.selector == issued.selector
    verifier_bytes = base64.urlsafe_b64decode(parts.verifier + "=")
    assert len(verifier_bytes) * 8 >= 128
    assert hash_verifier(parts.verifier) == issued.verifier_hash
    # What is stored cannot be turned back into the token.
    assert parts.verifier not in issued.verifier_hash
    assert issued.selector + "_" + parts.verifier not in issued.verifier_hash


def test_tokens_do_not_repeat():
    tokens = [issue_token() for _ in range(200)]
    assert len({t.token for t in tokens}) == 200
    assert len({t.selector for t in tokens}) == 200


def test_reprs_do_not_show_the_secret():
    issued = issue_token()
    parts = parse_token(issued.token)
    assert parts is not None
    for shown in (repr(issued), repr(parts)):
        assert parts.verifier not in shown
        assert issued.verifier_hash not in shown


def test_only_well_formed_tokens_parse():
    good = issue_token().token
    assert parse_token(good) is not None
    for bad in [
        "",
        "rvg_",
        good[len(TOKEN_PREFIX) :],
        "xyz" + good[3:],
        good + "A",
        good[:-1],
        good.replace("_", "-", 1) if good.count("_") else "rvg-",
        TOKEN_PREFIX + "G" * 16 + "_" + "a" * 43,
        TOKEN_PREFIX + "a" * 16 + "_" + "a" * 42 + "!",
    ]:
        assert parse_token(bad) is None, bad


def test_verifier_checks():
    issued = issue_token()
    parts = parse_token(issued.token)
    assert parts is not None
    assert verifier_matches(parts.verifier, issued.verifier_hash)
    other = parse_token(issue_token().token)
    assert other is not None
    assert not verifier_matches(other.verifier, issued.verifier_hash)
    # No stored hash (unknown selector) never matches, whatever the verifier.
    assert not verifier_matches(parts.verifier, None)
