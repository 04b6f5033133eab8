"""
Fixtures of the media tests: library roots under the test's tmp_path and a
whole node serving them (helpers.py has the node and the requests), and no
error logged along the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from .helpers import SAMPLE, MediaNode, start_media_node


@pytest.fixture
def media_roots(tmp_path: Path) -> dict[str, Path]:
    """Library roots: ``movies`` (with files), ``movies-2`` and ``tv`` (one file each)."""
    movies = tmp_path / "media" / "movies"
    (movies / "Film (2001)").mkdir(parents=True)
    (movies / "Film (2001)" / "film.mkv").write_bytes(SAMPLE)
    (movies / "sample.bin").write_bytes(SAMPLE)
    (movies / "empty.mp4").write_bytes(b"")
    second = tmp_path / "media" / "more-movies"
    second.mkdir(parents=True)
    (second / "other.mp4").write_bytes(b"second root")
    tv = tmp_path / "media" / "tv"
    tv.mkdir(parents=True)
    (tv / "show.webm").write_bytes(b"tv")
    return {"movies": movies, "movies-2": second, "tv": tv}


@pytest_twisted.async_yield_fixture
async def media_node(tmp_path: Path, media_roots: dict[str, Path]) -> AsyncIterator[MediaNode]:
    """A whole node with the libraries of ``media_roots`` and an admin user."""
    node, server = await start_media_node(tmp_path, media_roots)
    try:
        yield node
    finally:
        await server.service.stopService()


@pytest.fixture(autouse=True)
def no_errors_logged(captured_log: Any) -> Any:
    """Every media test also checks that nothing was logged as an error along the way."""
    yield
    errors = [
        record
        for record in captured_log.records
        if record.get("level") in ("error", "critical")
    ]
    assert not errors, errors
