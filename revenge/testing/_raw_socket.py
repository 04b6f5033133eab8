"""
Raw HTTP/1.1 over a plain socket, for fuzzing the server's edge with bytes
no HTTP client library would send.

:func:`socket_exchange` sends one request on a fresh connection and reads the
first final answer (interim 1xx answers are kept apart); :func:`answer_problems`
says what is wrong with that answer by the rules every answer of a Revenge
node must follow; :func:`show_bytes` renders bytes as a Python expression
short enough for a failure message (runs of a repeated byte or unit are
written ``b'1' * 5000``) and exact.

Nothing here knows about a particular node. The Twisted counterpart, for
in-process sites, is :mod:`revenge.testing._raw_http`.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from twisted.web.http import RESPONSES

from revenge.web import is_valid_request_id

# How long one exchange may take, from connecting to the end of the answer.
ANSWER_TIMEOUT = 5.0
# An answer is never longer than this here (the largest is /metrics or a media file).
MAX_ANSWER_BYTES = 4 * 1024 * 1024

_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3}) ([\t\x20-\x7e\x80-\xff]*)")
_FIELD_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*")
# Field values: visible ASCII, SP, HTAB and obs-text; no other control byte.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# A product token with a version ("TwistedWeb/24.3.0") or any number at all.
_VERSIONED = re.compile(rb"/|[0-9]")

# Status codes a fuzzed request may legitimately end in among the 5xx: the
# readiness answer, "method not implemented" and "version not supported".
ALLOWED_5XX = frozenset({501, 503, 505})

# Reason phrases as RFC 9110 names them where they differ from Python's and Twisted's.
_RFC_9110_PHRASES = {
    413: b"Content Too Large",
    414: b"URI Too Long",
    416: b"Range Not Satisfiable",
    422: b"Unprocessable Content",
}


def known_reason_phrases(status: int) -> frozenset[bytes]:
    """The reason phrases a status line may carry for ``status`` (compared case-insensitively)."""
    phrases: set[bytes] = set()
    try:
        phrases.add(HTTPStatus(status).phrase.encode("ascii"))
    except ValueError:
        pass
    if status in RESPONSES:
        phrases.add(RESPONSES[status])
    if status in _RFC_9110_PHRASES:
        phrases.add(_RFC_9110_PHRASES[status])
    return frozenset(phrase.lower() for phrase in phrases)


@dataclass
class SocketAnswer:
    """One response as it came off the wire."""

    version: bytes
    status: int
    reason: bytes
    fields: list[tuple[bytes, bytes]]
    body: bytes
    head: bytes

    def values(self, name: bytes) -> list[bytes]:
        wanted = name.lower()
        return [value for field_name, value in self.fields if field_name.lower() == wanted]

    def value(self, name: bytes) -> bytes | None:
        found = self.values(name)
        return found[0] if found else None

    @property
    def closes(self) -> bool:
        tokens = b",".join(self.values(b"Connection")).lower().split(b",")
        return b"close" in (token.strip() for token in tokens)


@dataclass
class SocketExchange:
    """What one request on a fresh connection got back."""

    sent: bytes
    received: bytes = b""
    answer: SocketAnswer | None = None
    interim: list[SocketAnswer] = field(default_factory=list)
    # Bytes after the answer on a connection the answer said it would close.
    trailing: bytes = b""
    # Why the bytes received are not a well-formed answer (None: they are,
    # or nothing was received).
    malformed: str | None = None
    timed_out: bool = False
    reset: bool = False
    eof: bool = False
    send_error: str | None = None
    seconds: float = 0.0

    @property
    def closed_without_answer(self) -> bool:
        """The server closed (FIN or RST) without sending a single byte."""
        return not self.received and (self.eof or self.reset) and not self.timed_out


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.eof = False
        self.reset = False
        self.timed_out = False

    @property
    def done(self) -> bool:
        return self.eof or self.reset or self.timed_out

    def more(self) -> bool:
        """Read once more; False when nothing more will come."""
        if self.done:
            return False
        if len(self.buffer) > MAX_ANSWER_BYTES:
            return False
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.timed_out = True
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            self.timed_out = True
            return False
        except (ConnectionResetError, ConnectionAbortedError):
            self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def find(self, marker: bytes, start: int) -> int:
        while True:
            index = self.buffer.find(marker, start)
            if index >= 0:
                return index
            if not self.more():
                return -1

    def have(self, end: int) -> bool:
        while len(self.buffer) < end:
            if not self.more():
                return False
        return True

    def to_end(self) -> None:
        while self.more():
            pass


class _Malformed(Exception):
    pass


class _NoAnswer(Exception):
    """The connection ended (or timed out) before any byte of a final answer."""


def _parse_head(head: bytes) -> SocketAnswer:
    lines = head.split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise _Malformed(f"status line {lines[0][:200]!r}")
    major, minor, status, reason = status_line.groups()
    fields = []
    for line in lines[1:]:
        if b"\n" in line or b"\r" in line:
            raise _Malformed(f"bare CR or LF in the header line {line[:200]!r}")
        if line[:1] in (b" ", b"\t"):
            raise _Malformed(f"obs-fold line {line[:200]!r}")
        field_line = _FIELD_LINE.fullmatch(line)
        if field_line is None:
            raise _Malformed(f"header line {line[:200]!r}")
        name, value = field_line.groups()
        if _FIELD_VALUE.fullmatch(value) is None:
            raise _Malformed(f"control bytes in the header line {line[:200]!r}")
        fields.append((name, value))
    return SocketAnswer(b"HTTP/%s.%s" % (major, minor), int(status), reason, fields, b"", head)


def _read_chunked(reader: _Reader, start: int) -> tuple[bytes, int]:
    """The body of a chunked answer starting at ``start``, and where it ends."""
    body = bytearray()
    position = start
    while True:
        eol = reader.find(b"\r\n", position)
        if eol < 0:
            raise _Malformed("chunked answer ends inside a chunk-size line")
        size_text = bytes(reader.buffer[position:eol]).split(b";", 1)[0].strip(b" \t")
        if _HEX.fullmatch(size_text) is None:
            raise _Malformed(f"chunk size {size_text[:100]!r}")
        size = int(size_text, 16)
        position = eol + 2
        if size == 0:
            # Trailer fields, then the empty line.
            return bytes(body), _skip_trailer(reader, position)
        if not reader.have(position + size + 2):
            raise _Malformed("chunked answer ends inside a chunk")
        body += reader.buffer[position : position + size]
        if reader.buffer[position + size : position + size + 2] != b"\r\n":
            raise _Malformed("a chunk of the answer is not followed by CRLF")
        position += size + 2


def _skip_trailer(reader: _Reader, position: int) -> int:
    """``position`` is where the trailer section starts; returns where it ends."""
    while True:
        eol = reader.find(b"\r\n", position)
        if eol < 0:
            raise _Malformed("chunked answer ends inside its trailer")
        if eol == position:
            return eol + 2
        position = eol + 2


def _read_answer(reader: _Reader, start: int, head_request: bool) -> tuple[SocketAnswer, int]:
    """One answer starting at ``start`` in the reader's buffer, and where it ends."""
    end_of_head = reader.find(b"\r\n\r\n", start)
    if end_of_head < 0:
        if len(reader.buffer) == start:
            raise _NoAnswer()
        raise _Malformed(
            f"the answer's head does not end: {bytes(reader.buffer[start : start + 300])!r}"
        )
    answer = _parse_head(bytes(reader.buffer[start:end_of_head]))
    position = end_of_head + 4
    if head_request or 100 <= answer.status < 200 or answer.status in (204, 304):
        return answer, position
    codings = b",".join(answer.values(b"Transfer-Encoding")).lower()
    lengths = answer.values(b"Content-Length")
    if codings:
        if codings.split(b",")[-1].strip() != b"chunked":
            raise _Malformed(f"Transfer-Encoding {codings!r} in an answer")
        if lengths:
            raise _Malformed("both Content-Length and Transfer-Encoding in an answer")
        answer.body, position = _read_chunked(reader, position)
        return answer, position
    if lengths:
        if len(set(lengths)) != 1 or _DIGITS.fullmatch(lengths[0]) is None:
            raise _Malformed(f"Content-Length {lengths!r}")
        length = int(lengths[0])
        if not reader.have(position + length):
            raise _Malformed(
                f"Content-Length is {length} but the body has {len(reader.buffer) - position} bytes"
            )
        answer.body = bytes(reader.buffer[position : position + length])
        return answer, position + length
    # Neither: the body runs until the connection closes.
    reader.to_end()
    if reader.timed_out:
        raise _Malformed("an answer without Content-Length whose connection stays open")
    answer.body = bytes(reader.buffer[position:])
    return answer, len(reader.buffer)


def socket_exchange(
    port: int,
    data: bytes,
    *,
    half_close: bool = False,
    head_request: bool = False,
    timeout: float = ANSWER_TIMEOUT,
    host: str = "127.0.0.1",
) -> SocketExchange:
    """
    Send ``data`` on a new connection and read the first final answer.

    With ``half_close`` the sending side is shut down right after ``data``
    (for requests the server cannot complete: it then closes, Twisted has no
    half-open connections). ``head_request`` reads the answer as one to
    HEAD: no body, unless the connection closes after it, in which case
    whatever follows the head is :attr:`SocketExchange.trailing`. Every answer
    that says ``Connection: close`` is read to the end of the connection,
    so that bytes past its framing show up as ``trailing``.
    """
    started = time.monotonic()
    result = SocketExchange(sent=data)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = _Reader(sock, started + timeout)
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            # The server may answer and close before it has read everything
            # (a 414 at 16 KiB, say): what it sent is still to be read.
            result.send_error = f"{type(error).__name__}: {error}"
        position = 0
        try:
            while True:
                answer, position = _read_answer(reader, position, head_request)
                if 100 <= answer.status < 200:
                    result.interim.append(answer)
                    if answer.status == 101:
                        raise _Malformed("101 Switching Protocols")
                    continue
                result.answer = answer
                break
            if answer.closes:
                reader.to_end()
                result.trailing = bytes(reader.buffer[position:])
        except _NoAnswer:
            # Nothing, or only interim answers ("100 Continue"), then the end.
            pass
        except _Malformed as error:
            result.malformed = str(error)
        result.received = bytes(reader.buffer)
        result.timed_out = reader.timed_out
        result.reset = reader.reset
        result.eof = reader.eof
    result.seconds = time.monotonic() - started
    return result


def error_body_problems(answer: SocketAnswer) -> list[str]:
    """What keeps the body from being ``{"error": {"code", "message", "request_id"}}``."""
    content_type = (answer.value(b"Content-Type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        return [f"error answer with Content-Type {content_type!r}, not application/json"]
    try:
        document = json.loads(answer.body)
    except ValueError:
        return [f"error answer whose body is not JSON: {answer.body[:200]!r}"]
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not all(
        isinstance(error.get(key), str) for key in ("code", "message", "request_id")
    ):
        return [f"error body is not {{'error': {{code, message, request_id}}}}: {document!r:.300}"]
    ids = answer.values(b"X-Request-ID")
    if ids and error["request_id"].encode("utf-8") != ids[0]:
        return [f"body request_id {error['request_id']!r} is not the header's {ids[0]!r}"]
    return []


def answer_problems(
    result: SocketExchange,
    *,
    complete: bool = True,
    head_request: bool = False,
    strict_head: bool = False,
    http10_request: bool = False,
) -> list[str]:
    """
    What is wrong with how the server dealt with one request, by the rules of
    every Revenge answer:

    - ``head_request``: the request line starts with HEAD, so the answer is
      read without a body; ``strict_head``: the line is a well-formed one,
      so the server must have taken it as HEAD and must not send a body;
    - ``complete`` requests (the server has all it needs) get a well-formed
      answer: ``HTTP/1.1 NNN reason`` with a known reason phrase (an
      HTTP/1.0 request may get ``HTTP/1.0`` back), header lines that parse,
      a body matching its framing, nothing after it when the answer closes
      the connection; an incomplete one may instead be closed without a
      byte (that is the only case where no answer is fine);
    - exactly one valid X-Request-ID;
    - every error answer (not 1xx, 304 or to HEAD) has the JSON error body
      carrying that id;
    - no Server header naming a version;
    - no 5xx but 501, 503 and 505.
    """
    problems: list[str] = []
    if result.malformed is not None:
        return [f"malformed answer: {result.malformed}"]
    answer = result.answer
    if answer is None:
        if result.timed_out:
            if complete:
                return [f"no answer within {ANSWER_TIMEOUT}s to a complete request"]
            return [
                f"the connection stayed open {ANSWER_TIMEOUT}s after the client closed its side"
            ]
        if complete:
            how = "reset" if result.reset else "closed"
            return [f"connection {how} without an answer to a complete request"]
        return []
    allowed_versions = {b"HTTP/1.1", b"HTTP/1.0"} if http10_request else {b"HTTP/1.1"}
    if answer.version not in allowed_versions:
        problems.append(f"status line version {answer.version!r}")
    if answer.reason.lower() not in known_reason_phrases(answer.status):
        problems.append(f"reason phrase {answer.reason!r} for {answer.status}")
    for interim in result.interim:
        if interim.reason.lower() not in known_reason_phrases(interim.status):
            problems.append(f"reason phrase {interim.reason!r} for {interim.status}")
    ids = answer.values(b"X-Request-ID")
    if len(ids) != 1:
        problems.append(f"{len(ids)} X-Request-ID headers")
    elif not is_valid_request_id(ids[0]):
        problems.append(f"invalid X-Request-ID {ids[0]!r}")
    for server in answer.values(b"Server"):
        if _VERSIONED.search(server):
            problems.append(f"Server header names a version: {server!r}")
    if answer.status >= 500 and answer.status not in ALLOWED_5XX:
        problems.append(f"server error {answer.status}")
    has_body = not head_request
    if head_request and result.trailing:
        if strict_head:
            problems.append(f"the answer to HEAD has a body: {result.trailing[:200]!r}")
        else:
            # Not a well-formed HEAD request line: the server may well have
            # answered it as something else, body and all.
            has_body = True
            answer.body, result.trailing = result.trailing, b""
            lengths = answer.values(b"Content-Length")
            if lengths and lengths[0] != b"%d" % len(answer.body):
                problems.append(f"Content-Length {lengths[0]!r} for a {len(answer.body)}-byte body")
    elif result.trailing:
        problems.append(f"bytes after the answer's framing: {result.trailing[:200]!r}")
    if answer.status >= 300 and answer.status != 304 and has_body:
        problems.extend(error_body_problems(answer))
    return problems


def request_id_of(result: SocketExchange) -> str | None:
    """The X-Request-ID of the answer, when there is exactly one valid one."""
    if result.answer is None:
        return None
    ids = result.answer.values(b"X-Request-ID")
    if len(ids) == 1 and is_valid_request_id(ids[0]):
        return ids[0].decode("ascii")
    return None


# Rendering bytes in failure messages.

_LITERAL_LIMIT = 2000


def show_bytes(data: bytes, limit: int = _LITERAL_LIMIT) -> str:
    """
    ``data`` as a Python expression that evaluates to it, runs of a repeated
    unit of up to 8 bytes written as ``b'x' * n``; past ``limit`` characters
    of literal the rest is summarised (and the expression is no longer exact).
    """
    parts: list[str] = []
    literal = bytearray()
    shown = 0
    position = 0

    def flush() -> None:
        nonlocal shown
        if literal:
            parts.append(repr(bytes(literal)))
            shown += len(literal)
            literal.clear()

    while position < len(data):
        if shown + len(literal) > limit:
            flush()
            parts.append(f"<{len(data) - position} more bytes>")
            break
        best_unit, best_count = 0, 0
        for unit in range(1, 9):
            chunk = data[position : position + unit]
            if len(chunk) < unit:
                break
            count = 1
            while data[position + count * unit : position + (count + 1) * unit] == chunk:
                count += 1
            if count >= 4 and count * unit >= 24 and count * unit > best_count * best_unit:
                best_unit, best_count = unit, count
        if best_count:
            flush()
            unit_bytes = data[position : position + best_unit]
            parts.append(f"{unit_bytes!r} * {best_count}")
            position += best_unit * best_count
            continue
        literal.append(data[position])
        position += 1
    flush()
    return " + ".join(parts) if parts else "b''"


def show_exchange(result: SocketExchange) -> str:
    """The bytes sent and what came back, for a failure message."""
    got = show_bytes(result.received, 1200) if result.received else "nothing"
    how = []
    if result.timed_out:
        how.append("timed out")
    if result.reset:
        how.append("reset")
    elif result.eof:
        how.append("closed")
    if result.send_error:
        how.append(f"send failed: {result.send_error}")
    return f"sent: {show_bytes(result.sent)}\n    got: {got}" + (
        f" ({', '.join(how)})" if how else ""
    )
