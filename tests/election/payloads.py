"""What a stranger sends to a raft port: a pickle that proves execution, pysyncobj's framing."""

from __future__ import annotations

import struct
from typing import Any


class CreatesAFile:
    """Unpickling this creates ``path``: proof that a payload was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def frame(data: bytes) -> bytes:
    """pysyncobj's framing: native-endian int32 length, then the bytes."""
    return struct.pack("i", len(data)) + data
