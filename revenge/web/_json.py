"""
Reading a client's JSON: the one place request bodies and cursors are parsed.

``json.loads`` alone lets a client choose how deep the parser recurses (5000
``[`` is a ``RecursionError``, a 500) and how long an integer it converts.
:func:`loads_client_json` bounds both and says what is wrong in one line.
"""

from __future__ import annotations

import json
from typing import Any

# Far deeper than any body or cursor of this API (they are one or two levels).
MAX_JSON_DEPTH = 32
# A 64-bit integer has at most 20 digits; anything longer is not a value here.
MAX_JSON_NUMBER_DIGITS = 40


class ClientJSONError(ValueError):
    """Why a client's JSON is refused; the message may be shown to the client."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_NUMBER_DIGITS:
        raise ClientJSONError(f"a number has more than {MAX_JSON_NUMBER_DIGITS} digits")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_JSON_NUMBER_DIGITS * 2:
        raise ClientJSONError(f"a number has more than {MAX_JSON_NUMBER_DIGITS * 2} characters")
    return float(text)


def _no_constant(text: str) -> Any:
    raise ClientJSONError(f"{text} is not JSON")


def _depth_within(value: Any, limit: int) -> bool:
    # Iterative: the point is not to recurse as deep as the client asks.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return False
        pending.extend((child, depth + 1) for child in children)
    return True


def loads_client_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value ``raw`` holds, or :class:`ClientJSONError` saying why not."""
    try:
        value = json.loads(
            raw, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant
        )
    except ClientJSONError:
        raise
    except RecursionError:
        raise ClientJSONError(f"the JSON is nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise ClientJSONError("the body is not valid JSON") from None
    if not _depth_within(value, max_depth):
        raise ClientJSONError(f"the JSON is nested deeper than {max_depth} levels")
    return value
