"""
Revenge's benchmarks: ``python bench/run.py [--quick] [--json] [--results PATH] [NAME ...]``.

Each benchmark is a function ``(quick: bool) -> dict of figures`` registered
with :func:`benchmark`, which also states its target. Without names every
registered benchmark runs. ``--json`` writes one JSON object per benchmark per
line; otherwise a table. ``--results PATH`` also writes a markdown table (e.g.
``bench/RESULTS.md``) and, beside it, ``failover.png``: the failover
benchmark's runs (matplotlib, the ``bench`` extra). The exit status is 1
when a benchmark fails to run, not when it misses its target: targets are
reported, never enforced here.

Everything talks to real processes on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revenge.testing import ServerProcess, wait_until

BENCH_DIR = Path(__file__).resolve().parent

Figures = dict[str, Any]


# The plot of the failover benchmark's runs, written beside --results.
FAILOVER_PLOT = "failover.png"


class Skipped(Exception):
    """Raised by a benchmark that cannot run here (a missing tool or service)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[bool], Figures]
    target: str
    met: Callable[[Figures], bool]


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(
    name: str, target: str, met: Callable[[Figures], bool]
) -> Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]:
    """Register ``function(quick) -> figures`` under ``name`` with its target."""

    def register(function: Callable[[bool], Figures]) -> Callable[[bool], Figures]:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} registered twice")
        BENCHMARKS[name] = Benchmark(name, function, target, met)
        return function

    return register


@dataclass
class Options:
    """Settings from the command line that benchmarks read."""

    load_tool: str = "auto"


OPTIONS = Options()


# The machine, for every figure we print.


@dataclass(frozen=True)
class Machine:
    arch: str
    cpu_model: str
    cores: int

    def describe(self) -> str:
        return f"{self.arch}, {self.cpu_model}, {self.cores} cores"


def machine() -> Machine:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
                break
    return Machine(platform.machine() or "unknown", model, os.cpu_count() or 1)


# CPU pinning on a small machine: servers on one core, load on another.


@dataclass(frozen=True)
class Pinning:
    server: list[str]
    load: list[str]
    description: str


def pinning() -> Pinning:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    taskset = shutil.which("taskset")
    if taskset is None or len(cpus) < 2:
        return Pinning([], [], "not pinned (needs taskset and 2 CPUs)")
    server_cpu, load_cpu = cpus[0], cpus[-1]
    return Pinning(
        [taskset, "-c", str(server_cpu)],
        [taskset, "-c", str(load_cpu)],
        f"servers on cpu {server_cpu}, load on cpu {load_cpu} (taskset)",
    )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (all its threads), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may contain spaces; the fields after ")" do not.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def http_get(url: str, timeout: float = 2.0) -> tuple[int, Mapping[str, str], bytes]:
    parts = url.removeprefix("http://").split("/", 1)
    host, _, port = parts[0].partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        connection.request("GET", "/" + (parts[1] if len(parts) > 1 else ""))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# Servers whose stdout goes to a file: under load the access log would cost
# the benchmark process a JSON parse per request if it went through a pipe.


class FileLoggedServer(ServerProcess):
    """A :class:`ServerProcess` (or any command) logging to a file, optionally pinned."""

    def __init__(
        self,
        workdir: Path,
        prefix: Sequence[str] = (),
        command: Sequence[str] | None = None,
    ) -> None:
        super().__init__(workdir)
        self.prefix = list(prefix)
        self.custom_command = list(command) if command is not None else None
        self.log_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"

    @property
    def command(self) -> list[str]:
        base = self.custom_command if self.custom_command is not None else super().command
        return [*self.prefix, *base]

    def start(self) -> FileLoggedServer:
        with self.log_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
            )
        return self

    def logs(self) -> list[dict[str, Any]]:
        # Only read while waiting for startup lines, when the file is short.
        self.stderr_text = self.stderr_path.read_text(errors="replace")
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    @property
    def port(self) -> int:
        record = self.wait_for_log(
            lambda r: isinstance(r.get("port"), int)
            and r.get("namespace") in ("revenge.web", "bench.baseline"),
            what="the HTTP listener's port",
        )
        port: int = record["port"]
        return port

    def count_lines(self, needle: bytes) -> int:
        count = 0
        with self.log_path.open("rb") as log:
            for line in log:
                if needle in line:
                    count += 1
        return count


# Load generation: wrk when present (or installable), else bench/_load.py.


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found is not None or OPTIONS.load_tool == "python":
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return None
    sys.stderr.write("wrk not found; trying apt-get install -y wrk\n")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [apt, "install", "-y", "-q", "wrk"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return shutil.which("wrk")


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    rps: float
    load_cpu_s: float


_WRK_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}


def _wrk_load(wrk: str, prefix: Sequence[str], url: str, connections: int, seconds: int) -> LoadResult:
    command = [*prefix, wrk, "-t1", f"-c{connections}", f"-d{seconds}s", url]
    cpu_before = children_cpu_seconds()
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    cpu = children_cpu_seconds() - cpu_before
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    out = completed.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output: {out!r}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    duration = float(total.group(2)) / (1000.0 if total.group(3) == "ms" else 1.0)
    return LoadResult(int(total.group(1)), errors, duration, float(rps.group(1)), cpu)


def _python_load(prefix: Sequence[str], url: str, connections: int, seconds: int) -> LoadResult:
    command = [
        *prefix,
        sys.executable,
        str(BENCH_DIR / "_load.py"),
        url,
        "--connections",
        str(connections),
        "--duration",
        str(seconds),
    ]
    cpu_before = children_cpu_seconds()
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    cpu = children_cpu_seconds() - cpu_before
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed: {completed.stderr.strip()[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return LoadResult(
        int(result["requests"]),
        int(result["errors"]),
        float(result["seconds"]),
        float(result["rps"]),
        cpu,
    )


# Benchmarks.


@contextlib.contextmanager
def _running(server: FileLoggedServer) -> Iterator[FileLoggedServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout=30)


def _wait_healthy(url: str) -> None:
    def healthy() -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return http_get(url + "/healthz")[0] == 200
        return False

    wait_until(healthy, 30, f"{url}/healthz to answer 200")


@benchmark(
    "request_id_overhead",
    target="ratio >= 0.90",
    met=lambda figures: bool(figures["ratio"] >= 0.90),
)
def request_id_overhead(quick: bool) -> Figures:
    """
    Requests/s of ``GET /healthz`` through RevengeSite (request id, access
    log line, metrics) in a real ``twistd revenge``, over the same Klein app
    served by a plain Site; rounds interleaved A B A B, median of the ratios.
    """
    rounds, seconds, warmup = (2, 3, 1) if quick else (5, 10, 2)
    connections = 16
    pins = pinning()
    wrk = ensure_wrk() if OPTIONS.load_tool in ("auto", "wrk") else None
    if OPTIONS.load_tool == "wrk" and wrk is None:
        raise RuntimeError("--load-tool wrk: wrk is not installed and could not be installed")
    tool = "wrk" if wrk is not None else "python"

    def load(url: str, duration: int) -> LoadResult:
        if wrk is not None:
            return _wrk_load(wrk, pins.load, url, connections, duration)
        return _python_load(pins.load, url, connections, duration)

    with tempfile.TemporaryDirectory(prefix="revenge-bench-") as tmp:
        wrapped = FileLoggedServer(Path(tmp) / "wrapped", prefix=pins.server)
        baseline = FileLoggedServer(
            Path(tmp) / "baseline",
            prefix=pins.server,
            command=[sys.executable, str(BENCH_DIR / "baseline_server.py")],
        )
        with _running(wrapped), _running(baseline):
            servers = {"wrapped": wrapped, "baseline": baseline}
            urls = {name: server.url for name, server in servers.items()}
            for url in urls.values():
                _wait_healthy(url)
            # Make sure each side is what it claims: only the wrapper adds the id.
            if "X-Request-ID".lower() not in {k.lower() for k in http_get(urls["wrapped"] + "/healthz")[1]}:
                raise RuntimeError("the wrapped server did not send X-Request-ID")
            if "X-Request-ID".lower() in {k.lower() for k in http_get(urls["baseline"] + "/healthz")[1]}:
                raise RuntimeError("the baseline server sent X-Request-ID")

            for name in servers:
                load(urls[name] + "/healthz", warmup)

            rps: dict[str, list[float]] = {name: [] for name in servers}
            server_cpu: dict[str, list[float]] = {name: [] for name in servers}
            load_cpu: list[float] = []
            errors = 0
            wrapped_requests = 0
            for _ in range(rounds):
                for name, server in servers.items():
                    assert server.process is not None
                    cpu_before = process_cpu_seconds(server.process.pid)
                    result = load(urls[name] + "/healthz", seconds)
                    cpu_used = process_cpu_seconds(server.process.pid) - cpu_before
                    rps[name].append(result.rps)
                    server_cpu[name].append(cpu_used / result.seconds)
                    load_cpu.append(result.load_cpu_s / result.seconds)
                    errors += result.errors
                    if name == "wrapped":
                        wrapped_requests += result.requests
        # The access log is part of the cost measured: check it was written.
        access_lines = wrapped.count_lines(b'"revenge.access"')
        if access_lines < wrapped_requests:
            raise RuntimeError(
                f"the wrapped server logged {access_lines} access lines "
                f"for {wrapped_requests} requests"
            )

    ratios = [w / b for w, b in zip(rps["wrapped"], rps["baseline"])]
    return {
        "ratio": round(statistics.median(ratios), 3),
        "wrapped_rps": round(statistics.median(rps["wrapped"]), 1),
        "baseline_rps": round(statistics.median(rps["baseline"]), 1),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "rounds": rounds,
        "round_s": seconds,
        "connections": connections,
        "tool": tool,
        "errors": errors,
        # Near 1.0 for the servers and well below for the load generator
        # shows the servers, not the generator, were the bottleneck.
        "server_cpu": round(min(min(v) for v in server_cpu.values()), 2),
        "load_cpu": round(max(load_cpu), 2),
        "pinning": pins.description,
    }


@benchmark(
    "startup_to_ready",
    target="p50_s <= 1.5",
    met=lambda figures: bool(figures["p50_s"] <= 1.5),
)
def startup_to_ready(quick: bool) -> Figures:
    """Seconds from spawning ``twistd -n revenge`` (embedded defaults) to its first /readyz 200."""
    runs = 3 if quick else 10
    durations: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="revenge-bench-") as tmp:
            server = ServerProcess(Path(tmp))
            durations.append(_time_to_ready(server))
    return {
        "p50_s": round(statistics.median(durations), 3),
        "max_s": round(max(durations), 3),
        "min_s": round(min(durations), 3),
        "runs": runs,
    }


def _time_to_ready(server: ServerProcess, timeout: float = 30.0) -> float:
    started = time.monotonic()
    server.start()
    try:
        port: int | None = None
        while True:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise TimeoutError(f"/readyz not 200 after {timeout}s")
            assert server.process is not None
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {server.process.returncode}: "
                    f"{server.stderr_text[-2000:]!r}"
                )
            if port is None:
                record = server.find_log(
                    lambda r: r.get("namespace") == "revenge.web"
                    and r.get("name") == "http"
                    and isinstance(r.get("port"), int)
                )
                if record is not None:
                    port = int(record["port"])
            if port is not None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if http_get(f"http://127.0.0.1:{port}/readyz", timeout=1.0)[0] == 200:
                        return time.monotonic() - started
            time.sleep(0.01)
    finally:
        server.stop(timeout=30)


# Output.


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _figures_text(record: Mapping[str, Any]) -> str:
    # Per-run samples (lists) go to --json and the plot, not into the table.
    skip = {"name", "target", "met", "machine", "date"}
    return ", ".join(
        f"{k}={_format_value(v)}"
        for k, v in record.items()
        if k not in skip and not isinstance(v, list)
    )


def _met_text(record: Mapping[str, Any]) -> str:
    if "error" in record:
        return "ERROR"
    if "skipped" in record:
        return "skipped"
    return "yes" if record.get("met") else "NO"


def render_table(records: Sequence[Mapping[str, Any]]) -> str:
    rows = [("benchmark", "target", "met", "figures")]
    rows += [
        (str(r["name"]), str(r.get("target", "")), _met_text(r), _figures_text(r)) for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def render_markdown(
    records: Sequence[Mapping[str, Any]],
    host: Machine,
    date: str,
    plot: str | None = None,
    plot_missing: str | None = None,
) -> str:
    """The RESULTS.md table; ``plot`` is the failover PNG's file name beside it, if written."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py --results`; see bench/README.md for what each figure means.",
        "",
        f"- date: {date}",
        f"- machine: `{host.arch}`",
        f"- CPU: {host.cpu_model}",
        f"- cores: {host.cores}",
        "",
        "| benchmark | figures | target | met | run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(
            f"| {cell(str(r['name']))} | {cell(_figures_text(r))} | "
            f"{cell(str(r.get('target', '')))} | {_met_text(r)} | "
            f"{cell(str(r.get('date', ''))[:16])} |"
        )
    if plot is not None:
        lines += ["", "## Failover distribution", "", f"![failover distribution]({plot})"]
    elif plot_missing is not None:
        lines += ["", f"No failover plot: {plot_missing}."]
    return "\n".join(lines) + "\n"


def merge_results(path: Path, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The records kept at ``path`` (JSON, beside the markdown) with these
    replacing those of the same benchmarks; written back, in registry order.
    A long benchmark (the soak) can then be run on its own without losing
    the others' rows; each row says when it ran.
    """
    kept: dict[str, dict[str, Any]] = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            for record in json.loads(path.read_text()):
                if isinstance(record, dict) and isinstance(record.get("name"), str):
                    kept[record["name"]] = record
    for record in records:
        kept[str(record["name"])] = record
    order = list(BENCHMARKS)
    merged = sorted(
        kept.values(),
        key=lambda r: order.index(r["name"]) if r["name"] in order else len(order),
    )
    path.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def run_one(bench: Benchmark, quick: bool, host: Machine) -> dict[str, Any]:
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record: dict[str, Any] = {"name": bench.name}
    try:
        figures = bench.run(quick)
    except Skipped as skipped:
        record["skipped"] = str(skipped)
        record["target"] = bench.target
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        record["error"] = f"{type(error).__name__}: {error}"
        record["target"] = bench.target
    else:
        record.update(figures)
        record["target"] = bench.target
        record["met"] = bench.met(figures)
    record["quick"] = quick
    record["machine"] = host.describe()
    record["date"] = date
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Revenge's benchmarks.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default all)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--results", metavar="PATH", help="also write a markdown table here")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--load-tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk (installed with apt-get if absent and possible), "
        "bench/_load.py, or auto (wrk, else python)",
    )
    args = parser.parse_args(argv)
    OPTIONS.load_tool = args.load_tool

    if args.list:
        for bench in BENCHMARKS.values():
            sys.stdout.write(f"{bench.name}  (target {bench.target})\n")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    selected = [BENCHMARKS[name] for name in (args.names or list(BENCHMARKS))]

    host = machine()
    records = []
    for bench in selected:
        if not args.json:
            sys.stderr.write(f"running {bench.name}{' (quick)' if args.quick else ''}...\n")
        record = run_one(bench, args.quick, host)
        records.append(record)
        if args.json:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
    if not args.json:
        sys.stdout.write(f"machine: {host.describe()}\n")
        sys.stdout.write(render_table(records))
    if args.results:
        date = records[0]["date"] if records else ""
        results = Path(args.results)
        merged = merge_results(results.with_suffix(".json"), records)
        plot_path = results.with_name(FAILOVER_PLOT)
        missing = _plot.write_failover_plot(merged, plot_path)
        results.write_text(
            render_markdown(
                merged,
                host,
                date,
                plot=plot_path.name if missing is None else None,
                plot_missing=missing,
            )
        )
    return 1 if any("error" in r for r in records) else 0


# Benchmarks kept in their own modules (bench/ is on sys.path when run as a script).
import _plot  # noqa: E402
import election_benchmarks  # noqa: E402
import job_benchmarks  # noqa: E402
import media_benchmarks  # noqa: E402
import partition_benchmarks  # noqa: E402
import postgres_election_benchmarks  # noqa: E402
import rolling_restart_benchmarks  # noqa: E402
import s3_benchmarks  # noqa: E402

election_benchmarks.register(benchmark, Skipped)
job_benchmarks.register(benchmark, Skipped)
media_benchmarks.register(benchmark, Skipped)
partition_benchmarks.register(benchmark, Skipped)
postgres_election_benchmarks.register(benchmark, Skipped)
rolling_restart_benchmarks.register(benchmark, Skipped)
s3_benchmarks.register(benchmark, Skipped)


if __name__ == "__main__":
    sys.exit(main())
