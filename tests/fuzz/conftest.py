"""
Property and fuzz tests: hypothesis over pure functions and real files,
schemathesis over a running server.

Every fuzzer counts the inputs it tried; the counts are printed at the end of
the run ("fuzzing: inputs tried") and, when ``REVENGE_FUZZ_REPORT`` names a
file, written there as JSON. ``REVENGE_FUZZ_EXAMPLES=N`` makes every fuzzer
try up to N inputs (per test, per API operation) instead of its small
default, e.g. ``REVENGE_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/fuzz``.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, settings

from .tally import REPORT_VARIABLE, TRIED

# No deadline: a loaded 2-core CI machine must not turn a slow example into a
# failure (timing goals live in bench/, never in tests).
settings.register_profile(
    "revenge",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("revenge")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TRIED:
        return
    terminalreporter.section("fuzzing: inputs tried")
    for name, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{count:8d}  {name}")
    terminalreporter.write_line(f"{sum(TRIED.values()):8d}  in all")
    report = os.environ.get(REPORT_VARIABLE)
    if report:
        with open(report, "w", encoding="utf-8") as file:
            json.dump({"inputs_tried": dict(sorted(TRIED.items()))}, file, indent=2)
            file.write("\n")
