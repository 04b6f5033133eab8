"""
S3 servers for tests: moto's ``ThreadedMotoServer`` on loopback, or the
server ``REVENGE_TEST_S3_ENDPOINT`` names (e.g. MinIO from docker-compose),
each with a botocore client to look at buckets directly and a builder for
``S3Storage`` instances pointed at them.

Used by ``tests/storage/conftest.py`` (fixtures ``moto_s3``, ``s3_server``,
``s3_bucket``) and by any test of something stored through S3, e.g.::

    @pytest.fixture(scope="session")
    def moto_s3() -> Iterator[S3Server]:
        with moto_server() as server:
            yield server

moto (a test extra) is imported only when a server is started.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from revenge.storage._s3 import MIN_PART_SIZE, S3Storage

__all__ = [
    "EXTERNAL_SKIP_REASON",
    "MOTO_ACCESS_KEY",
    "MOTO_SECRET_KEY",
    "S3Server",
    "external_s3_server",
    "moto_server",
]

MOTO_ACCESS_KEY = "moto-access-key-id-TESTONLY"
MOTO_SECRET_KEY = "moto-secret-access-key-TESTONLY"

EXTERNAL_SKIP_REASON = (
    "REVENGE_TEST_S3_ENDPOINT not set (an S3 server such as MinIO to test against, "
    "with REVENGE_TEST_S3_ACCESS_KEY and REVENGE_TEST_S3_SECRET_KEY)"
)


@dataclass
class S3Server:
    """An S3 endpoint reachable from the tests, and how to talk to it."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    _client: Any = field(default=None, repr=False)

    def client(self) -> Any:
        """A botocore S3 client (path-style) for checking buckets directly."""
        if self._client is None:
            from botocore.config import Config
            from botocore.session import get_session

            self._client = get_session().create_client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 2},
                    connect_timeout=5,
                    read_timeout=30,
                ),
            )
        return self._client

    def make_bucket(self, prefix: str = "revenge-test") -> str:
        """Create a fresh, uniquely named bucket and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        arguments: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client().create_bucket(**arguments)
        return name

    def remove_bucket(self, bucket: str) -> None:
        """Delete a bucket with everything in it (uploads in progress too)."""
        client = self.client()
        try:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
        except client.exceptions.NoSuchBucket:
            pass

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def uploads_in_progress(self, bucket: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = self.client().list_multipart_uploads(
            Bucket=bucket
        ).get("Uploads", [])
        return uploads

    def read(self, bucket: str, key: str) -> tuple[bytes, dict[str, Any]]:
        answer = self.client().get_object(Bucket=bucket, Key=key)
        return answer["Body"].read(), answer

    def storage(self, bucket: str, **options: Any) -> S3Storage:
        """An ``S3Storage`` on this server, small parts so multipart stays fast."""
        settings: dict[str, Any] = {
            "bucket": bucket,
            "region": self.region,
            "endpoint": self.endpoint,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "use_path_style": True,
            "multipart_threshold": MIN_PART_SIZE,
            "part_size": MIN_PART_SIZE,
            "timeout": 20.0,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
        }
        settings.update(options)
        from twisted.internet import reactor

        return S3Storage(reactor, **settings)


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's S3 in a thread of this process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    # One line per request on stderr is noise in test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server("moto", f"http://{host}:{port}", MOTO_ACCESS_KEY, MOTO_SECRET_KEY)
    finally:
        server.stop()


def external_s3_server() -> S3Server | None:
    """The server REVENGE_TEST_S3_ENDPOINT names, or None."""
    endpoint = os.environ.get("REVENGE_TEST_S3_ENDPOINT", "")
    if not endpoint:
        return None
    return S3Server(
        "external",
        endpoint,
        os.environ.get("REVENGE_TEST_S3_ACCESS_KEY", ""),
        os.environ.get("REVENGE_TEST_S3_SECRET_KEY", ""),
        os.environ.get("REVENGE_TEST_S3_REGION", "") or "us-east-1",
    )
