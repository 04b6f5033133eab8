"""Which request id a response carries (DESIGN.md, "HTTP API")."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

REQUEST_ID_HEADER = b"X-Request-ID"

_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def is_valid_request_id(raw: bytes) -> bool:
    """1 to 128 characters of ``[A-Za-z0-9._:-]``, nothing else."""
    return _VALID.fullmatch(raw) is not None


# A random (version 4) UUID: the version nibble and the RFC 4122 variant bits.
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """
    A UUID4 string. Built from ``random`` rather than ``uuid.uuid4()``
    (``os.urandom`` per call) because it runs for every request: an id must
    be unique, not unguessable. The module-level generator is reseeded in a
    forked child, so replicas never share a sequence.
    """
    digits = "%032x" % ((random.getrandbits(128) & _VERSION_MASK) | _VERSION_4)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def choose_request_id(client_values: Sequence[bytes] | None) -> str:
    """
    The client's id when it sent exactly one valid value; otherwise a new
    UUID4 (several headers are ambiguous, so none of them is trusted).
    """
    if client_values is not None and len(client_values) == 1:
        raw = client_values[0]
        if is_valid_request_id(raw):
            return raw.decode("ascii")
    return new_request_id()
