"""
Durations as people write them in config: ``30s``, ``15m``, ``1h30m``, ``90d``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

# Seconds per unit. No months or years: their length varies, and ``1M``
# versus ``1m`` is too easy to get wrong.
_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(rf"{_NUMBER}")
_PART = re.compile(rf"\s*({_NUMBER})\s*([A-Za-z]+)")
_UNIT_NAMES = "ms, s, m, h or d"


def parse_duration(text: str) -> float:
    """
    Parse a duration and return it in seconds.

    Accepts a plain number of seconds (``"30"``, ``"1.5"``) or one or more
    number-and-unit parts (``"500ms"``, ``"1h30m"``, ``"90d"``).

    @raise ValueError: for empty, negative or malformed text or an unknown
        unit; the message says what is wrong and what is accepted.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty duration (use e.g. 30s, 15m, 1h or 90d)")
    if stripped.startswith("-"):
        raise ValueError(f"negative duration {text!r} is not allowed")
    if stripped.startswith("+"):
        stripped = stripped[1:]
    if _PLAIN.fullmatch(stripped):
        return _finite(float(stripped), text)

    total = 0.0
    position = 0
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r} (use e.g. 30s, 15m, 1h30m or 90d)"
            )
        number, unit = match.groups()
        if unit not in _UNITS:
            raise ValueError(
                f"invalid duration {text!r}: unknown unit {unit!r} "
                f"(use {_UNIT_NAMES})"
            )
        total += float(number) * _UNITS[unit]
        position = match.end()
    return _finite(total, text)


def _finite(seconds: float, text: str) -> float:
    # A long enough run of digits overflows to inf, which no timer accepts.
    if not math.isfinite(seconds):
        raise ValueError(f"duration {text!r} is too large")
    return seconds


def format_duration(seconds: float) -> str:
    """
    Write ``seconds`` the way a person would configure it (``25s``, ``1h30m``,
    ``90d``); :func:`parse_duration` reads the result back.
    """
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format duration {seconds!r}")
    text = _readable(seconds)
    # The readable form rounds fractions to nanoseconds and adds its parts up
    # in floating point; where that does not give back this very number,
    # plain seconds with every digit do, so that a printed configuration
    # (revenge config check) loads back equal.
    if parse_duration(text) != seconds:
        text = _exact_decimal(seconds) + "s"
    return text


def _readable(seconds: float) -> str:
    if 0 < seconds < 1:
        milliseconds = seconds * 1000
        if milliseconds == int(milliseconds):
            return f"{int(milliseconds)}ms"
    whole = math.floor(seconds)
    fraction = seconds - whole
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{value}{unit}"
        for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"))
        if value
    ]
    if fraction:
        parts.append(f"{_decimal(secs + fraction)}s")
    elif secs or not parts:
        parts.append(f"{secs}s")
    return "".join(parts)


def _decimal(value: float) -> str:
    # Never exponent notation: parse_duration does not read "1e-05s".
    return f"{value:.9f}".rstrip("0").rstrip(".")


def _exact_decimal(value: float) -> str:
    # repr is the shortest text that reads back as the same float; Decimal
    # writes it out without an exponent.
    return format(Decimal(repr(value)), "f")
