"""End to end: a real ``twistd -n revenge`` process on a free loopback port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from revenge.testing import ServerProcess, twistd_executable, wait_until

FIXTURE_PROVIDERS = Path(__file__).parent.parent / "fixtures" / "providers"


def _get(url: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _with_fixture_providers(env: dict[str, str] | None = None) -> dict[str, str]:
    paths = [str(FIXTURE_PROVIDERS), os.environ.get("PYTHONPATH", "")]
    return {**(env or {}), "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def test_serves_health_and_logs_the_request_id_as_json(tmp_path):
    with ServerProcess(tmp_path, env={"REVENGE_NODE_ID": "e2e-node"}) as server:
        status, headers, body = _get(server.url, "/healthz", {"X-Request-ID": "e2e-abc.1"})
        assert status == 200
        assert json.loads(body) == {"status": "ok"}
        assert headers["X-Request-ID"] == "e2e-abc.1"
        line = server.wait_for_log(
            lambda r: r.get("namespace") == "revenge.access" and r.get("request_id") == "e2e-abc.1",
            what="the access log line of the request",
        )
        assert line["route"] == "/healthz"
        assert line["status"] == 200
        assert line["node_id"] == "e2e-node"
        assert {"time", "level", "namespace", "message"} <= set(line)

        status, headers, _ = _get(server.url, "/nowhere")
        assert status == 404
        generated = headers["X-Request-ID"]
        server.wait_for_log(
            lambda r: r.get("namespace") == "revenge.access" and r.get("request_id") == generated,
            what="the 404's access log line",
        )

        server.wait_ready()
        status, _, body = _get(server.url, "/metrics")
        assert status == 200
        assert b'revenge_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
        # Every line on stdout is one JSON object.
        assert server.raw_lines
        assert all(line.startswith("{") for line in server.raw_lines)
        assert server.stop() == 0


def test_sigterm_drains_a_slow_request_and_exits_0(tmp_path):
    marker = tmp_path / "check-started"
    env = _with_fixture_providers(
        {
            "REVENGE_STORAGE_BACKEND": "slow-check",
            "SLOW_CHECK_SECONDS": "1.0",
            "SLOW_CHECK_MARKER": str(marker),
            # The request must still be in flight when the listener closes.
            "REVENGE_SERVER_SHUTDOWN_LINGER": "0s",
        }
    )
    with ServerProcess(tmp_path / "node", env=env) as server:
        url = server.url
        server.wait_ready()
        marker.unlink()
        result: dict[str, object] = {}

        def slow_request() -> None:
            result["response"] = _get(url, "/readyz", {"X-Request-ID": "slow-1"})

        client = threading.Thread(target=slow_request)
        client.start()
        wait_until(marker.exists, 10, "the slow readiness check to start")
        server.signal(signal.SIGTERM)
        client.join(15)
        assert not client.is_alive()
        status, headers, body = result["response"]  # type: ignore[misc]
        assert status == 200, body
        assert headers["X-Request-ID"] == "slow-1"
        assert server.wait(30) == 0
        messages = [r.get("message", "") for r in server.logs()]
        assert any("SIGTERM received" in m for m in messages)
        assert any("waiting up to" in m for m in messages)
        # The listener was closed during the drain: nobody answers any more.
        with pytest.raises(OSError):
            _get(url, "/healthz", timeout=2)


def _get_until_closed(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """
    GET ``path`` on a new connection and read until the server closes it: a
    reset (ConnectionResetError) fails the caller, as does a cut short answer.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: revenge\r\n\r\n".encode())
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    assert int(headers["content-length"]) == len(body), received
    return int(status_line.split()[1]), headers, body


def test_sigterm_keeps_accepting_during_the_linger(tmp_path):
    """
    After SIGTERM the listener goes on accepting for server.shutdown_linger:
    a connection opened then gets a whole answer, says Connection: close and
    is closed in order (no reset), and /readyz is 503; then the port closes.
    """
    env = {"REVENGE_SERVER_SHUTDOWN_LINGER": "3s"}
    with ServerProcess(tmp_path, env=env) as server:
        port = server.port
        server.wait_ready()
        server.signal(signal.SIGTERM)
        server.wait_for_log(
            lambda r: r.get("namespace") == "revenge.web"
            and "still accepting connections" in r.get("message", ""),
            what="the listener to start draining",
        )
        status, headers, body = _get_until_closed(port, "/readyz")
        assert (status, json.loads(body)) == (503, {"status": "draining"})
        assert headers["connection"] == "close"
        status, headers, body = _get_until_closed(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["connection"] == "close"
        assert server.process is not None and server.process.poll() is None
        assert server.wait(30) == 0
        with pytest.raises(OSError):
            _get(f"http://127.0.0.1:{port}", "/healthz", timeout=2)


def test_sigterm_when_idle_exits_0_quickly(tmp_path):
    with ServerProcess(tmp_path) as server:
        assert _get(server.url, "/healthz")[0] == 200
        assert server.stop(timeout=10) == 0


def test_text_log_format(tmp_path):
    with ServerProcess(tmp_path, args=["--log-format", "text"]) as server:
        wait_until(
            lambda: any("http listening on" in line for line in server.raw_lines),
            15,
            "the listening line",
        )
        assert not any(line.startswith("{") for line in server.raw_lines)
        assert server.stop() == 0


def _run_twistd(
    tmp_path: Path,
    env: dict[str, str],
    *args: str,
    twistd_options: tuple[str, ...] = ("--nodaemon", "--pidfile="),
):
    import subprocess

    base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    return subprocess.run(
        [twistd_executable(), *twistd_options, "revenge", *args],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"REVENGE_SERVER_SHUTDOWN_GRACE": "soon"}, (), "server.shutdown_grace"),
        ({}, ("--listen", "tcpp:80"), "server.listen"),
        ({"REVENGE_STORAGE_BACKEND": "floppy"}, (), "installed: local"),
        ({"REVENGE_ELECTION_BACKEND": "raft"}, (), "election.backend"),
    ],
)
def test_bad_config_stops_startup_with_one_line(tmp_path, env, args, expected):
    result = _run_twistd(tmp_path, env, *args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("revenge: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_config_key_in_file(tmp_path):
    (tmp_path / "revenge.yaml").write_text("server:\n  lisen: tcp:1\n")
    result = _run_twistd(tmp_path, {})
    assert result.returncode != 0
    assert "server.lisen" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_broken_providers_name_group_and_choices(tmp_path):
    env = _with_fixture_providers({"REVENGE_STORAGE_BACKEND": "not-a-storage"})
    result = _run_twistd(tmp_path, env)
    assert result.returncode != 0
    assert "does not provide IStorage" in result.stderr
    assert "revenge.storage" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    env = _with_fixture_providers({"REVENGE_STORAGE_BACKEND": "broken"})
    result = _run_twistd(tmp_path, env)
    assert result.returncode != 0
    assert "failed to load" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_port_in_use_is_one_clear_line_and_exit_1(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_twistd(tmp_path, {}, "--listen", f"tcp:{port}:interface=127.0.0.1")
    assert result.returncode == 1
    critical = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if line.startswith("{") and '"critical"' in line
    ]
    assert len(critical) == 1
    assert f"tcp:{port}" in critical[0]["message"]
    assert "Traceback" not in result.stdout + result.stderr


def test_twistd_help_lists_revenge(tmp_path):
    import subprocess

    result = subprocess.run(
        [twistd_executable(), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0
    assert "revenge" in result.stdout
    assert sys.executable  # the same virtualenv runs the server


def test_metrics_on_a_separate_listener(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    env = {"REVENGE_SERVER_METRICS_LISTEN": f"tcp:{metrics_port}:interface=127.0.0.1"}
    with ServerProcess(tmp_path, env=env) as server:
        assert _get(server.url, "/healthz")[0] == 200
        status, _, _ = _get(server.url, "/metrics")
        assert status == 404
        server.wait_for_log(
            lambda r: r.get("name") == "metrics" and r.get("port") == metrics_port,
            what="the metrics listener",
        )
        status, headers, body = _get(f"http://127.0.0.1:{metrics_port}", "/metrics")
        assert status == 200
        assert headers["X-Request-ID"]
        assert b'route="/healthz",status="200"' in body
        assert server.stop() == 0



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("logfile", [None, "logs/revenge.log"])
def test_a_daemon_logs_to_its_logfile(tmp_path, logfile):
    # Without -n twistd detaches and closes stdout: the lines go where
    # twistd's own would (--logfile, else twistd.log), not into nothing.
    import subprocess

    (tmp_path / "logs").mkdir()
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env = {
        **base,
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_SERVER_LISTEN": f"tcp:{port}:interface=127.0.0.1",
        "REVENGE_SERVER_SHUTDOWN_LINGER": "0s",
        # tmp_path may be too long a path for the control socket.
        "REVENGE_SERVER_CONTROL_SOCKET": "",
    }
    args = [twistd_executable(), "--pidfile", str(tmp_path / "twistd.pid")]
    if logfile is not None:
        args.append(f"--logfile={tmp_path / logfile}")
    started = subprocess.run(
        [*args, "revenge"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    log_path = tmp_path / (logfile or "twistd.log")
    pid_path = tmp_path / "twistd.pid"
    wait_until(pid_path.exists, 30, "the daemon's pid file")
    pid = int(pid_path.read_text())
    try:
        wait_until(
            lambda: log_path.exists() and "http listening on" in log_path.read_text(),
            30,
            "the daemon's listening line in its log file",
        )
        status, headers, _ = _get(f"http://127.0.0.1:{port}", "/healthz", {"X-Request-ID": "dm.1"})
        assert status == 200
        wait_until(lambda: '"request_id": "dm.1"' in log_path.read_text(), 30, "its access line")
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
        assert any(r.get("namespace") == "revenge.access" for r in records)
        # SIGUSR1 starts a new file, as it does for twistd's own log.
        os.kill(pid, signal.SIGUSR1)
        rotated = Path(f"{log_path}.1")
        wait_until(rotated.exists, 30, "the rotated log file")
        assert "http listening on" in rotated.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: _process_gone(pid), 30, "the daemon to stop")
    wait_until(lambda: '"message": "stopped"' in log_path.read_text(), 30, "the stop line")


def test_a_daemon_cannot_log_to_stdout(tmp_path):
    result = _run_twistd(tmp_path, {}, twistd_options=("--pidfile=", "--logfile=-"))
    assert result.returncode != 0
    assert "a daemon cannot log to stdout" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _first_admin_hinted(server: ServerProcess) -> bool:
    return any(r.get("message", "").startswith("no administrator yet") for r in server.records)


def test_a_new_installation_says_how_to_make_the_first_admin(tmp_path):
    fresh = tmp_path / "fresh"
    with ServerProcess(fresh) as server:
        server.wait_ready()
        line = server.wait_for_log(
            lambda r: r.get("message", "").startswith("no administrator yet"),
            what="the first-run hint",
        )
        assert "revenge user add NAME --admin" in line["message"]
        assert line["level"] == "info"
        assert server.stop() == 0

    known = tmp_path / "known"
    data_env = {"REVENGE_DATA_DIR": str(known / "data")}
    import subprocess

    base = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    added = subprocess.run(
        [str(Path(sys.executable).with_name("revenge")), "user", "add", "root", "--admin"],
        env={**base, **data_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    with ServerProcess(known, env=data_env) as server:
        server.wait_ready()
        # The hint follows the migration at once; the schema is ready by now.
        server.wait_for_log(
            lambda r: "database schema is current" in r.get("message", ""), what="the schema"
        )
        assert server.stop() == 0
        assert not _first_admin_hinted(server)
