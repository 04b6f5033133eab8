"""
How strong a secret that guards code execution must be, and how to make one.

``raft.secret`` is such a secret: pysyncobj unpickles every frame that
decrypts with the key derived from it, so whoever guesses it and reaches the
raft port runs code in the server. A short or patterned secret falls to a few
guesses (``a`` did, in nine), so the configuration refuses one.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter

MIN_SECRET_BYTES = 32
# An estimate, not a measurement: per-character Shannon entropy of the secret
# itself times its length. 32 random hex digits score 92 bits at the lowest
# (of 200,000 tried; 116 typically), 43 characters of token_urlsafe(32) 185 or
# more; 32 characters drawn from a handful of letters score far less.
MIN_SECRET_BITS = 85.0

SECRET_HINT = "generate one with `revenge raft secret` (or `openssl rand -base64 48`)"


def estimated_bits(secret: str) -> float:
    """Length times the empirical entropy per character: low for short or repetitive secrets."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    total = len(secret)
    per_character = -sum((n / total) * math.log2(n / total) for n in counts.values())
    return per_character * total


def _shortest_period(text: str) -> int:
    """The length of the shortest block that ``text`` repeats (len(text) when none)."""
    for period in range(1, len(text) // 2 + 1):
        if all(text[i] == text[i % period] for i in range(len(text))):
            return period
    return len(text)


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` may not protect the raft port, or None when it may."""
    size = len(secret.encode("utf-8"))
    if not secret.strip():
        return "must not be empty"
    if size < MIN_SECRET_BYTES:
        return f"is {size} bytes long; it must be at least {MIN_SECRET_BYTES}"
    period = _shortest_period(secret)
    if period < len(secret):
        return f"repeats a block of {period} characters; it must be random"
    if estimated_bits(secret) < MIN_SECRET_BITS:
        return (
            f"has too little entropy (about {estimated_bits(secret):.0f} bits, "
            f"at least {MIN_SECRET_BITS:.0f} needed); it must be random"
        )
    return None


def generate_secret() -> str:
    """A fresh secret: 48 random bytes, URL-safe base64 (64 characters, 384 bits)."""
    return secrets.token_urlsafe(48)
