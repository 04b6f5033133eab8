"""
The chart's alerts fire when they should, judged by Prometheus' own
``promtool test rules`` over the rules as the chart renders them.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it);
without it these tests skip and say so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ._chart import FULLNAME, NAMESPACE, render
from .scenarios import SCENARIOS

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)

SELECTOR = f'namespace="{NAMESPACE}",service="{FULLNAME}"'
JOB = "activity_cleanup"


def _rules() -> dict[str, Any]:
    rule = render(SCENARIOS["everything"]).one("PrometheusRule", FULLNAME)
    return {"groups": rule["spec"]["groups"]}


def _annotations(alert: str, **labels: str) -> dict[str, str]:
    """What the rendered rule's annotations say once Prometheus fills them in."""
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                filled = {}
                for name, text in rule["annotations"].items():
                    for label, value in labels.items():
                        text = text.replace(f"{{{{ $labels.{label} }}}}", value)
                    filled[name] = text
                return filled
    raise AssertionError(f"no alert {alert}")


def _promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules()))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
        )
    )
    return subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _leader_series(pod: str, values: str) -> dict[str, str]:
    return {"series": f'revenge_election_is_leader{{{SELECTOR},pod="{pod}"}}', "values": values}


def _success_series(values: str) -> dict[str, str]:
    name = f'revenge_job_last_success_timestamp_seconds{{{SELECTOR},exported_job="{JOB}"}}'
    return {"series": name, "values": values}


def _no_leader(labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "exp_labels": {"severity": "critical", **(labels or {})},
            "exp_annotations": _annotations("RevengeNoLeader"),
        }
    ]


def _job_not_succeeding() -> list[dict[str, Any]]:
    return [
        {
            "exp_labels": {"severity": "warning", "exported_job": JOB},
            "exp_annotations": _annotations("RevengeJobNotSucceeding", exported_job=JOB),
        }
    ]


def _case(series: list[dict[str, str]], alert: str, at: str, firing: list[Any]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": firing}],
    }


def test_the_rules_are_valid_prometheus(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules()))
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("name", "case"),
    [
        (
            "replicas that all follow",
            _case(
                [_leader_series("a", "0x10"), _leader_series("b", "0x10")],
                "RevengeNoLeader",
                "5m",
                _no_leader(),
            ),
        ),
        (
            "no replica scraped at all",
            _case(
                [{"series": 'up{job="other"}', "values": "1x10"}],
                "RevengeNoLeader",
                "5m",
                _no_leader({"namespace": NAMESPACE, "service": FULLNAME}),
            ),
        ),
        (
            "one leader",
            _case(
                [_leader_series("a", "1x10"), _leader_series("b", "0x10")],
                "RevengeNoLeader",
                "5m",
                [],
            ),
        ),
        (
            "a job that succeeds every minute",
            # The gauge is a Unix time; promtool's clock starts at 0.
            _case([_success_series("0+60x60")], "RevengeJobNotSucceeding", "50m", []),
        ),
        (
            "a job whose last success is older than two intervals",
            _case([_success_series("60x60")], "RevengeJobNotSucceeding", "45m", _job_not_succeeding()),
        ),
        (
            "a job that never succeeded",
            _case([_success_series("0x60")], "RevengeJobNotSucceeding", "45m", _job_not_succeeding()),
        ),
        (
            "a job that never succeeded, not yet for two intervals",
            _case([_success_series("0x60")], "RevengeJobNotSucceeding", "20m", []),
        ),
    ],
)
def test_alerts_fire_when_they_matter(tmp_path: Path, name: str, case: dict[str, Any]) -> None:
    result = _promtool(tmp_path, [case])
    assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
