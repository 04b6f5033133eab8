"""The IStorage contract against the ``s3`` provider on real S3 HTTP servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_twisted

from revenge.storage import IStorage
from revenge.testing.s3 import S3Server
from revenge.testing.storage_contract import StorageContract


class TestS3StorageContract(StorageContract):
    @pytest_twisted.async_yield_fixture
    async def storage(self, s3_server: S3Server, s3_bucket: str) -> AsyncIterator[IStorage]:
        storage = s3_server.storage(s3_bucket)
        try:
            yield storage
        finally:
            await storage.close()

    @pytest_twisted.async_yield_fixture
    async def broken_storage(self, s3_server: S3Server) -> AsyncIterator[IStorage]:
        # A bucket nobody created: HeadBucket answers 404.
        storage = s3_server.storage("revenge-test-never-created")
        try:
            yield storage
        finally:
            await storage.close()
