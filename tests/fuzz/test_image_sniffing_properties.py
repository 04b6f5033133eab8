"""image_type_of / declared_image_type: never raise; only real magic numbers are accepted."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from revenge.avatars._images import (
    AVATAR_CONTENT_TYPES,
    SNIFF_BYTES,
    declared_image_type,
    image_type_of,
)

from .tally import count_input, examples

# The signatures as the formats define them, written out again independently.
SIGNATURES: dict[str, list[bytes]] = {
    "image/png": [b"\x89PNG\r\n\x1a\n"],
    "image/jpeg": [b"\xff\xd8\xff"],
    "image/gif": [b"GIF87a", b"GIF89a"],
}


def is_webp(head: bytes) -> bool:
    return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def expected_type(head: bytes) -> str | None:
    for content_type, signatures in SIGNATURES.items():
        if any(head.startswith(signature) for signature in signatures):
            return content_type
    return "image/webp" if is_webp(head) else None


# Random bytes rarely start with a signature: also try signatures with one
# byte changed or cut short, and real ones followed by anything.
all_signatures = [s for group in SIGNATURES.values() for s in group] + [b"RIFF\x00\x00\x00\x00WEBP"]
mangled = st.tuples(st.sampled_from(all_signatures), st.integers(0, 11), st.integers(0, 255)).map(
    lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
)
heads = st.one_of(
    st.binary(max_size=64),
    mangled,
    st.sampled_from(all_signatures).map(lambda s: s[: len(s) - 1]),
    st.tuples(st.sampled_from(all_signatures), st.binary(max_size=32)).map(lambda t: t[0] + t[1]),
)


@settings(max_examples=examples(500))
@given(heads)
@example(b"")
@example(b"RIFF\x00\x00\x00\x00WEB")
@example(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
def test_only_real_signatures_are_accepted(head: bytes) -> None:
    count_input("avatars: image_type_of")
    detected = image_type_of(head)
    assert detected == expected_type(head)
    assert detected is None or detected in AVATAR_CONTENT_TYPES


@settings(max_examples=examples(200))
@given(st.sampled_from(sorted(SIGNATURES)), st.binary(max_size=SNIFF_BYTES * 2))
def test_any_body_after_a_signature_is_that_type(content_type: str, rest: bytes) -> None:
    count_input("avatars: image_type_of")
    for signature in SIGNATURES[content_type]:
        assert image_type_of(signature + rest) == content_type
    webp = b"RIFF" + rest[:4].ljust(4, b"\x00") + b"WEBP" + rest[4:]
    assert image_type_of(webp) == "image/webp"


@settings(max_examples=examples(300))
@given(
    st.one_of(
        st.none(),
        st.binary(max_size=80),
        st.tuples(
            st.sampled_from(sorted(AVATAR_CONTENT_TYPES) + ["image/svg+xml", "text/html"]),
            st.sampled_from(["", ";charset=x", " ; q=1"]),
            st.booleans(),
        ).map(lambda t: (t[0].upper() if t[2] else t[0]).encode() + t[1].encode()),
    )
)
def test_declared_type_is_one_of_ours_or_none(header: bytes | None) -> None:
    count_input("avatars: declared_image_type")
    declared = declared_image_type(header)
    assert declared is None or declared in AVATAR_CONTENT_TYPES
    if declared is not None:
        assert header is not None
        assert header.split(b";", 1)[0].strip().lower() == declared.encode()
