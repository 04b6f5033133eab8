"""`revenge cluster status` against a real server."""

from __future__ import annotations

import json
import os
import socket
import sys
import stat
import subprocess
import tempfile
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


def test_on_the_node_itself_no_token_is_needed():
    # `docker compose exec revenge-1 revenge cluster status` as the docs
    # write it: the node's own environment, no token, no --url. A short
    # data directory: a Unix socket's path may have at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="rvg-", dir="/tmp") as short:
        data = Path(short) / "data"
        node_env = {"REVENGE_DATA_DIR": str(data), "REVENGE_NODE_ID": "solo"}
        with ServerProcess(
            Path(short), env={**node_env, "REVENGE_SERVER_CONTROL_SOCKET": str(data / "revenge.sock")}
        ) as server:
            server.wait_ready()
            shown = _run(node_env, "cluster", "status")
            assert shown.returncode == 0, shown.stderr
            assert "leader:     solo  <- this node" in shown.stdout
            socket_path = data / "revenge.sock"
            # Only this node's user may ask.
            assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
            raw = _run(node_env, "cluster", "status", "--json")
            assert json.loads(raw.stdout)["node_id"] == "solo"
            # What reaches the HTTP port still needs the token.
            refused = _run({}, "cluster", "status", "--url", server.url)
            assert refused.returncode == 2 and "REVENGE_API_TOKEN" in refused.stderr
            assert server.stop() == 0
        # A node that is not running leaves nothing to ask: one line, exit 2.
        gone = _run(node_env, "cluster", "status")
        assert gone.returncode == 2
        assert gone.stderr.startswith("revenge: no control socket at ")
        assert len(gone.stderr.strip().splitlines()) == 1
