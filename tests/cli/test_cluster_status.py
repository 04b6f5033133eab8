"""`revenge cluster status` against a real server."""

from __future__ import annotations

import json
import os
import socket
import sys
import subprocess
from pathlib import Path

from revenge.testing import ServerProcess

REVENGE = str(Path(sys.executable).with_name("revenge"))


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    return subprocess.run(
        [REVENGE, *args], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_status_of_a_standalone_node(tmp_path):
    data_env = {"REVENGE_DATA_DIR": str(tmp_path / "data"), "REVENGE_NODE_ID": "solo"}
    with ServerProcess(tmp_path, env=data_env) as server:
        server.wait_ready()
        added = _run(data_env, "user", "add", "root", "--admin")
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip().splitlines()[-1].split()[-1]

        shown = _run({"REVENGE_API_TOKEN": token}, "cluster", "status", "--url", server.url)
        assert shown.returncode == 0, shown.stderr
        assert "leader:     solo  <- this node" in shown.stdout
        assert token not in shown.stdout

        raw = _run({}, "cluster", "status", "--url", server.url, "--token", token, "--json")
        assert raw.returncode == 0
        status = json.loads(raw.stdout)
        assert status["backend"] == "standalone"
        assert status["is_leader"] is True

        forged = _run({}, "cluster", "status", "--url", server.url, "--token", "rvg_nope")
        assert forged.returncode == 1
        assert forged.stderr.strip().startswith("revenge: ")
        assert "401" in forged.stderr
        assert len(forged.stderr.strip().splitlines()) == 1
        assert server.stop() == 0


def test_without_a_token_or_a_server_it_says_so_in_one_line():
    missing = _run({}, "cluster", "status", "--url", "http://127.0.0.1:9")
    assert missing.returncode == 2
    assert "REVENGE_API_TOKEN" in missing.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = _run({}, "cluster", "status", "--url", f"http://127.0.0.1:{port}", "--token", "x")
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
