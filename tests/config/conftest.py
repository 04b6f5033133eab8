"""Fixtures for the configuration tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

HOSTNAME = "node-a"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory with a fixed hostname and no REVENGE_* vars."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(socket, "gethostname", lambda: HOSTNAME)
    for name in list(os.environ):
        if name.startswith("REVENGE_"):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str], str]:
    """Write a YAML file into the test's directory and return its path."""

    def write(text: str, name: str = "config.yaml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write
