"""
Benchmarks of the ``s3`` storage provider, registered into ``bench/run.py``
with :func:`register`.

Both upload to moto's S3 server, started here as its own process on
127.0.0.1 (it keeps objects in its own memory, not ours), or to the server
``REVENGE_TEST_S3_ENDPOINT`` names (with ``REVENGE_TEST_S3_ACCESS_KEY``,
``REVENGE_TEST_S3_SECRET_KEY``, optionally ``REVENGE_TEST_S3_REGION``). Every
upload runs in a fresh process (``bench/_s3_upload.py``) so that its memory
figures are its own.

- ``s3_upload_memory``: peak resident memory growth of a process storing a
  256 MiB generated stream through ``S3Storage``.
- ``s3_vs_boto3``: that upload's throughput over botocore's ``put_object``
  of the same bytes, in interleaved runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
MiB = 1024 * 1024

Figures = dict[str, Any]
Register = Callable[..., Callable[[Callable[[bool], Figures]], Callable[[bool], Figures]]]


class S3Unavailable(Exception):
    """No S3 server could be started or reached."""


@dataclass(frozen=True)
class S3Target:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    kind: str

    def client(self) -> Any:
        from botocore.config import Config
        from botocore.session import get_session

        return get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, read_timeout=120),
        )

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "BENCH_S3_ACCESS_KEY": self.access_key,
            "BENCH_S3_SECRET_KEY": self.secret_key,
            "BENCH_S3_REGION": self.region,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(endpoint: str) -> bool:
    host, _, port = endpoint.removeprefix("http://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def s3_target() -> Iterator[S3Target]:
    """REVENGE_TEST_S3_ENDPOINT's server, else a moto server process for the duration."""
    endpoint = os.environ.get("REVENGE_TEST_S3_ENDPOINT", "")
    if endpoint:
        yield S3Target(
            endpoint,
            os.environ.get("REVENGE_TEST_S3_ACCESS_KEY", ""),
            os.environ.get("REVENGE_TEST_S3_SECRET_KEY", ""),
            os.environ.get("REVENGE_TEST_S3_REGION", "") or "us-east-1",
            "REVENGE_TEST_S3_ENDPOINT",
        )
        return
    try:
        import moto.server  # noqa: F401  (only to fail early and clearly)
    except ImportError as error:
        raise S3Unavailable(f"moto is not installed ({error}); pip install 'moto[server]'")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not _answers(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                raise S3Unavailable("moto's server did not start within 30 s")
            time.sleep(0.05)
        yield S3Target(endpoint, "bench-access-key", "bench-secret-key", "us-east-1", "moto")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def bench_bucket(target: S3Target) -> Iterator[str]:
    client = target.client()
    bucket = f"revenge-bench-{uuid.uuid4().hex[:12]}"
    arguments: dict[str, Any] = {"Bucket": bucket}
    if target.region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
    client.create_bucket(**arguments)
    try:
        yield bucket
    finally:
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def upload(target: S3Target, bucket: str, mode: str, size: int) -> dict[str, Any]:
    """One upload in a fresh process; the object is deleted afterwards."""
    key = f"bench/{mode}-{uuid.uuid4().hex[:8]}"
    completed = subprocess.run(
        [sys.executable, str(BENCH_DIR / "_s3_upload.py"), mode, target.endpoint, bucket, key,
         str(size)],
        capture_output=True,
        text=True,
        env=target.environment(),
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{mode} upload failed: {completed.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    client = target.client()
    head = client.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != size:
        raise RuntimeError(f"{mode} upload stored {head['ContentLength']} bytes, not {size}")
    # Let the server free the object before the next run.
    client.delete_object(Bucket=bucket, Key=key)
    return result


def s3_upload_memory(quick: bool) -> Figures:
    """Peak RSS growth of a process storing 256 MiB through S3Storage (multipart)."""
    from revenge.storage._s3 import DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE

    size = 256 * MiB
    with s3_target() as target, bench_bucket(target) as bucket:
        result = upload(target, bucket, "revenge", size)
    return {
        "peak_rss_growth_mib": round(result["peak_rss_growth_mib"], 1),
        "rss_before_mib": round(result["rss_before_mib"], 1),
        "peak_rss_mib": round(result["peak_rss_mib"], 1),
        "object_mib": size // MiB,
        "part_mib": DEFAULT_PART_SIZE / MiB,
        "threshold_mib": DEFAULT_MULTIPART_THRESHOLD / MiB,
        "upload_s": round(result["seconds"], 2),
        "hwm_reset": result["hwm_reset"],
        "server": target.kind,
    }


def s3_vs_boto3(quick: bool) -> Figures:
    """Throughput of S3Storage.store over botocore's put_object, same bytes, interleaved."""
    size, rounds = (64 * MiB, 2) if quick else (256 * MiB, 3)
    ours: list[float] = []
    theirs: list[float] = []
    with s3_target() as target, bench_bucket(target) as bucket:
        # One untimed upload each first: the server's first request warms it up.
        upload(target, bucket, "revenge", 8 * MiB)
        upload(target, bucket, "botocore", 8 * MiB)
        for round_number in range(rounds):
            # Alternate who goes first, so neither always meets a warmer server.
            order = ("revenge", "botocore") if round_number % 2 == 0 else ("botocore", "revenge")
            for mode in order:
                seconds = upload(target, bucket, mode, size)["seconds"]
                (ours if mode == "revenge" else theirs).append(size / MiB / seconds)
    ratios = [mine / other for mine, other in zip(ours, theirs)]
    return {
        "ratio": round(statistics.median(ratios), 3),
        "revenge_mib_s": round(statistics.median(ours), 1),
        "botocore_mib_s": round(statistics.median(theirs), 1),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "object_mib": size // MiB,
        "rounds": rounds,
        "server": target.kind,
    }


def register(benchmark: Register, skipped: type[Exception]) -> None:
    """Add these benchmarks to ``bench/run.py``'s registry."""

    def skipping(function: Callable[[bool], Figures]) -> Callable[[bool], Figures]:
        def run(quick: bool) -> Figures:
            try:
                return function(quick)
            except S3Unavailable as error:
                raise skipped(str(error)) from error

        return run

    benchmark(
        "s3_upload_memory",
        target="peak_rss_growth_mib <= 64",
        met=lambda figures: bool(figures["peak_rss_growth_mib"] <= 64),
    )(skipping(s3_upload_memory))
    benchmark(
        "s3_vs_boto3",
        target="ratio >= 0.70",
        met=lambda figures: bool(figures["ratio"] >= 0.70),
    )(skipping(s3_vs_boto3))


if __name__ == "__main__":
    # Quick look without bench/run.py: python bench/s3_benchmarks.py [--quick] [NAME ...]
    quick_mode = "--quick" in sys.argv
    names = [arg for arg in sys.argv[1:] if not arg.startswith("--")] or [
        "s3_upload_memory",
        "s3_vs_boto3",
    ]
    for name in names:
        figures = {"s3_upload_memory": s3_upload_memory, "s3_vs_boto3": s3_vs_boto3}[name](
            quick_mode
        )
        sys.stdout.write(json.dumps({"name": name, **figures}) + "\n")
