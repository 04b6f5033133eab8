"""How many inputs each fuzzer tries, and how many it did."""

from __future__ import annotations

import os
from collections import Counter

import pytest

EXAMPLES_VARIABLE = "REVENGE_FUZZ_EXAMPLES"
REPORT_VARIABLE = "REVENGE_FUZZ_REPORT"

# Inputs tried, by fuzzer name.
TRIED: Counter[str] = Counter()


def examples(default: int) -> int:
    """How many inputs a fuzzer tries: ``REVENGE_FUZZ_EXAMPLES`` when set, else ``default``."""
    raw = os.environ.get(EXAMPLES_VARIABLE, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"{EXAMPLES_VARIABLE} must be a positive integer, got {raw!r}")
    return int(raw)


def count_input(fuzzer: str) -> None:
    TRIED[fuzzer] += 1
