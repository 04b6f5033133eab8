"""
What a request line and its framing headers must be before anything routes it.

The contract (docs/api.md, "What reaches a route"): the target is origin-form
(it starts with ``/``; an absolute-form ``http://host/path`` is turned into
``/path``), printable ASCII, and valid UTF-8 once percent-decoded, path and
query alike; ``Host`` appears at most once and is an ASCII host and port;
``Content-Length`` is at most :data:`MAX_LENGTH_DIGITS` digits; a body's
``Transfer-Encoding`` is ``chunked`` alone, given once. Anything else is a
400 before a route, an admission or a body cap looks at the request.

Twisted checks less (it lets bytes 0x7f-0xb0 into a target, routes
``Xapi/v1/...``, takes ``Transfer-Encoding: identity`` after ``chunked``, and
lets ``int()`` raise on a 5000-digit ``Content-Length``), so
``RevengeChannel`` calls these on every request line and header.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

# 18 digits hold every length below 10**18 bytes and fit a signed 64-bit
# integer; a longer number is no body this server would read.
MAX_LENGTH_DIGITS = 18

_ABSOLUTE_FORM = re.compile(rb"https?://[^/?#]*", re.IGNORECASE)
# RFC 3986 host (reg-name, IPv4, bracketed IPv6) and an optional port.
_HOST_AND_PORT = re.compile(rb"(?:[A-Za-z0-9._~!$&'()*+,;=-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")


# The methods routes are written for (RFC 9110 methods are case-sensitive:
# "get" is not GET, though the router would take it for one).
KNOWN_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"})

# The headers check_framing_header rules on, lower-case.
FRAMING_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


class BadRequestLine(ValueError):
    """What is wrong with a request line or header; the message is shown to the client."""


def origin_form(target: bytes) -> bytes:
    """
    The origin-form of a request target, or :class:`BadRequestLine`.

    >>> origin_form(b"http://example.com/healthz?x=1")
    b'/healthz?x=1'
    """
    if any(byte <= 0x20 or byte >= 0x7F for byte in target):
        raise BadRequestLine("the request target must be printable ASCII; percent-encode the rest")
    absolute = _ABSOLUTE_FORM.match(target)
    if absolute is not None:
        target = target[absolute.end() :] or b"/"
        if not target.startswith(b"/"):
            target = b"/" + target
    if not target.startswith(b"/"):
        raise BadRequestLine("the request target must be a path starting with /")
    try:
        unquote_to_bytes(target).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestLine(
            "the request target is not valid UTF-8 once percent-decoded"
        ) from None
    return target


def _is_host_and_port(value: bytes) -> bool:
    if _HOST_AND_PORT.fullmatch(value) is None:
        return False
    host = value if value.startswith(b"[") else value.partition(b":")[0]
    try:
        # The router IDNA-encodes the host name (werkzeug's Map.bind), which
        # refuses empty labels and labels over 63 characters: a 500 there.
        host.decode("ascii").encode("idna")
    except UnicodeError:
        return False
    return True


def check_framing_header(name: bytes, value: bytes, already: list[bytes] | None) -> None:
    """
    Refuse (:class:`BadRequestLine`) a ``Host``, ``Content-Length`` or
    ``Transfer-Encoding`` header this server does not take; ``name`` is
    lower-case, ``value`` stripped, ``already`` the values of the same
    header received before in this request (None: none).
    """
    if name == b"host":
        if already:
            raise BadRequestLine("send one Host header")
        if not _is_host_and_port(value):
            raise BadRequestLine("the Host header must be an ASCII host name or address and port")
    elif name == b"content-length":
        if not value.isdigit() or not value.isascii():
            raise BadRequestLine("Content-Length must be a number of bytes")
        # All of it, leading zeros too: Twisted int()s the whole text.
        if len(value) > MAX_LENGTH_DIGITS:
            raise BadRequestLine(f"Content-Length must be at most {MAX_LENGTH_DIGITS} digits")
    elif name == b"transfer-encoding":
        if already or value.lower() != b"chunked":
            raise BadRequestLine("the only Transfer-Encoding taken is chunked, sent once")


def query_arguments(query: bytes) -> dict[bytes, list[bytes]]:
    """
    ``request.args`` for a query string: Twisted's rules (``+`` is a space,
    percent-escapes decoded once, blank values kept, an item without ``=``
    dropped) except that only ``&`` separates parameters. Twisted also splits
    on ``;``, so ``?a=1;token=x`` carried a ``token`` that no proxy, log
    filter or client sees as one.
    """
    arguments: dict[bytes, list[bytes]] = {}
    for item in query.split(b"&"):
        name, equals, value = item.partition(b"=")
        if not equals:
            continue
        name = unquote_to_bytes(name.replace(b"+", b" "))
        arguments.setdefault(name, []).append(unquote_to_bytes(value.replace(b"+", b" ")))
    return arguments
