"""The image: slim Python, a regular install, non-root, twistd in front."""

from __future__ import annotations

import json
import re
from pathlib import Path

from revenge.config import config_keys

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def _all(word: str) -> list[str]:
    return [rest for w, rest in _instructions() if w == word]


def test_slim_python_base():
    assert _all("FROM") == ["python:3.11-slim"]


def test_installs_the_project_not_editable_and_refreshes_the_plugin_cache():
    runs = " ; ".join(_all("RUN"))
    assert re.search(r"\bpip install \.(\s|$)", runs)
    assert "-e " not in runs and "--editable" not in runs
    assert "getPlugins(IPlugin)" in runs
    # The install step comes after the sources are copied in.
    words = [w for w, _ in _instructions()]
    assert max(i for i, w in enumerate(words) if w == "COPY") < next(
        i for i, (w, rest) in enumerate(_instructions()) if w == "RUN" and "pip install" in rest)


def test_runs_twistd_as_a_non_root_user():
    users = _all("USER")
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # The USER comes before the entrypoint and after the last RUN.
    words = [w for w, _ in _instructions()]
    assert max(i for i, w in enumerate(words) if w == "RUN") < max(
        i for i, w in enumerate(words) if w == "USER")
    (entrypoint,) = _all("ENTRYPOINT")
    (cmd,) = _all("CMD")
    argv = json.loads(entrypoint) + json.loads(cmd)
    assert argv[0] == "twistd"
    assert argv[1] in {"-n", "--nodaemon"}
    assert argv[2:4] == ["--pidfile=", "revenge"]


def test_exposes_http_and_raft_and_checks_health():
    exposed = " ".join(_all("EXPOSE")).split()
    assert {"8096", "7000"} <= set(exposed)
    (health,) = _all("HEALTHCHECK")
    assert "/healthz" in health


def test_environment_uses_real_config_keys():
    names = set(re.findall(r"\bREVENGE_[A-Z0-9_]+", (ROOT / "Dockerfile").read_text()))
    assert names <= {env for _, env in config_keys()}


def test_dockerignore_keeps_the_context_small():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", ".env"} <= ignored
    # And keeps what the build copies.
    for needed in ("revenge", "twisted", "setup.cfg", "pyproject.toml", "README.md"):
        assert needed not in ignored
