"""Which request id a response carries (docs/design.md, "HTTP API")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from revenge.logs import new_request_id

REQUEST_ID_HEADER = b"X-Request-ID"

_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def is_valid_request_id(raw: bytes) -> bool:
    """1 to 128 characters of ``[A-Za-z0-9._:-]``, nothing else."""
    return _VALID.fullmatch(raw) is not None


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
