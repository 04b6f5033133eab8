"""``revenge storage init``, run as a real process against moto on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from revenge.testing.s3 import S3Server, moto_server

REVENGE = Path(sys.executable).with_name("revenge")
SECRET = "storage-init-secret-must-not-leak"


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


def run_init(config: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("REVENGE_", "AWS_"))
    }
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # never look beyond loopback
    env.update(overrides)
    return subprocess.run(
        [str(REVENGE), "storage", "init", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=120,
        check=False,
    )


def s3_config(tmp_path: Path, endpoint: str, bucket: str, region: str = "us-east-1") -> Path:
    path = tmp_path / "revenge.yaml"
    path.write_text(
        "storage:\n"
        "  backend: s3\n"
        "  s3:\n"
        f"    endpoint: {endpoint}\n"
        f"    region: {region}\n"
        f"    bucket: {bucket}\n"
        "    access_key_id: AKIDSTORAGEINIT\n"
        f"    secret_access_key: {SECRET}\n"
        "    use_path_style: true\n"
    )
    return path


def test_creates_the_bucket_then_finds_it(tmp_path: Path, moto_s3: S3Server) -> None:
    bucket = "revenge-init-eu"
    config = s3_config(tmp_path, moto_s3.endpoint, bucket, region="eu-west-1")
    try:
        first = run_init(config)
        assert (first.returncode, first.stderr) == (0, "")
        where = f"S3 bucket '{bucket}' at {moto_s3.endpoint}"
        assert first.stdout.splitlines() == [
            f"{where}: created",
            f"{where}: write, read and delete work",
        ]
        client = moto_s3.client()
        # Outside us-east-1 the bucket is created in the configured region.
        assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
        # The probe cleaned up after itself.
        assert moto_s3.keys(bucket) == []

        second = run_init(config)
        assert (second.returncode, second.stderr) == (0, "")
        assert second.stdout.splitlines()[0] == f"{where}: already exists"
        assert SECRET not in first.stdout + second.stdout
    finally:
        moto_s3.remove_bucket(bucket)


def test_an_unreachable_endpoint_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    result = run_init(s3_config(tmp_path, endpoint, "media"))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("revenge: storage init failed: ")
    assert endpoint in lines[0] and "'media'" in lines[0] and "connection refused" in lines[0]
    assert SECRET not in result.stderr and "AKIDSTORAGEINIT" not in result.stderr


def test_the_local_backend_gets_its_directory(tmp_path: Path) -> None:
    config = tmp_path / "revenge.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    result = run_init(config)
    assert (result.returncode, result.stderr) == (0, "")
    root = tmp_path / "data" / "storage"
    assert result.stdout.splitlines() == [
        f"local storage at {root}: ready",
        f"local storage at {root}: write, read and delete work",
    ]
    assert root.is_dir() and list(root.iterdir()) == []


def test_a_local_root_that_cannot_be_made_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be")
    config = tmp_path / "revenge.yaml"
    config.write_text(f"data_dir: {blocker}\n")
    result = run_init(config)
    assert result.returncode == 1
    assert result.stderr.startswith("revenge: storage init failed: local storage root")
    assert len(result.stderr.splitlines()) == 1


def test_an_incomplete_s3_configuration_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "revenge.yaml"
    config.write_text("storage:\n  backend: s3\n")
    result = run_init(config)
    assert result.returncode == 2
    assert "storage.s3.bucket" in result.stderr and len(result.stderr.splitlines()) == 1
