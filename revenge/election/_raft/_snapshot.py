"""
The raft log's snapshot, as JSON.

pysyncobj compacts its log every ``logCompactionMinTime`` (300 s by default)
into a snapshot. Its own format pickles the SyncObj's instance state, which
with ``autoTick`` holds threads and locks: the first compaction raised
``TypeError: cannot pickle '_thread.lock' object`` on every tick from then
on, before the tick reached its network poll, and the cluster lost its
leader for good (upstream issue bakwc/PySyncObj#147).

Revenge replicates no state: the log holds one no-op entry per leadership.
pysyncobj accepts a ``serializer``/``deserializer`` pair instead of pickling
(``SyncObjConf``); it then writes no instance state at all and hands the pair
the two newest applied entries and the member list. This module writes those
as JSON, so a compaction always works, and loading a snapshot (also one a
leader sends to a follower that fell behind) can never run code.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from typing import Any

# Bumped if the file's shape ever changes; a file of another version is refused.
SNAPSHOT_VERSION = 1
SNAPSHOT_FILE = "snapshot.json"

Entry = tuple[bytes, int, int]  # pysyncobj's (command, index, term)


class SnapshotError(Exception):
    """The snapshot file is not one this module wrote."""


def _entry_to_json(entry: Any) -> list[Any]:
    command, index, term = entry
    return [base64.b64encode(bytes(command)).decode("ascii"), int(index), int(term)]


def _entry_from_json(value: Any) -> Entry:
    if not (isinstance(value, list) and len(value) == 3):
        raise SnapshotError("an entry must be [command, index, term]")
    command, index, term = value
    if not isinstance(command, str) or type(index) is not int or type(term) is not int:
        raise SnapshotError("an entry must be [base64 string, integer, integer]")
    try:
        return base64.b64decode(command, validate=True), index, term
    except ValueError:
        raise SnapshotError("an entry's command is not base64") from None


def _member_address(member: Any) -> str:
    return str(getattr(member, "address", member))


def write_snapshot(path: str, data: tuple[Any, Any, Iterable[Any]]) -> None:
    """
    pysyncobj's ``serializer(path, data)``: ``data`` is (newest applied entry,
    the one before it, the cluster's members). Written with fsync: pysyncobj
    renames the file into place and then drops the log entries it covers.
    """
    last, previous, members = data
    document = {
        "version": SNAPSHOT_VERSION,
        "last": _entry_to_json(last),
        "previous": _entry_to_json(previous),
        "members": sorted(_member_address(member) for member in members),
    }
    encoded = json.dumps(document, separators=(",", ":")).encode("ascii")
    with open(path, "wb") as out:
        out.write(encoded)
        out.flush()
        os.fsync(out.fileno())


def read_snapshot(path: str) -> tuple[Entry, Entry, frozenset[str]]:
    """pysyncobj's ``deserializer(path)``: the triple that :func:`write_snapshot` got."""
    with open(path, "rb") as source:
        raw = source.read(1 << 20)
    try:
        document = json.loads(raw)
    except ValueError:
        raise SnapshotError(f"{path} is not JSON") from None
    if not isinstance(document, dict) or document.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"{path} is not a version {SNAPSHOT_VERSION} raft snapshot")
    members = document.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise SnapshotError("members must be a list of addresses")
    return (
        _entry_from_json(document.get("last")),
        _entry_from_json(document.get("previous")),
        frozenset(members),
    )
