import uuid

import pytest

from revenge.web import is_valid_request_id
from revenge.web._request_id import choose_request_id


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


@pytest.mark.parametrize(
    "raw",
    [b"a", b"abc-123", b"A.b_c:d-e", b"x" * 128, b"0123456789", b"req:42.7_x-y"],
)
def test_valid_client_ids_are_kept(raw):
    assert is_valid_request_id(raw)
    assert choose_request_id([raw]) == raw.decode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # empty
        b"x" * 129,  # one too long
        b"abc\r\nX-Injected: 1",  # CR/LF
        b"abc\n",
        b"caf\xc3\xa9",  # non-ASCII (UTF-8)
        b"\xff\xfe",
        b"with space",
        b"semi;colon",
        b"slash/id",
        b"tab\tid",
    ],
)
def test_invalid_client_ids_get_a_new_uuid4(raw):
    assert not is_valid_request_id(raw)
    chosen = choose_request_id([raw])
    assert _is_uuid4(chosen)
    assert chosen != raw.decode("latin-1")


def test_missing_header_gets_a_new_uuid4():
    assert _is_uuid4(choose_request_id(None))


def test_several_headers_are_ambiguous_and_replaced():
    chosen = choose_request_id([b"one", b"two"])
    assert _is_uuid4(chosen)


def test_new_ids_differ():
    assert choose_request_id(None) != choose_request_id(None)
