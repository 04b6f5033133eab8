"""
Twisted's private HTTP members Revenge relies on are all still there.

setup.cfg pins Twisted to the release series these were checked against;
trying another one runs this first and says which member went missing, rather
than letting the limits or request ids quietly stop working.
"""

from __future__ import annotations

import pytest
import twisted
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel, Request

from revenge.web._request import TWISTED_INTERNALS

_CLASSES = {"HTTPChannel": HTTPChannel, "Request": Request}


def _fresh(owner: str) -> object:
    # Some members are set in __init__ rather than on the class.
    channel = HTTPChannel()
    channel.makeConnection(StringTransport())
    return channel if owner == "HTTPChannel" else Request(channel)


def _explain(owner: str, member: str) -> str:
    return (
        f"twisted.web.http.{owner}.{member} is gone in Twisted {twisted.__version__}: "
        f"revenge/web/_request.py relies on it (TWISTED_INTERNALS); port that code "
        f"before widening the Twisted pin in setup.cfg"
    )


@pytest.mark.parametrize(
    ("owner", "member"),
    [
        (owner, member)
        for owner, members in TWISTED_INTERNALS.items()
        if owner in _CLASSES
        for member in members
    ],
)
def test_class_member_exists(owner, member):
    assert hasattr(_fresh(owner), member), _explain(owner, member)


def test_request_line_state_is_kept_until_the_body_is_in():
    channel = HTTPChannel()
    channel.requestFactory = Request
    channel.makeConnection(StringTransport())
    # Headers in, a body of 5 bytes still to come: the parsed request line
    # must be held on the channel, where RevengeRequest.gotLength reads it.
    channel.dataReceived(b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
    seen = {
        member: getattr(channel, member, None)
        for member in TWISTED_INTERNALS["HTTPChannel (request line state)"]
    }
    expected = {"_command": b"POST", "_path": b"/x?y=1", "_version": b"HTTP/1.1"}
    for member, value in expected.items():
        assert seen[member] == value, _explain("HTTPChannel", member)
    assert channel._receivedHeaderSize > 0, _explain("HTTPChannel", "_receivedHeaderSize")
    channel.connectionLost(None)


def test_every_listed_owner_is_checked():
    # A new entry in TWISTED_INTERNALS must be covered by one of the tests above.
    assert set(TWISTED_INTERNALS) == {*_CLASSES, "HTTPChannel (request line state)"}
