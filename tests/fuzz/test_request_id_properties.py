"""choose_request_id: a valid client id is kept, anything else becomes a UUID4, nothing raises."""

from __future__ import annotations

import re
import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st

from revenge.logs import new_request_id
from revenge.web import is_valid_request_id
from revenge.web._request_id import choose_request_id

from .tally import count_input, examples

# docs/design.md's rule, written out again independently of the implementation.
VALID_CHARACTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"


def is_uuid4(text: str) -> bool:
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == text


def follows_the_rule(raw: bytes) -> bool:
    return 1 <= len(raw) <= 128 and all(byte in VALID_CHARACTERS for byte in raw)


valid_ids = st.binary(min_size=1, max_size=128).map(
    lambda raw: bytes(VALID_CHARACTERS[byte % len(VALID_CHARACTERS)] for byte in raw)
)
# Mostly near misses: valid ids with one byte changed, one too long, and noise.
near_misses = st.one_of(
    st.tuples(valid_ids, st.integers(0, 127), st.integers(0, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
    ),
    valid_ids.map(lambda raw: raw + b"x" * (129 - len(raw))),
    st.binary(max_size=300),
)
header_values = st.one_of(valid_ids, near_misses)


@settings(max_examples=examples(300))
@given(st.one_of(st.none(), st.lists(header_values, max_size=3)))
@example(None)
@example([])
@example([b"ok", b"ok"])
@example([b"abc\n"])
@example([b"x" * 128])
@example([b"x" * 129])
def test_valid_ids_are_kept_and_anything_else_gets_a_uuid4(values: list[bytes] | None) -> None:
    count_input("request id: choose_request_id")
    chosen = choose_request_id(values)
    if values is not None and len(values) == 1 and follows_the_rule(values[0]):
        assert chosen == values[0].decode("ascii")
    else:
        assert is_uuid4(chosen)
    # Whatever it is, it may be sent back as a header and written to a log line.
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", chosen)


@settings(max_examples=examples(300))
@given(header_values)
def test_validity_is_exactly_the_rule(raw: bytes) -> None:
    count_input("request id: is_valid_request_id")
    assert is_valid_request_id(raw) == follows_the_rule(raw)


@settings(max_examples=examples(100))
@given(st.integers(0, 50))
def test_new_ids_are_uuid4s(draws: int) -> None:
    count_input("request id: new_request_id")
    ids = [new_request_id() for _ in range(draws + 1)]
    assert all(is_uuid4(value) for value in ids)
    assert len(set(ids)) == len(ids)
