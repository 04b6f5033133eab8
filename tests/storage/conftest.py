"""
Fixtures for storage tests (and for tests of anything stored through S3).

- ``moto_s3``: moto's S3 on loopback for the whole session.
- ``s3_server``: parametrised over moto and the server named by
  ``REVENGE_TEST_S3_ENDPOINT`` (skipped, with the reason, when unset).
- ``s3_bucket``: a fresh bucket on ``s3_server``, removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from revenge.testing.s3 import (
    EXTERNAL_SKIP_REASON,
    S3Server,
    external_s3_server,
    moto_server,
)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture(params=["moto", "external"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    if request.param == "external":
        server = external_s3_server()
        if server is None:
            pytest.skip(EXTERNAL_SKIP_REASON)
        return server
    moto: S3Server = request.getfixturevalue("moto_s3")
    return moto


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    bucket = s3_server.make_bucket()
    try:
        yield bucket
    finally:
        s3_server.remove_bucket(bucket)


@pytest.fixture
def moto_bucket(moto_s3: S3Server) -> Iterator[str]:
    """A fresh bucket on moto only (for tests that put a stub in front of it)."""
    bucket = moto_s3.make_bucket()
    try:
        yield bucket
    finally:
        moto_s3.remove_bucket(bucket)
