"""Durations: parse_duration and format_duration."""

from __future__ import annotations

import pytest

from revenge.config._duration import format_duration, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("90d", 90 * 86400.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("1h 30m", 5400.0),
        ("30", 30.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("1.5s", 1.5),
        ("1.5", 1.5),
        (".5s", 0.5),
        ("2.5h", 9000.0),
        ("  25s  ", 25.0),
        ("+10s", 10.0),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-5s", "negative duration '-5s'"),
        ("-1", "negative duration"),
        ("5y", "unknown unit 'y' (use ms, s, m, h or d)"),
        ("5S", "unknown unit 'S'"),
        ("1hour", "unknown unit 'hour'"),
        ("abc", "invalid duration 'abc'"),
        ("s", "invalid duration 's'"),
        ("1h30", "invalid duration '1h30'"),
        ("1..5s", "invalid duration"),
        ("1e3s", "unknown unit 'e'"),
        ("inf", "invalid duration 'inf'"),
        ("nan", "invalid duration 'nan'"),
        ("9" * 400, "too large"),
        ("5s!", "invalid duration"),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (25, "25s"),
        (60, "1m"),
        (3600, "1h"),
        (5400, "1h30m"),
        (90 * 86400, "90d"),
        (86400 + 1, "1d1s"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (90.25, "1m30.25s"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
def test_format_rejects(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)
