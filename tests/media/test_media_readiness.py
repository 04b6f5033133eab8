"""
A library root that is missing, not a directory, unreadable or empty (an
NFS mount that did not happen) keeps ``/readyz`` at 503 naming it, and is
logged once, not once per probe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from revenge.media._libraries import MARKER_EXAMPLE, probe_root
from revenge.testing import eventually

from .helpers import DEADLINE_S, MediaNode, start_media_node


async def readiness(node: MediaNode) -> tuple[int, Any]:
    answer = await node.get("/readyz", token=None)
    return answer.status, answer.json()


def media_warnings(captured_log: Any, root: Path) -> list[dict[str, Any]]:
    return [
        record
        for record in captured_log.matching(namespace="revenge.media", level="warn")
        if str(root) in record.get("message", "")
    ]


@pytest_twisted.ensureDeferred
async def test_all_roots_present_is_ready(media_node: MediaNode) -> None:
    status, body = await readiness(media_node)
    assert status == 200, body
    assert {"media:movies", "media:movies-2", "media:tv"} <= set(body["checks"])


@pytest_twisted.ensureDeferred
async def test_a_missing_root(
    tmp_path: Path, media_roots: dict[str, Path], captured_log: Any
) -> None:
    missing = tmp_path / "not-mounted-yet"
    node, server = await start_media_node(tmp_path, media_roots, extra_music=[missing])
    try:
        for _ in range(5):
            status, body = await readiness(node)
            assert status == 503
            assert body["failing"] == ["media:music"]
        # One line from the media library (naming the root and why), however many probes.
        warnings = await eventually(
            lambda: media_warnings(captured_log, missing), "the media warning", timeout=DEADLINE_S
        )
        assert len(warnings) == 1
        assert "music" in warnings[0]["message"] and "does not exist" in warnings[0]["message"]
        # The readiness registry adds its own single line when the check starts failing.
        failing = [
            r for r in captured_log.matching(namespace="revenge.health") if "media:music" in r["message"]
        ]
        assert len(failing) == 1
        libraries = (await node.get("/api/v1/libraries")).json()["libraries"]
        assert {"name": "music", "kind": "music", "available": False, "problem": "missing"} in libraries
        assert (await node.get("/api/v1/libraries/music/items")).status == 404

        # The mount appears: ready again, and said so once.
        missing.mkdir()
        (missing / "album.flac").write_bytes(b"fLaC")
        status, body = await readiness(node)
        assert status == 200, body
        recovered = [
            r
            for r in captured_log.matching(namespace="revenge.media", level="info")
            if "available again" in r["message"]
        ]
        assert len(recovered) == 1
        answer = await node.get("/media/music/album.flac")
        assert (answer.status, answer.body) == (200, b"fLaC")
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_an_empty_root_counts_as_not_mounted(
    tmp_path: Path, media_roots: dict[str, Path], captured_log: Any
) -> None:
    empty = tmp_path / "empty-mount"
    empty.mkdir()
    node, server = await start_media_node(tmp_path, media_roots, extra_music=[empty])
    try:
        status, body = await readiness(node)
        assert (status, body["failing"]) == (503, ["media:music"])
        warnings = await eventually(
            lambda: media_warnings(captured_log, empty), "the warning", timeout=DEADLINE_S
        )
        assert "empty" in warnings[0]["message"] and MARKER_EXAMPLE in warnings[0]["message"]
        # The operator's marker says "empty on purpose".
        (empty / MARKER_EXAMPLE).touch()
        status, body = await readiness(node)
        assert status == 200, body
        listing = (await node.get("/api/v1/libraries/music/items")).json()
        assert listing["items"] == []  # the marker is hidden like every dot file
        # Emptied again (the mount went away): out of rotation again.
        (empty / MARKER_EXAMPLE).unlink()
        status, body = await readiness(node)
        assert (status, body["failing"]) == (503, ["media:music"])
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_root_that_is_a_file(tmp_path: Path, media_roots: dict[str, Path]) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_bytes(b"x")
    node, server = await start_media_node(tmp_path, media_roots, extra_music=[a_file])
    try:
        status, body = await readiness(node)
        assert (status, body["failing"]) == (503, ["media:music"])
    finally:
        await server.service.stopService()


def test_probe_reasons(tmp_path: Path) -> None:
    assert probe_root(str(tmp_path / "missing")).code == "missing"  # type: ignore[union-attr]
    (tmp_path / "file").write_bytes(b"")
    assert probe_root(str(tmp_path / "file")).code == "not_a_directory"  # type: ignore[union-attr]
    (tmp_path / "empty").mkdir()
    assert probe_root(str(tmp_path / "empty")).code == "empty"  # type: ignore[union-attr]
    (tmp_path / "empty" / "x").touch()
    assert probe_root(str(tmp_path / "empty")) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_probe_unreadable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "x").touch()
    locked.chmod(0)
    try:
        assert probe_root(str(locked)).code == "unreadable"  # type: ignore[union-attr]
    finally:
        locked.chmod(0o755)
