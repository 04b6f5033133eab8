"""
A real ``twistd -n revenge`` process for tests and benchmarks.

It runs in its own working directory with its own environment, its JSON log
lines are collected as they arrive, and every wait has a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from revenge.testing._waiting import wait_until

LogRecord = dict[str, Any]


def fetch_cluster_status(port: int, token: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """A node's ``GET /api/v1/cluster`` (admin token), or None when it does not answer 200 in time."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.request(
                "GET", "/api/v1/cluster", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
    except (OSError, http.client.HTTPException, TimeoutError):
        return None
    if response.status != 200:
        return None
    status: dict[str, Any] = json.loads(body)
    return status


def twistd_executable() -> str:
    """The ``twistd`` beside the running interpreter (same virtualenv), else on PATH."""
    beside = Path(sys.executable).with_name("twistd")
    if beside.exists():
        return str(beside)
    found = shutil.which("twistd")
    if found is None:
        raise RuntimeError("twistd is not installed in this environment")
    return found


def add_user_with_cli(
    workdir: Path, env: Mapping[str, str], name: str, admin: bool = False
) -> str:
    """
    ``revenge user add`` as an operator runs it, with a node's environment
    (before or beside the node itself); returns the new user's token. Run
    one at a time on a new database: each would migrate it.
    """
    created = subprocess.run(
        [sys.executable, "-m", "revenge.cli", "user", "add", name]
        + (["--admin"] if admin else []),
        env={**ServerProcess(workdir).env, **env},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def put_avatar(
    url: str, name: str, token: str, image: bytes, content_type: str = "image/png"
) -> None:
    """Upload ``image`` as ``name``'s avatar to the node at ``url``; it must be a 201."""
    upload = urllib.request.Request(
        f"{url}/api/v1/users/{name}/avatar",
        data=image,
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(upload, timeout=30) as response:
        assert response.status == 201, response.status


def write_sample_media_library(root: Path) -> None:
    """
    A small movie library for fuzzing a node: a folder with a file, an image,
    an empty file and a dot-file that must never be served or listed.
    """
    (root / "Film (2001)").mkdir(parents=True)
    (root / "Film (2001)" / "film.mkv").write_bytes(bytes(range(256)) * 40)
    (root / "poster.jpg").write_bytes(b"\xff\xd8\xff" + b"j" * 500)
    (root / "empty.srt").write_bytes(b"")
    (root / ".hidden").write_text("a dot-file: never served or listed\n")


class ServerProcess:
    """
    ``twistd --nodaemon --pidfile= revenge`` with ``--listen tcp:0:interface=127.0.0.1``
    unless ``args`` says otherwise; :attr:`port` is read from the log.
    ``command_prefix`` goes in front of the twistd command, e.g. a wrapper
    that puts the process in a cgroup (:attr:`NodeCgroup.command_prefix`);
    it must ``exec`` the command so that signals reach twistd itself.
    """

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        twistd_args: Sequence[str] = (),
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
        base_env.setdefault("REVENGE_DATA_DIR", str(self.workdir / "data"))
        # Most tests stop their node with SIGTERM and wait for it; the
        # listener's linger (server.shutdown_linger, 2 s) would add its real
        # seconds to each. Tests of shutdown, and SharedDatabaseCluster's
        # rolling restarts, set it themselves.
        base_env["REVENGE_SERVER_SHUTDOWN_LINGER"] = "0s"
        # A test's working directory is often too long a path for a Unix
        # socket (107 bytes); the tests of the control socket give it one.
        base_env["REVENGE_SERVER_CONTROL_SOCKET"] = ""
        self.env = {**base_env, **(env or {})}
        self.args = list(args)
        if not any(a == "--listen" or a.startswith("--listen=") for a in self.args):
            self.args += ["--listen", "tcp:0:interface=127.0.0.1"]
        self.twistd_args = list(twistd_args)
        self.command_prefix = list(command_prefix)
        self.records: list[LogRecord] = []
        self.raw_lines: list[str] = []
        self.stderr_text = ""
        self._lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []

    @property
    def command(self) -> list[str]:
        return [
            *self.command_prefix,
            twistd_executable(),
            "--nodaemon",
            "--pidfile=",
            *self.twistd_args,
            "revenge",
            *self.args,
        ]

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self.command,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        out = threading.Thread(target=self._read_stdout, args=(self.process.stdout,), daemon=True)
        err = threading.Thread(target=self._read_stderr, args=(self.process.stderr,), daemon=True)
        self._readers = [out, err]
        out.start()
        err.start()
        return self

    def _read_stdout(self, stream: Any) -> None:
        for line in stream:
            line = line.rstrip("\n")
            with self._lock:
                self.raw_lines.append(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    self.records.append(record)

    def _read_stderr(self, stream: Any) -> None:
        for chunk in stream:
            with self._lock:
                self.stderr_text += chunk

    def logs(self) -> list[LogRecord]:
        with self._lock:
            return list(self.records)

    def find_log(self, predicate: Callable[[LogRecord], bool]) -> LogRecord | None:
        for record in self.logs():
            if predicate(record):
                return record
        return None

    def wait_for_log(
        self, predicate: Callable[[LogRecord], bool], timeout: float = 15.0, what: str = "a log line"
    ) -> LogRecord:
        def found() -> LogRecord | None:
            if self.process is not None and self.process.poll() is not None:
                record = self.find_log(predicate)
                if record is None:
                    raise RuntimeError(
                        f"server exited with {self.process.returncode} before {what}; "
                        f"stderr: {self.stderr_text[-2000:]!r}; log tail: {self.raw_lines[-20:]!r}"
                    )
                return record
            return self.find_log(predicate)

        result: LogRecord = wait_until(found, timeout, what)
        return result

    @property
    def port(self) -> int:
        record = self.wait_for_log(
            lambda r: r.get("namespace") == "revenge.web"
            and r.get("name") == "http"
            and isinstance(r.get("port"), int),
            what="the HTTP listener's port",
        )
        port: int = record["port"]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """
        The value of one sample of ``GET /metrics`` (a counter's ``name``
        without ``_total`` works too), or None when the process does not
        answer or has no such sample.
        """
        from prometheus_client.parser import text_string_to_metric_families

        if self.process is None or self.process.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
                text = response.read().decode()
        except (OSError, http.client.HTTPException):
            return None
        wanted = dict(labels or {})
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (name, name + "_total") and sample.labels == wanted:
                    return float(sample.value)
        return None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``GET /readyz`` answers 200 (startup work such as migrations done)."""
        url = self.url + "/readyz"

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode} before it was ready; "
                    f"stderr: {self.stderr_text[-2000:]!r}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(ready, timeout, f"{url} to answer 200", interval=0.05)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def kill(self, timeout: float = 30.0) -> None:
        """SIGCONT (it may be stopped), then SIGKILL and reap, if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.wait(timeout)

    def __exit__(self, *exc: object) -> None:
        self.kill(10)
