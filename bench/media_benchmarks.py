"""
``media_vs_nginx``: Revenge's file streaming next to nginx's, registered into
``bench/run.py`` with :func:`register`.

One file (1 GiB; 256 MiB with ``--quick``) in one directory, served on
127.0.0.1 by a real ``twistd revenge`` (the directory is its ``movies``
library) and by nginx (Debian's package, installed with apt-get when absent
and possible; ``sendfile on``, one worker, a temporary configuration, run in
the foreground). The same client (curl, writing to /dev/null) fetches from
both in interleaved rounds: per round and server, the whole file and the
middle half of it as a Range request, the order of the servers alternating
between rounds. Before timing, both serve a few ranges that are checked
against the file, and the file is read once through each (page cache warm
for both).

With ``taskset`` and 2 CPUs, both servers run on the first CPU and curl on
the last, so each server has one CPU of its own while it serves.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revenge.testing import ServerProcess, wait_until

MiB = 1024 * 1024
GiB = 1024 * MiB

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]

FILE_NAME = "movie.mkv"


class MediaBenchUnavailable(Exception):
    """nginx or curl is missing and cannot be installed here."""


# Tools.


def _apt_install(package: str) -> None:
    """``apt-get install -y package`` when running as root with apt (after an update if needed)."""
    apt_get = shutil.which("apt-get")
    if apt_get is None or os.geteuid() != 0:
        return
    sys.stderr.write(f"{package} not found; trying apt-get install -y {package}\n")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*arguments: str) -> bool:
        try:
            result = subprocess.run(
                [apt_get, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=600,
                check=False,
                env=environment,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0

    if not apt("install", "-y", "-q", package):
        # The package lists may be missing (a fresh container): update once.
        if apt("update", "-q"):
            apt("install", "-y", "-q", package)


def _find(executable: str) -> str | None:
    # /usr/sbin is not on every PATH, and nginx lives there.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which(executable, path=search)


def ensure_tool(executable: str, package: str) -> str:
    found = _find(executable)
    if found is None:
        _apt_install(package)
        found = _find(executable)
    if found is None:
        raise MediaBenchUnavailable(
            f"{executable} is not installed and could not be installed (apt-get install {package})"
        )
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Pins:
    server: list[str]
    client: list[str]
    description: str


def _pins() -> Pins:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    taskset = shutil.which("taskset")
    if taskset is None or len(cpus) < 2:
        return Pins([], [], "not pinned (needs taskset and 2 CPUs)")
    return Pins(
        [taskset, "-c", str(cpus[0])],
        [taskset, "-c", str(cpus[-1])],
        f"servers on cpu {cpus[0]}, curl on cpu {cpus[-1]} (taskset)",
    )


# The file.


def write_media_file(path: Path, size: int) -> None:
    """``size`` bytes that differ from MiB to MiB (so a misplaced chunk shows)."""
    seed = os.urandom(MiB)
    with path.open("wb") as file:
        for index in range(size // MiB):
            # Cheap variation per MiB: the index at the start of each.
            file.write(index.to_bytes(8, "big") + seed[8:])
        file.write(seed[: size % MiB])


def _expected(path: Path, first: int, last: int) -> bytes:
    with path.open("rb") as file:
        file.seek(first)
        return file.read(last - first + 1)


# The servers.


class _PinnedServer(ServerProcess):
    def __init__(self, workdir: Path, env: dict[str, str], prefix: Sequence[str]) -> None:
        super().__init__(workdir, env=env)
        self.prefix = list(prefix)

    @property
    def command(self) -> list[str]:
        return [*self.prefix, *super().command]


@dataclass
class Served:
    name: str
    url: str
    headers: dict[str, str]
    pid: int


def _add_user(workdir: Path) -> str:
    revenge = Path(sys.executable).with_name("revenge")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENGE_")}
    env["REVENGE_DATA_DIR"] = str(workdir / "data")
    result = subprocess.run(
        [str(revenge), "user", "add", "bench"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"revenge user add failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def running_revenge(media: Path, workdir: Path, prefix: Sequence[str]) -> Iterator[Served]:
    # stdout goes through a pipe: only a few requests are made, so a few lines.
    server = _PinnedServer(workdir, {"REVENGE_MEDIA_MOVIE_PATHS": str(media)}, prefix)
    with server:
        server.wait_ready(60)
        token = _add_user(workdir)
        assert server.process is not None
        yield Served(
            "revenge",
            f"{server.url}/media/movies/{FILE_NAME}",
            {"Authorization": f"Bearer {token}"},
            server.process.pid,
        )
        server.stop(timeout=30)


NGINX_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {media};
    }}
}}
"""


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_nginx(
    nginx: str, media: Path, workdir: Path, prefix: Sequence[str]
) -> Iterator[Served]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = workdir / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(workdir=workdir, port=port, media=media))
    process = subprocess.Popen(
        # -e: the error log before the configuration is read (not /var/log/nginx).
        [*prefix, nginx, "-p", str(workdir), "-e", str(workdir / "startup.log"), "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def started() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {process.stderr.read() if process.stderr else ''}")
            return _answers(port)

        wait_until(started, 30, "nginx to listen")
        yield Served("nginx", f"http://127.0.0.1:{port}/{FILE_NAME}", {}, process.pid)
    finally:
        process.send_signal(signal.SIGQUIT)  # nginx's graceful stop
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The client.


@dataclass(frozen=True)
class Fetched:
    status: int
    size: int
    seconds: float


def fetch(
    curl: str, prefix: Sequence[str], served: Served, byte_range: tuple[int, int] | None
) -> Fetched:
    command = [*prefix, curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for name, value in served.headers.items():
        command += ["-H", f"{name}: {value}"]
    if byte_range is not None:
        command += ["-r", f"{byte_range[0]}-{byte_range[1]}"]
    command.append(served.url)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"curl failed ({completed.returncode}) on {served.name}: {completed.stderr}")
    status, size, seconds = completed.stdout.split()
    return Fetched(int(status), int(size), float(seconds))


def _check_content(served: Served, path: Path, size: int) -> None:
    """A few ranges of what ``served`` sends, compared with the file itself."""
    host, _, rest = served.url.removeprefix("http://").partition("/")
    address, _, port = host.partition(":")
    for first, last in [(0, 65535), (size // 2 - 12345, size // 2 + MiB), (size - 1000, size - 1)]:
        connection = http.client.HTTPConnection(address, int(port), timeout=30)
        try:
            connection.request(
                "GET", "/" + rest, headers={**served.headers, "Range": f"bytes={first}-{last}"}
            )
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 206 or body != _expected(path, first, last):
            digest = hashlib.sha256(body).hexdigest()[:12]
            raise RuntimeError(
                f"{served.name} sent the wrong bytes for {first}-{last}: "
                f"status {response.status}, {len(body)} bytes, sha256 {digest}"
            )


def media_vs_nginx(quick: bool) -> Figures:
    from revenge.media import DEFAULT_CHUNK_SIZE

    size, rounds = (256 * MiB, 2) if quick else (GiB, 5)
    middle = (size // 4, size // 4 * 3 - 1)
    nginx = ensure_tool("nginx", "nginx")
    curl = ensure_tool("curl", "curl")
    pins = _pins()
    with tempfile.TemporaryDirectory(prefix="revenge-bench-media-") as tmp:
        media = Path(tmp) / "media"
        media.mkdir()
        path = media / FILE_NAME
        write_media_file(path, size)
        with running_revenge(media, Path(tmp) / "revenge", pins.server) as revenge, running_nginx(
            nginx, media, Path(tmp) / "nginx", pins.server
        ) as nginx_served:
            servers = [revenge, nginx_served]
            for served in servers:
                _check_content(served, path, size)
                fetch(curl, pins.client, served, None)  # warm: page cache, code paths
            throughput: dict[str, list[float]] = {s.name: [] for s in servers}
            whole: dict[str, list[float]] = {s.name: [] for s in servers}
            ranged: dict[str, list[float]] = {s.name: [] for s in servers}
            cpu: dict[str, float] = {s.name: 0.0 for s in servers}
            served_bytes: dict[str, int] = {s.name: 0 for s in servers}
            for round_number in range(rounds):
                order = servers if round_number % 2 == 0 else list(reversed(servers))
                for served in order:
                    cpu_before = _cpu_seconds(served.pid)
                    full = fetch(curl, pins.client, served, None)
                    part = fetch(curl, pins.client, served, middle)
                    cpu[served.name] += _cpu_seconds(served.pid) - cpu_before
                    if (full.status, full.size) != (200, size):
                        raise RuntimeError(f"{served.name}: whole file gave {full}")
                    if (part.status, part.size) != (206, middle[1] - middle[0] + 1):
                        raise RuntimeError(f"{served.name}: range gave {part}")
                    served_bytes[served.name] += full.size + part.size
                    throughput[served.name].append(
                        (full.size + part.size) / MiB / (full.seconds + part.seconds)
                    )
                    whole[served.name].append(full.size / MiB / full.seconds)
                    ranged[served.name].append(part.size / MiB / part.seconds)
    ratios = [mine / theirs for mine, theirs in zip(throughput["revenge"], throughput["nginx"])]

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    return {
        "ratio": round(statistics.median(ratios), 3),
        "revenge_mib_s": median(throughput["revenge"]),
        "nginx_mib_s": median(throughput["nginx"]),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "revenge_full_mib_s": median(whole["revenge"]),
        "nginx_full_mib_s": median(whole["nginx"]),
        "revenge_range_mib_s": median(ranged["revenge"]),
        "nginx_range_mib_s": median(ranged["nginx"]),
        # Server CPU per GiB sent: how much of its CPU each needed for the same work.
        "revenge_cpu_s_per_gib": round(cpu["revenge"] / (served_bytes["revenge"] / GiB), 3),
        "nginx_cpu_s_per_gib": round(cpu["nginx"] / (served_bytes["nginx"] / GiB), 3),
        "file_mib": size // MiB,
        "range_mib": (middle[1] - middle[0] + 1) // MiB,
        "rounds": rounds,
        "chunk_kib": DEFAULT_CHUNK_SIZE // 1024,
        "client": "curl",
        "pinning": pins.description,
    }


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add ``media_vs_nginx`` to ``bench/run.py``'s registry."""

    def run(quick: bool) -> Figures:
        try:
            return media_vs_nginx(quick)
        except MediaBenchUnavailable as error:
            raise skipped(str(error)) from error

    benchmark(
        "media_vs_nginx",
        target="ratio >= 0.50",
        met=lambda figures: bool(figures["ratio"] >= 0.50),
    )(run)


if __name__ == "__main__":
    # Quick look without bench/run.py: python bench/media_benchmarks.py [--quick]
    import json

    print(json.dumps(media_vs_nginx("--quick" in sys.argv)))
