"""
One upload to an S3 server, in a fresh process so its memory figures are its
own; used by ``bench/s3_benchmarks.py``.

``python bench/_s3_upload.py revenge|botocore ENDPOINT BUCKET KEY SIZE``
(credentials and region from ``BENCH_S3_ACCESS_KEY``, ``BENCH_S3_SECRET_KEY``,
``BENCH_S3_REGION``) writes one JSON line: seconds spent uploading, bytes,
and for ``revenge`` the resident memory before and at its peak during the
upload.

- ``revenge``: ``S3Storage.store`` of a generated stream (a file-like object
  that makes each chunk as it is read and holds none of them).
- ``botocore``: ``put_object`` of the same bytes, made in memory beforehand.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from typing import Any, BinaryIO, cast

MiB = 1024 * 1024


def _block() -> bytes:
    # Deterministic, and not a whole number of MiB, so successive reads differ.
    return bytes((i * 31 + 7) % 251 for i in range(MiB + 13))


class GeneratedStream(io.RawIOBase):
    """``size`` bytes produced on demand from one small block, never held."""

    def __init__(self, size: int) -> None:
        self._block = _block()
        self._remaining = size
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._remaining
        size = min(size, self._remaining, len(self._block))
        start = self._offset
        end = start + size
        if end <= len(self._block):
            chunk = self._block[start:end]
        else:
            chunk = self._block[start:] + self._block[: end - len(self._block)]
        self._offset = end % len(self._block)
        self._remaining -= size
        return chunk


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakMemory:
    """
    The process's peak resident memory over a stretch of time: the kernel's
    high-water mark (VmHWM), reset at the start where the kernel allows it,
    and a sampling thread as a cross-check where it does not.
    """

    def __init__(self) -> None:
        self.before_kib = 0
        self.sampled_peak_kib = 0
        self.reset_ok = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # resets VmHWM to the current RSS
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.before_kib = _status_kib("VmRSS")
        self.sampled_peak_kib = self.before_kib
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.sampled_peak_kib = max(self.sampled_peak_kib, _status_kib("VmRSS"))

    @property
    def peak_kib(self) -> int:
        if self.reset_ok:
            return max(_status_kib("VmHWM"), self.sampled_peak_kib)
        return self.sampled_peak_kib


def upload_with_revenge(endpoint: str, bucket: str, key: str, size: int) -> dict[str, Any]:
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    from revenge.storage._s3 import S3Storage

    storage = S3Storage(
        reactor,
        bucket=bucket,
        endpoint=endpoint,
        region=os.environ.get("BENCH_S3_REGION", "us-east-1"),
        access_key_id=os.environ["BENCH_S3_ACCESS_KEY"],
        secret_access_key=os.environ["BENCH_S3_SECRET_KEY"],
        use_path_style=True,
        timeout=120.0,
    )
    result: dict[str, Any] = {}

    async def upload() -> None:
        body = GeneratedStream(size)
        with PeakMemory() as memory:
            started = time.perf_counter()
            stored = await storage.store(
                key, cast(BinaryIO, body), "application/octet-stream", size
            )
            result["seconds"] = time.perf_counter() - started
        await storage.close()
        if stored.length != size:
            raise RuntimeError(f"stored {stored.length} bytes, not {size}")
        result["rss_before_mib"] = memory.before_kib / 1024
        result["peak_rss_mib"] = memory.peak_kib / 1024
        result["peak_rss_growth_mib"] = (memory.peak_kib - memory.before_kib) / 1024
        result["hwm_reset"] = memory.reset_ok
        result["etag"] = stored.etag

    failures: list[BaseException] = []

    def main(_reactor: Any) -> Any:
        async def run() -> None:
            try:
                await upload()
            except BaseException as error:
                failures.append(error)

        return ensureDeferred(run())

    try:
        react(main)
    except SystemExit:
        pass
    if failures:
        raise failures[0]
    return result


def upload_with_botocore(endpoint: str, bucket: str, key: str, size: int) -> dict[str, Any]:
    from botocore.config import Config
    from botocore.session import get_session

    client: Any = get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("BENCH_S3_REGION", "us-east-1"),
        aws_access_key_id=os.environ["BENCH_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["BENCH_S3_SECRET_KEY"],
        config=Config(s3={"addressing_style": "path"}, read_timeout=120, retries={"max_attempts": 1}),
    )
    stream = GeneratedStream(size)
    data = b"".join(iter(lambda: stream.read(MiB), b""))
    started = time.perf_counter()
    client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/octet-stream")
    seconds = time.perf_counter() - started
    return {"seconds": seconds}


def main(argv: list[str]) -> int:
    mode, endpoint, bucket, key, size_text = argv
    size = int(size_text)
    if mode == "revenge":
        result = upload_with_revenge(endpoint, bucket, key, size)
    elif mode == "botocore":
        result = upload_with_botocore(endpoint, bucket, key, size)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["bytes"] = size
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
