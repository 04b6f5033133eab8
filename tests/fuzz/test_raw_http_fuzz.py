"""
The HTTP edge of a running node fuzzed with raw bytes over plain sockets:
request lines, header blocks and bodies no client library would send, at
the node's real routes (a ``twistd -n revenge`` with SQLite, local storage,
a media library with a dot-file, an administrator and a user with an avatar).

Every case goes on a fresh connection and must get, by the rules of
:func:`revenge.testing.answer_problems`:

1. a well-formed ``HTTP/1.1 NNN reason`` answer (known reason phrase, header
   lines that parse, a body matching Content-Length or its chunks, nothing
   past it on a connection it closes). The one case where no answer is
   right is a request the server cannot complete from what was sent (a
   chunk size promising more bytes than follow, no last chunk, a head that
   never ends in CRLF CRLF): those are sent with a half-close, and the
   server must then close without a byte, or answer as above. Every other
   request is complete by construction (a Content-Length a lenient reading
   could take is always backed by that many bytes), so that no answer within
   :data:`revenge.testing.ANSWER_TIMEOUT` is a failure;
2. one valid X-Request-ID, and on every error answer (not 1xx, 304 or to
   HEAD) the JSON body ``{"error": {"code", "message", "request_id"}}``
   with the same id; an access log line with that id and status;
3. no Server header naming a version; no 5xx but 501, 503, 505.

After each batch (one test): ``GET /healthz`` answers 200, the batch's log
lines have no ``critical`` or ``error`` line and no traceback, and nothing
changed (users, activity, stored avatar objects, the avatar as served, the
media files): the fuzz never sends a valid credential with an unsafe method
(valid tokens go only where they must not count: after ``;`` in a query,
in a query on a route other than /media, in a malformed Authorization).

Failures are collected over the whole batch rather than raised at the
first: with the edge's fixes still landing, one report lists every kind of
failure with its shortest cases, the bytes sent and what came back
(hypothesis does not shrink them; the bytes are shown exactly, runs written
as ``b'1' * 5000``).

``REVENGE_FUZZ_EXAMPLES`` sets the number of cases per fuzz test.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from revenge.testing import (
    ServerProcess,
    SocketExchange,
    add_user_with_cli,
    answer_problems,
    error_body_problems,
    put_avatar,
    write_sample_media_library,
    request_id_of,
    show_exchange,
    socket_exchange,
    wait_until,
)

from .tally import count_input, examples

ADMIN = "fuzz-admin"
USER = "alice"
LIBRARY = "movies"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
AVATAR_MAX_BYTES = 65536

# Placeholders in generated heads, replaced when a case is sent (the port
# and tokens exist only once the node runs). "~" is the token with its last
# character changed: well-formed, not valid.
PORT = b"<PORT>"
ADMIN_TOKEN = b"<ADMIN>"
USER_TOKEN = b"<ALICE>"
BAD_ADMIN_TOKEN = b"<ADMIN~>"
BAD_USER_TOKEN = b"<ALICE~>"

FIVE_THOUSAND_DIGITS = b"1" * 5000

# -- the node -------------------------------------------------------------------


@dataclass
class Snapshot:
    """What no fuzzed request may change."""

    users: list[tuple[Any, ...]]
    activity: list[tuple[Any, ...]]
    stored: dict[str, str]
    media: dict[str, str]
    avatar: tuple[int | None, bytes | None, str]


@dataclass
class Node:
    server: ServerProcess
    port: int
    workdir: Path
    media_root: Path
    admin_token: str
    user_token: str
    baseline: Snapshot | None = None
    sentinels: int = 0

    def fill_in(self, head: bytes) -> bytes:
        for placeholder, value in (
            (BAD_ADMIN_TOKEN, _spoil(self.admin_token)),
            (BAD_USER_TOKEN, _spoil(self.user_token)),
            (ADMIN_TOKEN, self.admin_token),
            (USER_TOKEN, self.user_token),
            (PORT, str(self.port)),
        ):
            head = head.replace(placeholder, value.encode("ascii"))
        return head


def _spoil(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _digest(root: Path, skip: Callable[[Path], bool]) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not skip(path):
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _not_stored_state(path: Path) -> bool:
    # The database is compared by its rows; the storage probe comes and goes.
    return path.name.startswith("revenge.db") or path.name.startswith("~probe-")


def take_snapshot(node: Node) -> Snapshot:
    database = node.workdir / "data" / "revenge.db"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        users = connection.execute(
            "SELECT name, is_admin, token_selector, token_verifier_hash, avatar_key"
            " FROM users ORDER BY name"
        ).fetchall()
        # Scheduled jobs record what they changed (actor NULL, "job.*"); no
        # fuzzed request may add a row, jobs run by hand included.
        activity = connection.execute(
            "SELECT id, actor, action, target FROM activity"
            " WHERE actor IS NOT NULL OR action NOT LIKE 'job.%' ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    avatar = socket_exchange(
        node.port,
        f"GET /api/v1/users/{USER}/avatar HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
    )
    answer = avatar.answer
    return Snapshot(
        users=users,
        activity=activity,
        stored=_digest(node.workdir / "data", _not_stored_state),
        media=_digest(node.media_root, lambda path: False),
        avatar=(
            None if answer is None else answer.status,
            None if answer is None else answer.value(b"ETag"),
            hashlib.sha256(b"" if answer is None else answer.body).hexdigest(),
        ),
    )


def snapshot_changes(before: Snapshot, after: Snapshot) -> list[str]:
    changes = []
    for name in ("users", "activity", "stored", "media", "avatar"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.append(f"{name} changed:\n      before {old!r}\n      after  {new!r}")
    return changes


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    workdir = tmp_path_factory.mktemp("raw-fuzzed-node")
    media_root = workdir / LIBRARY
    write_sample_media_library(media_root)
    env = {
        "REVENGE_DATABASE_URL": f"sqlite:///{workdir}/data/revenge.db",
        "REVENGE_DATA_DIR": str(workdir / "data"),
        "REVENGE_NODE_ID": "raw-fuzzed-node",
        "REVENGE_MEDIA_MOVIE_PATHS": str(media_root),
        "REVENGE_STORAGE_AVATAR_MAX_BYTES": str(AVATAR_MAX_BYTES),
    }
    # One after the other: both would migrate the new database.
    tokens = [
        add_user_with_cli(workdir, env, ADMIN, admin=True),
        add_user_with_cli(workdir, env, USER),
    ]
    with ServerProcess(workdir, env=env) as server:
        server.wait_ready()
        put_avatar(server.url, USER, tokens[0], PNG)
        running = Node(server, server.port, workdir, media_root, tokens[0], tokens[1])
        running.baseline = take_snapshot(running)
        assert running.baseline.avatar[0] == 200, running.baseline
        yield running


# -- cases and batches ----------------------------------------------------------


@dataclass(frozen=True)
class RawCase:
    """One request as bytes, and what the server can be expected to do with it."""

    head: bytes
    body: bytes = b""
    # The server has everything it needs to answer (see the module docstring).
    complete: bool = True
    # The first word of the request line is HEAD: the answer has no body...
    head_request: bool = False
    # ...and the line is a well-formed one, so a body would be wrong.
    strict_head: bool = False
    http10: bool = False


def plain_case(head: bytes, body: bytes = b"") -> RawCase:
    """A case from a head written by hand (well-formed request line)."""
    words = head.split(b"\r\n", 1)[0].split(b" ")
    is_head = words[0] == b"HEAD"
    return RawCase(
        head=head,
        body=body,
        head_request=is_head,
        strict_head=is_head,
        http10=len(words) == 3 and words[2] == b"HTTP/1.0",
    )


_NUMBER_OR_QUOTED = re.compile(r"b?'(?:[^'\\]|\\.)*'|b?\"(?:[^\"\\]|\\.)*\"|[0-9]+")


def _kind(problem: str) -> str:
    return _NUMBER_OR_QUOTED.sub("…", problem.split("\n", 1)[0])[:120]


class Batch:
    """
    Cases sent in one test, their problems collected, and the checks that
    follow every batch: the node's health, its log, its access lines, its state.
    """

    def __init__(self, node: Node, name: str) -> None:
        self.node = node
        self.name = name
        self.first_log = len(node.server.logs())
        self.cases = 0
        self.failures: dict[str, list[tuple[str, SocketExchange]]] = {}
        self.answered: list[tuple[str, int, SocketExchange]] = []
        self.by_request_id: dict[str, SocketExchange] = {}

    def send(self, case: RawCase) -> SocketExchange:
        result = socket_exchange(
            self.node.port,
            self.node.fill_in(case.head) + case.body,
            half_close=not case.complete,
            head_request=case.head_request,
        )
        self.cases += 1
        problems = answer_problems(
            result,
            complete=case.complete,
            head_request=case.head_request,
            strict_head=case.strict_head,
            http10_request=case.http10,
        )
        self.fail(problems, result)
        request_id = request_id_of(result)
        if request_id is not None and result.answer is not None:
            self.answered.append((request_id, result.answer.status, result))
            self.by_request_id[request_id] = result
        if self.cases % 250 == 0:
            self.fail(self._health_problems(), result)
        return result

    def fail(self, problems: list[str], result: SocketExchange | None) -> None:
        shown = result if result is not None else SocketExchange(sent=b"")
        for problem in problems:
            found = self.failures.setdefault(_kind(problem), [])
            if not any(other is shown and text == problem for text, other in found):
                found.append((problem, shown))

    def _health_problems(self) -> list[str]:
        process = self.node.server.process
        if process is not None and process.poll() is not None:
            return [f"the node exited with {process.returncode}"]
        health = socket_exchange(self.node.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        if health.answer is None or health.answer.status != 200:
            return [f"GET /healthz did not answer 200:\n    {show_exchange(health)}"]
        return []

    def _logs_until_now(self) -> list[dict[str, Any]]:
        """This batch's log lines, up to a sentinel request logged after all of them."""
        self.node.sentinels += 1
        sentinel = f"raw-fuzz-sentinel-{self.node.sentinels}"
        socket_exchange(
            self.node.port,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"X-Request-ID: {sentinel}\r\n\r\n".encode(),
        )
        self.node.server.wait_for_log(
            lambda record: (
                record.get("request_id") == sentinel and record.get("namespace") == "revenge.access"
            ),
            what=f"the access line of {sentinel}",
        )
        return self.node.server.logs()[self.first_log :]

    def _access_problems(self) -> None:
        def logged() -> set[tuple[Any, Any]]:
            return {
                (record.get("request_id"), record.get("status"))
                for record in self.node.server.logs()[self.first_log :]
                if record.get("namespace") == "revenge.access"
            }

        expected = {(request_id, status) for request_id, status, _ in self.answered}
        try:
            wait_until(lambda: expected <= logged(), 5, "every answer's access line")
        except TimeoutError:
            pass
        found = logged()
        for request_id, status, result in self.answered:
            if (request_id, status) not in found:
                self.fail(
                    [f"no access line with status {status} for the answer's request id"], result
                )

    def _log_problems(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            level = record.get("level")
            if level in ("critical", "error") or "traceback" in record or "log_failure" in record:
                cause = self.by_request_id.get(str(record.get("request_id")))
                message = str(record.get("message", ""))
                # Twisted's own "Unhandled Error" has its traceback in the message.
                traceback = str(record.get("traceback", "")) or message.partition("\n")[2]
                last = traceback.strip().splitlines()[-1:] or [""]
                where = [
                    line.strip()
                    for line in traceback.splitlines()
                    if line.strip().startswith('File "') and "/revenge/" in line
                ][-1:]
                # The exception first: problems are grouped by their start.
                text = f"logged {level}: {last[0][:200] or 'no traceback'}"
                text += f" (log line: {message.partition(chr(10))[0][:160]!r}"
                text += f"; {where[0][:160]})" if where else ")"
                if cause is None:
                    text += " [no request id: see the cases closed without an answer]"
                self.fail([text], cause)

    def finish(self) -> None:
        """The checks after the batch; fails with every problem found."""
        self.fail(self._health_problems(), None)
        records = self._logs_until_now()
        self._access_problems()
        self._log_problems(records)
        assert self.node.baseline is not None
        changes = snapshot_changes(self.node.baseline, take_snapshot(self.node))
        self.fail([f"state changed without valid auth: {change}" for change in changes], None)
        if self.failures:
            pytest.fail(self.report(), pytrace=False)

    def report(self, per_kind: int = 3) -> str:
        total = sum(len(found) for found in self.failures.values())
        kinds = len(self.failures)
        lines = [f"{self.name}: {total} problem(s) of {kinds} kind(s) in {self.cases} case(s)"]
        for kind, found in sorted(self.failures.items(), key=lambda item: -len(item[1])):
            lines.append(f"\n[{len(found)}x] {kind}")
            shortest = sorted(found, key=lambda item: len(item[1].sent))[:per_kind]
            for problem, result in shortest:
                lines.append(f"  - {problem}")
                if result.sent:
                    lines.append(f"    {show_exchange(result)}")
        return "\n".join(lines)


# -- known findings, and the controls that make them mean something -------------


def _head(line: str, *fields: str, host: bool = True) -> bytes:
    lines = [line]
    if host:
        lines.append("Host: 127.0.0.1:<PORT>")
    lines.extend(fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


Expectation = Callable[[SocketExchange], list[str]]


def status_in(*statuses: int) -> Expectation:
    def check(result: SocketExchange) -> list[str]:
        status = None if result.answer is None else result.answer.status
        if status not in statuses:
            return [f"expected {' or '.join(map(str, statuses))}, got {status}"]
        return []

    return check


def json_4xx(result: SocketExchange) -> list[str]:
    answer = result.answer
    if answer is None or not 400 <= answer.status < 500:
        return [f"expected a JSON 4xx, got {None if answer is None else answer.status}"]
    return error_body_problems(answer)


def json_4xx_or_501(result: SocketExchange) -> list[str]:
    answer = result.answer
    if answer is None or not (400 <= answer.status < 500 or answer.status == 501):
        return [f"expected a JSON 4xx or 501, got {None if answer is None else answer.status}"]
    return error_body_problems(answer)


def no_body(result: SocketExchange) -> list[str]:
    if result.answer is not None and (result.answer.body or result.trailing):
        return ["the answer to HEAD has a body"]
    return []


def both(*checks: Expectation) -> Expectation:
    return lambda result: [problem for check in checks for problem in check(result)]


BEARER_ADMIN = "Authorization: Bearer <ADMIN>"
BEARER_USER = "Authorization: Bearer <ALICE>"
POSTER = f"/media/{LIBRARY}/poster.jpg"

# (id, case, expectation): requests that must work, so that the findings
# below are not passing (or failing) for a reason of their own.
CONTROLS: list[tuple[str, RawCase, Expectation]] = [
    ("GET /healthz", plain_case(_head("GET /healthz HTTP/1.1")), status_in(200)),
    ("GET /readyz", plain_case(_head("GET /readyz HTTP/1.1")), status_in(200)),
    ("GET /metrics", plain_case(_head("GET /metrics HTTP/1.1")), status_in(200)),
    (
        "GET /api/v1/openapi.json",
        plain_case(_head("GET /api/v1/openapi.json HTTP/1.1")),
        status_in(200),
    ),
    (
        "HTTP/1.0 GET /healthz",
        plain_case(_head("GET /healthz HTTP/1.0", host=False)),
        status_in(200),
    ),
    (
        "GET the avatar",
        plain_case(_head(f"GET /api/v1/users/{USER}/avatar HTTP/1.1")),
        status_in(200),
    ),
    (
        "PUT the avatar without a token is 401",
        plain_case(
            _head(
                f"PUT /api/v1/users/{USER}/avatar HTTP/1.1",
                "Content-Type: image/png",
                f"Content-Length: {len(PNG)}",
            ),
            PNG,
        ),
        both(status_in(401), json_4xx),
    ),
    (
        "GET a media file with a bearer token",
        plain_case(_head(f"GET {POSTER} HTTP/1.1", BEARER_ADMIN)),
        status_in(200),
    ),
    (
        "HEAD a media file",
        plain_case(_head(f"HEAD {POSTER} HTTP/1.1", BEARER_ADMIN)),
        both(status_in(200), no_body),
    ),
    (
        "GET a range of a media file",
        plain_case(_head(f"GET {POSTER} HTTP/1.1", BEARER_ADMIN, "Range: bytes=2-9")),
        status_in(206),
    ),
    (
        "GET a media file with ?token=",
        plain_case(_head(f"GET {POSTER}?token=<ALICE> HTTP/1.1")),
        status_in(200),
    ),
    (
        "GET a media file with ?a=1&token=",
        plain_case(_head(f"GET {POSTER}?a=1&token=<ALICE> HTTP/1.1")),
        status_in(200),
    ),
    (
        "GET a media file without a token is 401",
        plain_case(_head(f"GET {POSTER}?a=1 HTTP/1.1")),
        both(status_in(401), json_4xx),
    ),
    (
        "POST /api/v1/users with a JSON array is 400",
        plain_case(
            _head(
                "POST /api/v1/users HTTP/1.1",
                BEARER_ADMIN,
                "Content-Type: application/json",
                "Content-Length: 2",
            ),
            b"[]",
        ),
        both(status_in(400), json_4xx),
    ),
    (
        "a 5000-digit number in POST /api/v1/users (admin) is a 400",
        plain_case(
            _head(
                "POST /api/v1/users HTTP/1.1",
                BEARER_ADMIN,
                "Content-Type: application/json",
                f"Content-Length: {len(FIVE_THOUSAND_DIGITS) + 10}",
            ),
            b'{"name": ' + FIVE_THOUSAND_DIGITS + b"}",
        ),
        both(status_in(400), json_4xx),
    ),
]

DEEP_JSON = b"[" * 5000 + b"]" * 5000

FINDINGS: list[tuple[str, RawCase, Expectation]] = [
    (
        "PUT Xapi/v1/users/alice/avatar is a 400, not routed",
        plain_case(
            _head(
                f"PUT Xapi/v1/users/{USER}/avatar HTTP/1.1",
                "Content-Type: image/png",
                f"Content-Length: {len(PNG)}",
            ),
            PNG,
        ),
        both(status_in(400), json_4xx),
    ),
    (
        "GET Xapi/v1/openapi.json is a 400, not routed",
        plain_case(_head("GET Xapi/v1/openapi.json HTTP/1.1")),
        both(status_in(400), json_4xx),
    ),
    (
        "Content-Length of 5000 digits is a 400 with an access line",
        plain_case(
            _head(
                "POST /api/v1/users HTTP/1.1",
                "Content-Type: application/json",
                "Content-Length: " + "1" * 5000,
            ),
            b"{}",
        ),
        both(status_in(400), json_4xx),
    ),
    (
        "Range bytes=<5000 digits>- on a media file is not a 5xx",
        plain_case(
            _head(f"GET {POSTER} HTTP/1.1", BEARER_ADMIN, "Range: bytes=" + "1" * 5000 + "-")
        ),
        status_in(416, 200),
    ),
    (
        "Range bytes=0-<5000 digits> on a media file is not a 5xx",
        plain_case(_head(f"GET {POSTER} HTTP/1.1", BEARER_ADMIN, "Range: bytes=0-" + "1" * 5000)),
        status_in(206, 200),
    ),
    (
        "Range bytes=-<5000 digits> on a media file is not a 5xx",
        plain_case(_head(f"GET {POSTER} HTTP/1.1", BEARER_ADMIN, "Range: bytes=-" + "1" * 5000)),
        status_in(206, 200),
    ),
    (
        "5000-deep JSON on POST /api/v1/users (admin) is a 400",
        plain_case(
            _head(
                "POST /api/v1/users HTTP/1.1",
                BEARER_ADMIN,
                "Content-Type: application/json",
                f"Content-Length: {len(DEEP_JSON)}",
            ),
            DEEP_JSON,
        ),
        both(status_in(400), json_4xx),
    ),
    ("GET /%ff is a 400", plain_case(_head("GET /%ff HTTP/1.1")), both(status_in(400), json_4xx)),
    (
        "Host: \\xff is a 400",
        plain_case(_head("GET /healthz HTTP/1.1", "Host: \xff", host=False)),
        both(status_in(400), json_4xx),
    ),
    ("GET * is a JSON 4xx", plain_case(_head("GET * HTTP/1.1")), json_4xx),
    ("OPTIONS * is a JSON 4xx", plain_case(_head("OPTIONS * HTTP/1.1")), json_4xx),
    (
        "a media library's dot-file is a 404",
        plain_case(_head(f"GET /media/{LIBRARY}/.hidden HTTP/1.1", BEARER_ADMIN)),
        both(status_in(404), json_4xx),
    ),
    (
        "Transfer-Encoding chunked then identity is a 400",
        plain_case(
            _head(
                "POST /api/v1/users HTTP/1.1",
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: identity",
            ),
            b"2\r\n{}\r\n0\r\n\r\n",
        ),
        both(status_in(400), json_4xx),
    ),
    (
        "a token after ; in the query does not authenticate /media",
        plain_case(_head(f"GET {POSTER}?a=1;token=<ALICE> HTTP/1.1")),
        both(status_in(401), json_4xx),
    ),
]


# Found by the fuzzers below; kept as explicit cases so that every run tries them.
FOUND_BY_FUZZING: list[tuple[str, RawCase, Expectation]] = [
    (
        "Content-Length of 5000 zeros (a valid 0) is answered",
        plain_case(_head("OPTIONS /healthz HTTP/1.1", "Content-Length: " + "0" * 5000)),
        lambda result: [],
    ),
    (
        "Content-Length of 5000 zeros then 7 is answered",
        plain_case(
            _head("POST /api/v1/users HTTP/1.1", "Content-Length: " + "0" * 5000 + "7"), b"{}12345"
        ),
        lambda result: [],
    ),
    (
        "a Host with a 64-character label is not a 5xx",
        plain_case(_head("GET /healthz HTTP/1.1", "Host: " + "a" * 64, host=False)),
        status_in(200, 400),
    ),
    (
        "a Host of 817 digits is not a 5xx",
        plain_case(_head("GET /healthz HTTP/1.1", "Host: " + "9" * 817, host=False)),
        status_in(200, 400),
    ),
    (
        "a percent-encoded non-ASCII query name is answered",
        plain_case(_head("GET /healthz?%C3%A9=%C3%A9 HTTP/1.1")),
        status_in(200),
    ),
    (
        "HEAD refused while parsing (Host: \\xff) has no body",
        plain_case(_head("HEAD /healthz HTTP/1.1", "Host: \xff", host=False)),
        status_in(400),  # the body: checked by answer_problems
    ),
    (
        "HEAD with a target not starting with / has no body",
        plain_case(_head("HEAD Xapi/v1/openapi.json HTTP/1.1")),
        status_in(400),  # the body: checked by answer_problems
    ),
    (
        "a lowercase method on /metrics gets a JSON error",
        plain_case(_head("get /metrics HTTP/1.1")),
        json_4xx_or_501,
    ),
]


def _run_one(node: Node, name: str, case: RawCase, expect: Expectation) -> None:
    batch = Batch(node, name)
    result = batch.send(case)
    count_input("raw http: known cases")
    batch.fail(expect(result), result)
    batch.finish()


@pytest.mark.parametrize(
    "case, expect", [(case, expect) for _, case, expect in CONTROLS], ids=[c[0] for c in CONTROLS]
)
def test_control_requests_answer_as_expected(
    node: Node, case: RawCase, expect: Expectation
) -> None:
    _run_one(node, "control", case, expect)


@pytest.mark.parametrize(
    "case, expect", [(case, expect) for _, case, expect in FINDINGS], ids=[f[0] for f in FINDINGS]
)
def test_known_finding(node: Node, case: RawCase, expect: Expectation) -> None:
    _run_one(node, "known finding", case, expect)


@pytest.mark.parametrize(
    "case, expect",
    [(case, expect) for _, case, expect in FOUND_BY_FUZZING],
    ids=[f[0] for f in FOUND_BY_FUZZING],
)
def test_found_by_fuzzing(node: Node, case: RawCase, expect: Expectation) -> None:
    _run_one(node, "found by fuzzing", case, expect)


def _read_head(sock: socket.socket, deadline: float) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_too_many_uploads_is_429_too_many_requests(node: Node) -> None:
    """
    Two uploads of one user hold both of its slots (admitted: "100 Continue",
    the bodies never sent); a third is refused at once with 429 and the
    reason phrase "Too Many Requests". The held uploads are then abandoned,
    so the avatar stays as it was.
    """
    batch = Batch(node, "429")
    head = _head(
        f"PUT /api/v1/users/{USER}/avatar HTTP/1.1",
        BEARER_USER,
        "Content-Type: image/png",
        f"Content-Length: {len(PNG)}",
        "Expect: 100-continue",
    )
    holders = []
    try:
        for _ in range(2):
            holder = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            holders.append(holder)
            holder.sendall(node.fill_in(head))
            interim = _read_head(holder, time.monotonic() + 10)
            assert interim.startswith(b"HTTP/1.1 100 "), interim
        result = batch.send(plain_case(head))
        count_input("raw http: known cases")
        batch.fail(both(status_in(429), json_4xx)(result), result)
        if result.answer is not None and result.answer.status == 429:
            if result.answer.reason != b"Too Many Requests":
                batch.fail([f"429 with reason phrase {result.answer.reason!r}"], result)
            if result.answer.value(b"Retry-After") is None:
                batch.fail(["429 without Retry-After"], result)
    finally:
        for holder in holders:
            holder.close()
    batch.finish()


# -- what the fuzzers draw from ---------------------------------------------------

ROUTE_PATHS = [
    b"/healthz",
    b"/readyz",
    b"/metrics",
    b"/api/v1/openapi.json",
    b"/api/v1/users",
    b"/api/v1/users/alice",
    b"/api/v1/users/alice/avatar",
    b"/api/v1/users/fuzz-admin/avatar",
    b"/api/v1/users/nobody/avatar",
    b"/api/v1/cluster",
    b"/api/v1/activity",
    b"/api/v1/jobs",
    b"/api/v1/jobs/avatar_sweep/run",
    b"/api/v1/libraries",
    b"/api/v1/libraries/movies/items",
    b"/media/movies/poster.jpg",
    b"/media/movies/.hidden",
    b"/media/movies/Film%20(2001)/film.mkv",
    b"/media/movies/empty.srt",
    b"/media/movies/",
    b"/media/elsewhere/poster.jpg",
    b"/",
]

# Routes and the method that sends them a body.
BODY_ROUTES = [
    (b"POST", b"/api/v1/users"),
    (b"PUT", b"/api/v1/users/alice/avatar"),
    (b"PUT", b"/api/v1/users/fuzz-admin/avatar"),
    (b"POST", b"/api/v1/jobs/avatar_sweep/run"),
    (b"DELETE", b"/api/v1/users/alice"),
    (b"DELETE", b"/api/v1/users/alice/avatar"),
    (b"POST", b"/healthz"),
    (b"PUT", b"/media/movies/poster.jpg"),
    (b"GET", b"/api/v1/users/alice/avatar"),
    (b"PATCH", b"/api/v1/users/alice"),
]

ESCAPES = [
    b"%ff",
    b"%FF",
    b"%fe%ff",
    b"%00",
    b"%2F",
    b"%2f",
    b"%2e",
    b"%2e%2e",
    b"%5C",
    b"%",
    b"%f",
    b"%g0",
    b"%zz",
    b"%%",
    b"%c3%28",
    b"%e2%82",
    b"%ed%a0%80",
    b"%c0%af",
    b"%f4%90%80%80",
    b"%0d%0a",
    b"%20",
    b"%25",
    b"%u0041",
    b"%C3%A9",
    b"%3F",
    b"%23",
]
CONTROL_BYTES = [bytes([byte]) for byte in [*range(0x20), 0x7F]]
LONG_DIGITS = [b"1" * n for n in (19, 20, 40, 400, 4300, 4301, 5000)] + [b"0" * 5000 + b"7"]

long_digits = st.one_of(st.sampled_from(LONG_DIGITS), st.integers(19, 6000).map(lambda n: b"9" * n))
high_bytes = st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=4).map(bytes)
any_bytes = st.binary(min_size=1, max_size=24)


def _no_crlf(data: bytes) -> bytes:
    """Bytes that cannot end a line where a CRLF parser would not expect it."""
    while b"\r\n" in data:
        data = data.replace(b"\r\n", b"\r")
    return data


def _insert(data: bytes, at: int, extra: bytes) -> bytes:
    at = min(at, len(data))
    return data[:at] + extra + data[at:]


@st.composite
def mutated_paths(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(ROUTE_PATHS))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "escape",
                    "escape",
                    "high",
                    "control",
                    "digits",
                    "segment-digits",
                    "double-slash",
                    "dots",
                    "upper",
                    "encode",
                    "trailing",
                    "raw",
                ]
            )
        )
        at = draw(st.integers(0, len(path)))
        if kind == "escape":
            path = _insert(path, at, draw(st.sampled_from(ESCAPES)))
        elif kind == "high":
            path = _insert(path, at, draw(high_bytes))
        elif kind == "control":
            path = _insert(path, at, draw(st.sampled_from(CONTROL_BYTES)))
        elif kind == "digits":
            path = _insert(path, at, draw(long_digits))
        elif kind == "segment-digits":
            segments = path.split(b"/")
            index = draw(st.integers(0, len(segments) - 1))
            segments[index] = draw(long_digits)
            path = b"/".join(segments)
        elif kind == "double-slash":
            path = _insert(path, at, b"/")
        elif kind == "dots":
            path = _insert(path, at, draw(st.sampled_from([b"/./", b"/../", b"/%2e%2e/", b"/.."])))
        elif kind == "upper":
            path = path.upper()
        elif kind == "encode":
            path = b"".join(b"%%%02X" % byte if byte != 0x2F else b"/" for byte in path)
        elif kind == "trailing":
            path = path + draw(st.sampled_from([b"/", b"?", b"#", b"#frag", b"?#", b";"]))
        else:
            path = _insert(path, at, draw(any_bytes))
    return path


QUERY_PARTS = [
    b"token=<ALICE>",
    b"token=<ALICE~>",
    b"token=<ADMIN>",
    b"token=<ADMIN~>",
    b"token=",
    b"a=1",
    b"limit=1",
    b"limit=0",
    b"limit=-1",
    b"path=Film%20(2001)",
    b"path=..",
    b"path=%2e%2e",
    b"cursor=abc",
    b"cursor=",
    b"before=1",
    b"%ff=1",
    b"a=%ff",
    b"a=%",
    b"a=%zz",
    b"a=%00",
    b"a==",
    b"",
    b"=",
    b"a=1;token=<ALICE>",
    b"token=<ALICE>;a=1",
]


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 2)) == 0:
        return b""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 5))
        if kind <= 2:
            parts.append(draw(st.sampled_from(QUERY_PARTS)))
        elif kind == 3:
            name = draw(st.sampled_from([b"limit", b"before", b"cursor", b"path", b"token"]))
            parts.append(name + b"=" + draw(long_digits))
        elif kind == 4:
            parts.append(draw(high_bytes) + b"=" + draw(any_bytes))
        else:
            parts.append(draw(st.sampled_from(ESCAPES)) + b"=" + draw(st.sampled_from(ESCAPES)))
    separator = draw(st.sampled_from([b"&", b"&", b";"]))
    return b"?" + separator.join(parts)


HOSTS = [
    b"127.0.0.1:<PORT>",
    b"localhost",
    b"example.com",
    b"\xff",
    b"h\xc3\xa9llo",
    b"",
    b"[::1]:<PORT>",
    b"user@127.0.0.1",
    b"127.0.0.1:" + b"9" * 20,
    b"a%20b",
    b"a b",
]


@st.composite
def targets(draw: st.DrawFn) -> bytes:
    form = draw(
        st.sampled_from(
            ["origin"] * 6
            + ["asterisk", "absolute", "absolute", "no-slash", "prefixed", "prefixed"]
            + ["authority", "network-path", "empty", "long"]
        )
    )
    path = draw(mutated_paths())
    query = draw(queries())
    if form == "origin":
        return path + query
    if form == "asterisk":
        return draw(st.sampled_from([b"*", b"*", b"**", b"*/healthz", b"*?a=1", b"*" + query]))
    if form == "absolute":
        scheme = draw(
            st.sampled_from(
                [b"http://", b"https://", b"HTTP://", b"hTtP://", b"ftp://", b"http:/", b"http:"]
            )
        )
        return scheme + draw(st.sampled_from(HOSTS)) + path + query
    if form == "no-slash":
        return path.lstrip(b"/") + query
    if form == "prefixed":
        first = draw(st.sampled_from([b"X", b"x", b".", b"\\", b"~", b"%2F", b"\xff", b"\x00"]))
        return first + path.lstrip(b"/") + query
    if form == "authority":
        return draw(st.sampled_from([b"127.0.0.1:<PORT>", b"localhost:80", b"[::1]:80"]))
    if form == "network-path":
        return b"//127.0.0.1:<PORT>" + path + query
    if form == "empty":
        return b""
    return path + b"/" + b"a" * draw(st.sampled_from([1000, 8000, 16000, 17000]))


COMMON_METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]
ODD_METHODS = [
    b"TRACE",
    b"CONNECT",
    b"PROPFIND",
    b"BREW",
    b"M-SEARCH",
    b"get",
    b"Get",
    b"hEAD",
    b"delete",
    b"GET\x00",
    b"G\xffT",
    b"\xff\xfe",
    b"GET\t",
    b"1234",
    b"*",
    b"G(T",
    b"POST\x7f",
    b"A" * 5000,
    b"HEAD\x0b",
]
methods = st.one_of(
    st.sampled_from(COMMON_METHODS),
    st.sampled_from(COMMON_METHODS),
    st.sampled_from(ODD_METHODS),
    st.binary(min_size=1, max_size=8),
)
VERSIONS = [b"HTTP/1.1"] * 8 + [
    b"HTTP/1.0",
    b"HTTP/1.0",
    b"HTTP/0.9",
    b"HTTP/2.0",
    b"HTTP/1.2",
    b"HTTP/1.10",
    b"http/1.1",
    b"HTTP/1.1 ",
    b"HTTP/1.1\x00",
    b"HTTP/11",
    b"HTTP/" + b"1" * 5000,
    b"",
    b"HTTP/1.1 extra",
    b"\xffHTTP/1.1",
    b"HTTP/1.1\x0b",
]
SEPARATORS = [b" "] * 8 + [b"  ", b"\t", b" \t", b"\x0b", b""]
TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


@dataclass(frozen=True)
class RequestLine:
    line: bytes
    method: bytes
    # The line is method SP target SP HTTP/1.x with a token method and a
    # target without whitespace: the server parses it as such.
    strict: bool
    version: bytes

    @property
    def head_request(self) -> bool:
        words = self.line.split()
        return bool(words) and words[0] == b"HEAD"

    @property
    def safe(self) -> bool:
        """A valid credential may go with it: a well-formed GET or HEAD."""
        return self.strict and self.method in (b"GET", b"HEAD")


def _request_line(
    method: bytes, target: bytes, version: bytes, first: bytes, second: bytes
) -> RequestLine:
    method, target, version = _no_crlf(method), _no_crlf(target), _no_crlf(version)
    line = method + first + target + (second + version if version else b"")
    strict = (
        first == second == b" "
        and bool(method)
        and set(method) <= TOKEN_CHARS
        and bool(target)
        and not any(byte <= 0x20 or byte == 0x7F for byte in target)
        and version in (b"HTTP/1.0", b"HTTP/1.1")
    )
    return RequestLine(_no_crlf(line), method, strict, version)


@st.composite
def request_lines(draw: st.DrawFn) -> RequestLine:
    return _request_line(
        draw(methods),
        draw(targets()),
        draw(st.sampled_from(VERSIONS)),
        draw(st.sampled_from(SEPARATORS)),
        draw(st.sampled_from(SEPARATORS)),
    )


@st.composite
def route_request_lines(draw: st.DrawFn, with_body: bool = False) -> RequestLine:
    """A well-formed request line at a real route (the header and body fuzzers' base)."""
    if with_body:
        method, path = draw(st.sampled_from(BODY_ROUTES))
    else:
        method = draw(st.sampled_from(COMMON_METHODS))
        path = draw(st.sampled_from(ROUTE_PATHS))
    query = draw(queries()) if draw(st.integers(0, 3)) == 0 else b""
    version = draw(st.sampled_from([b"HTTP/1.1"] * 5 + [b"HTTP/1.0"]))
    return _request_line(method, path + query, version, b" ", b" ")


# Header fields. A field is ("line", bytes), or a framing header whose value
# depends on the body: ("cl", name, ContentLength) and ("te", name, value).


@dataclass(frozen=True)
class ContentLength:
    """A Content-Length value, written once the body's length is known."""

    form: str
    arg: int = 0
    literal: bytes = b""

    def render(self, length: int) -> bytes:
        n, k = length, self.arg
        return {
            "exact": b"%d" % n,
            "spaced": b" %d \t" % n,
            "zeros": b"000%d" % n,
            "minus": b"%d" % max(n - k, 0),
            "plus": b"%d" % (n + k),
            "list-same": b"%d, %d" % (n, n),
            "list-differ": b"%d, %d" % (n, n + k + 1),
            "signed": b"+%d" % n,
            "negative": b"-%d" % n,
            "hex": b"0x%x" % n,
            "float": b"%d.0" % n,
            "nul": b"%d\x00" % n,
            "semicolon": b"%d;" % n,
            "two": b"%d %d" % (n, n),
        }.get(self.form, self.literal)


HUGE_LENGTHS = [
    b"2097153",
    b"10000000000",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"99999999999999999999",
    FIVE_THOUSAND_DIGITS,
    b"0" * 5000,
    b"0" * 5000 + b"7",
    b"9" * 4301,
]
JUNK_LENGTHS = [b"", b"abc", b"\xff", "\u0663".encode(), b"1e3", b"NaN", b" ", b"\t", b"five"]

content_lengths = st.one_of(
    st.just(ContentLength("exact")),
    st.just(ContentLength("exact")),
    st.sampled_from(
        [
            ContentLength(form)
            for form in (
                "spaced",
                "zeros",
                "list-same",
                "signed",
                "negative",
                "hex",
                "float",
                "nul",
                "semicolon",
                "two",
            )
        ]
    ),
    st.builds(ContentLength, st.sampled_from(["minus", "plus", "list-differ"]), st.integers(1, 64)),
    st.builds(
        ContentLength, st.just("literal"), st.just(0), st.sampled_from(HUGE_LENGTHS + JUNK_LENGTHS)
    ),
)
CL_NAMES = [b"Content-Length"] * 5 + [b"content-length", b"CONTENT-LENGTH"]
TE_NAMES = [b"Transfer-Encoding"] * 5 + [b"transfer-encoding", b"TRANSFER-ENCODING"]
TE_VALUES = [b"chunked"] * 4 + [
    b"identity",
    b"Chunked",
    b"CHUNKED",
    b" chunked",
    b"chunked ",
    b"gzip, chunked",
    b"chunked, identity",
    b"identity, chunked",
    b"chunked, chunked",
    b"gzip",
    b"deflate",
    b"chunked;q=1",
    b"xchunked",
    b"chunked\x00",
    b"chunk",
    b"",
    b"\xffchunked",
    b"chunked\x0b",
]

Field = tuple[Any, ...]

RANGES = [
    b"bytes=" + FIVE_THOUSAND_DIGITS + b"-",
    b"bytes=0-" + FIVE_THOUSAND_DIGITS,
    b"bytes=-" + FIVE_THOUSAND_DIGITS,
    b"bytes=" + FIVE_THOUSAND_DIGITS + b"-" + FIVE_THOUSAND_DIGITS,
    b"bytes=0-0," * 100 + b"0-0",
    b"bytes=1-0",
    b"bytes=-0",
    b"bytes=-",
    b"bytes=",
    b"items=0-1",
    b"bytes=0-1",
    b"bytes=500-",
    b"bytes=99999999999999999999-",
    b"bytes=\xff-",
    b"bytes= 0 - 1 ",
    b"bytes=0--1",
    b"bytes=0-1,,,",
    b"BYTES=0-1",
]
CONDITIONALS = [
    b"If-None-Match: *",
    b'If-None-Match: "' + b"a" * 5000 + b'"',
    b"If-None-Match: W/",
    b'If-Match: "x"',
    b"If-Match: ,,,",
    b"If-Modified-Since: Sun, 06 Nov 99999999 08:49:37 GMT",
    b"If-Modified-Since: " + FIVE_THOUSAND_DIGITS,
    b"If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
    b'If-Range: "x"',
    b"If-Range: Sun, 06 Nov 1994 08:49:37 GMT",
    b"If-Range: " + b"\xff" * 10,
]
# Authorization that must not authenticate anyone, for any method.
BAD_AUTHORIZATIONS = [
    b"Bearer <ADMIN~>",
    b"Bearer <ALICE~>",
    b"Bearer",
    b"Bearer ",
    b"Bearer  <ALICE~>",
    b"Basic YWxpY2U6cGFzc3dvcmQ=",
    b"Bearer " + b"a" * 5000,
    b"Bearer \xff\xfe",
    b"Bearer rvg_",
    b"Bearer rvg_" + b"0" * 16 + b"_" + b"A" * 43,
    b"Token <ADMIN~>",
    b"\x00",
    b"",
    b"Bearer <ALICE~>, Bearer <ADMIN~>",
]
SAFE_AUTHORIZATIONS = [b"Bearer <ADMIN>", b"Bearer <ALICE>"]
OTHER_LINES = [
    b"Connection: close",
    b"Connection: keep-alive",
    b"Connection: close, \xff",
    b"Connection:",
    b"Expect: 100-continue",
    b"Expect: \xff",
    b"Content-Type: application/json",
    b"Content-Type: image/png",
    b"Content-Type: \x00",
    b"Content-Type: " + b"a/" * 3000,
    b"Cookie: token=<ADMIN>",
    b"X-Token: <ADMIN>",
    b"X-Request-ID: raw-fuzz-valid-id",
    b"X-Request-ID: " + b"a" * 129,
    b"X-Request-ID: a b",
    b"X-Request-ID: \xff",
    b"Accept: */*",
    b"Accept-Encoding: gzip",
    b"Upgrade: h2c",
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
    b"X-Forwarded-For: \xff",
    b'Forwarded: for="\xff"',
    b"Origin: null",
    b"Trailer: Content-Length",
    b"X-Long: " + b"a" * 5000,
    b"Keep-Alive: " + FIVE_THOUSAND_DIGITS,
]
MALFORMED_LINES = [
    # obs-fold continuations, right after some header or first of all
    b" folded",
    b"\tfolded",
    b" Content-Length: 5",
    b" \xff",
    # bare LF and CR inside a line
    b"X-Fuzz-A: a\nX-Fuzz-B: b",
    b"X-Fuzz-A: a\rX-Fuzz-B: b",
    b"X-Fuzz: a\n",
    b"\nX-Fuzz: a",
    # no colon, NUL, space before the colon, empty or odd names
    b"NoColonHere",
    b"X-Fuzz value",
    b"X-Fuzz: a\x00b",
    b"X-Fu\x00zz: a",
    b"\x00",
    b"Content-Length : 5",
    b"Host : x",
    b"Transfer-Encoding : chunked",
    b": value",
    b":",
    b"X-\xff: \xfe",
    b"\xff\xfe: x",
    b"X Fuzz: a",
    b"X-Fuzz:: a",
    b"X-Fuzz:\x7f",
]


@st.composite
def host_fields(draw: st.DrawFn) -> list[Field]:
    choice = draw(st.integers(0, 9))
    if choice <= 5:
        return [("line", b"Host: 127.0.0.1:<PORT>")]
    if choice == 6:
        return []
    if choice == 7:
        return [
            ("line", b"Host: 127.0.0.1:<PORT>"),
            ("line", b"Host: " + draw(st.sampled_from(HOSTS))),
        ]
    value = draw(st.one_of(st.sampled_from(HOSTS), high_bytes, long_digits, any_bytes))
    return [("line", b"Host: " + value)]


@st.composite
def header_fields(draw: st.DrawFn, safe: bool, framing: bool = True) -> list[Field]:
    fields: list[Field] = draw(host_fields())
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(
            st.sampled_from(
                [
                    "cl",
                    "cl",
                    "te",
                    "range",
                    "conditional",
                    "auth",
                    "other",
                    "other",
                    "malformed",
                    "malformed",
                    "random",
                    "many",
                ]
            )
        )
        if kind == "cl" and framing:
            fields.append(("cl", draw(st.sampled_from(CL_NAMES)), draw(content_lengths)))
        elif kind == "te" and framing:
            fields.append(("te", draw(st.sampled_from(TE_NAMES)), draw(st.sampled_from(TE_VALUES))))
        elif kind == "range":
            fields.append(("line", b"Range: " + draw(st.sampled_from(RANGES))))
        elif kind == "conditional":
            fields.append(("line", draw(st.sampled_from(CONDITIONALS))))
        elif kind == "auth":
            values = BAD_AUTHORIZATIONS + (SAFE_AUTHORIZATIONS * 3 if safe else [])
            fields.append(("line", b"Authorization: " + draw(st.sampled_from(values))))
        elif kind == "other":
            fields.append(("line", draw(st.sampled_from(OTHER_LINES))))
        elif kind == "malformed":
            fields.append(("line", draw(st.sampled_from(MALFORMED_LINES))))
        elif kind == "random":
            name = draw(
                st.sampled_from([b"X-Fuzz", b"Host", b"Range", b"Authorization", b"X-Request-ID"])
            )
            fields.append(("line", name + b": " + draw(st.binary(min_size=0, max_size=40))))
        else:
            fields.extend(
                ("line", b"X-N%d: v" % index)
                for index in range(draw(st.sampled_from([50, 99, 101, 150])))
            )
    return draw(st.permutations(fields))


# Bodies.

deep_json = st.builds(
    lambda opener, depth, closed: (
        opener * depth + ((b"1" + b"]" * depth) if closed and opener == b"[" else b"")
    ),
    st.sampled_from([b"[", b'{"a":', b'{"name":', b'[{"a":']),
    st.one_of(st.sampled_from([32, 33, 100, 1000, 4999, 5000, 10000]), st.integers(1, 6000)),
    st.booleans(),
)
HUGE_NUMBERS = [
    FIVE_THOUSAND_DIGITS,
    b"-" + b"9" * 5000,
    b"1e99999",
    b"1" + b"0" * 400 + b"e-99999",
    b"0." + b"1" * 5000,
    b'{"name": ' + FIVE_THOUSAND_DIGITS + b"}",
    b'{"name": "x", "admin": ' + FIVE_THOUSAND_DIGITS + b"}",
    b"[" + b"1" * 4300 + b"]",
    b"[" + b"1" * 4301 + b"]",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'{"name": 1e400}',
    b"[1e999999999999]",
    b'{"name": -' + b"9" * 4301 + b"}",
    b'{"admin": ' + b"1" * 4301 + b"}",
]
INVALID_UTF8 = [
    b'{"name": "\xff\xfe"}',
    b"\xc3\x28",
    b'{"name": "\xc0\xaf"}',
    b'"\xed\xa0\x80"',
    b'\xef\xbb\xbf{"name": 1}',
    b'{"name": "\x80"}',
    b"\xfe\xff\x00{",
    '{"name": 1}'.encode("utf-16"),
    b'{"na\xffme": "x"}',
    b'{"name": "\xf4\x90\x80\x80"}',
    b"\x00" * 16,
]
NOT_A_USER = [
    b"{}",
    b"[]",
    b'"name"',
    b"1",
    b"null",
    b'{"name": null}',
    b'{"name": []}',
    b'{"name": {}}',
    b'{"admin": true}',
    b'{"name": 5, "admin": false}',
    b'{"name": true}',
    b"{",
    b"",
]
bodies = st.one_of(
    deep_json,
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(INVALID_UTF8),
    st.sampled_from(NOT_A_USER),
    st.binary(max_size=200),
    st.binary(max_size=64).map(lambda tail: PNG[:32] + tail),
    st.builds(lambda junk: junk + PNG, high_bytes),
)


def could_create_a_user(content: bytes) -> bool:
    """Whether ``content`` is a body POST /api/v1/users might take (never sent with a token)."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return isinstance(document, dict) and isinstance(document.get("name"), str)


# Chunked bodies: a plan of chunks, some of them broken.

BAD_SIZES = [
    b"-1",
    b"0x5",
    b"+5",
    b"g",
    b"",
    b"5 5",
    b"\x00",
    b"\xff",
    b"5\x00",
    b"1_0",
    b"0.5",
    b"five",
    b"-0",
]
HUGE_SIZES = [b"f" * 16, b"7fffffffffffffff", b"f" * 20, b"1" * 1000, b"1" * 1100, b"100000"]
TERMINATORS = [b"0\r\n\r\n"] * 5 + [
    b"0\r\nX-Trailer: 1\r\n\r\n",
    b"000\r\n\r\n",
    b"0;a=b\r\n\r\n",
    b"",
    b"0\r\n",
    b"0\r\nBad Trailer\r\n\r\n",
    b"0\r\n\x00\r\n\r\n",
]
COMPLETE_TERMINATORS = frozenset(t for t in TERMINATORS if t.endswith(b"\r\n\r\n"))


@dataclass(frozen=True)
class ChunkPlan:
    ops: tuple[tuple[str, bytes], ...]
    terminator: bytes


chunk_ops = st.one_of(
    st.tuples(
        st.just("data"),
        st.sampled_from([b"%x", b"%X", b"000%x", b"%x;ext=1", b"%x;\x00", b"%x;" + b"e" * 2000]),
    ),
    st.tuples(st.just("bad"), st.sampled_from(BAD_SIZES)),
    st.tuples(st.just("huge"), st.sampled_from(HUGE_SIZES)),
    st.tuples(st.just("short"), st.just(b"")),
    # Two bytes each: a lone "\r" or "\n" at the very end could still be the
    # start of a CRLF, and a server rightly waits for the rest.
    st.tuples(st.just("no-crlf"), st.sampled_from([b"XX", b"\n\n", b"\rX", b"\x00\x00"])),
)
chunk_plans = st.builds(
    ChunkPlan, st.lists(chunk_ops, max_size=4).map(tuple), st.sampled_from(TERMINATORS)
)
well_formed_chunks = st.builds(
    ChunkPlan,
    st.lists(st.tuples(st.just("data"), st.just(b"%x")), max_size=3).map(tuple),
    st.just(b"0\r\n\r\n"),
)


def _lenient_size(token: bytes) -> int | None:
    try:
        value = int(token, 16)
    except ValueError:
        return None
    return value if 0 < value <= 4096 else None


def encode_chunked(content: bytes, plan: ChunkPlan) -> tuple[bytes, bool]:
    """The chunked body, and whether a server can finish reading it (see the module docstring)."""
    out = bytearray()
    rest = content
    piece_size = max(1, len(content) // (len(plan.ops) + 1))
    broken = waits = False
    for kind, arg in plan.ops:
        piece, rest = rest[:piece_size], rest[piece_size:]
        if kind == "data":
            if piece:
                out += _format_size(arg, len(piece)) + b"\r\n" + piece + b"\r\n"
        elif kind == "bad":
            # A lenient reading (Python's int(size, 16)) gets exactly its bytes.
            lenient = _lenient_size(arg)
            if lenient is not None:
                piece = (piece + b"z" * lenient)[:lenient]
            out += arg + b"\r\n" + piece + b"\r\n"
            broken = True
        elif kind == "huge":
            out += arg + b"\r\n" + piece + b"\r\n"
            waits = True
        elif kind == "short" and len(piece) >= 2:
            out += b"%x\r\n" % (len(piece) - 1) + piece + b"\r\n"
            broken = True
        elif kind == "no-crlf" and piece:
            out += b"%x\r\n" % len(piece) + piece + arg
            broken = True
        elif piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    if rest:
        out += b"%x\r\n" % len(rest) + rest + b"\r\n"
    out += plan.terminator
    complete = not waits and (broken or plan.terminator in COMPLETE_TERMINATORS)
    return bytes(out), complete


def _format_size(form: bytes, size: int) -> bytes:
    return form.replace(b"%x", b"%x" % size).replace(b"%X", b"%X" % size)


_DIGIT_RUN = re.compile(rb"[0-9]+")
# Content-Length values up to this many bytes are always backed by bytes;
# generated ones are either below it or far above every route's body cap.
PAD_LIMIT = 1 << 17


def build_case(
    line: RequestLine,
    fields: list[Field],
    content: bytes = b"",
    plan: ChunkPlan | None = None,
    lf_only: bool = False,
) -> RawCase:
    """The bytes of a request, and what the server can do with them."""
    te_values = [value for kind, _, value in (f for f in fields if f[0] == "te")]
    chunked = any(b"chunked" in value.lower() for value in te_values)
    complete = not lf_only
    if te_values:
        body, chunks_complete = encode_chunked(content, plan or ChunkPlan((), b"0\r\n\r\n"))
        if chunked:
            complete = complete and chunks_complete
    else:
        body = content
    rendered = []
    small = [0]
    for item in fields:
        if item[0] == "cl":
            value = item[2].render(len(body))
            rendered.append(item[1] + b": " + value)
            for run in _DIGIT_RUN.findall(value):
                digits = run.lstrip(b"0") or b"0"
                if len(digits) <= 18 and int(digits) <= PAD_LIMIT:
                    small.append(int(digits))
        elif item[0] == "te":
            rendered.append(item[1] + b": " + item[2])
        else:
            rendered.append(item[1])
    # Whatever number a lenient server reads from a Content-Length, it gets
    # that many bytes; the rest is a next request on the connection.
    body += b"z" * max(0, max(small) - len(body))
    lines = [line.line] + [_no_crlf(text) or b"X-Empty:" for text in rendered]
    ending = b"\n" if lf_only else b"\r\n"
    if lf_only:
        lines = [text.replace(b"\r", b"") for text in lines]
    head = ending.join(lines) + ending + ending
    return RawCase(
        head=head,
        body=body,
        complete=complete,
        head_request=line.head_request,
        # Joined by bare LFs, the whole head is one line to a CRLF parser.
        strict_head=line.strict and line.method == b"HEAD" and not lf_only,
        http10=line.strict and line.version == b"HTTP/1.0" and not lf_only,
    )


# -- the fuzzers -----------------------------------------------------------------

FUZZ_SETTINGS = settings(
    # Failures are collected, not raised: nothing to shrink or replay.
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


@st.composite
def fuzzed_request_lines(draw: st.DrawFn) -> RawCase:
    line = draw(request_lines())
    leading = draw(st.sampled_from([b""] * 8 + [b"\r\n", b"\r\n\r\n"]))
    # One empty line before the request line is ignored (RFC 9112 2.2);
    # after a second one the server need not know what follows.
    strict = line.strict and leading.count(b"\r\n") <= 1
    line = RequestLine(leading + line.line, line.method, strict, line.version)
    fields: list[Field] = [("line", b"Host: 127.0.0.1:<PORT>")]
    if draw(st.booleans()):
        values = BAD_AUTHORIZATIONS + (SAFE_AUTHORIZATIONS * 4 if line.safe else [])
        fields.append(("line", b"Authorization: " + draw(st.sampled_from(values))))
    if draw(st.integers(0, 3)) == 0:
        fields.append(("line", b"Connection: close"))
    return build_case(line, fields)


@st.composite
def fuzzed_header_blocks(draw: st.DrawFn) -> RawCase:
    line = draw(route_request_lines())
    fields = draw(header_fields(line.safe))
    content = draw(st.one_of(st.just(b""), st.binary(max_size=64), st.sampled_from(NOT_A_USER)))
    return build_case(
        line, fields, content, draw(chunk_plans), lf_only=draw(st.integers(0, 15)) == 0
    )


@st.composite
def fuzzed_bodies(draw: st.DrawFn) -> RawCase:
    line = draw(route_request_lines(with_body=True))
    content = draw(bodies)
    fields: list[Field] = [("line", b"Host: 127.0.0.1:<PORT>")]
    content_type = draw(
        st.sampled_from(
            [
                b"application/json",
                b"image/png",
                b"image/jpeg",
                b"text/plain",
                b"application/json; charset=utf-16",
                None,
            ]
        )
    )
    if content_type is not None:
        fields.append(("line", b"Content-Type: " + content_type))
    framing = draw(
        st.sampled_from(
            ["cl"] * 5 + ["chunked", "chunked", "broken-chunks", "cl+te", "none", "cl-short"]
        )
    )
    users_post = line.method == b"POST" and line.line.startswith(b"POST /api/v1/users ")
    # The administrator's token goes only with bodies that cannot create a
    # user, framed so that no server can read another body out of them.
    admin = users_post and framing in ("cl", "chunked") and not could_create_a_user(content)
    if admin and draw(st.booleans()):
        fields.append(("line", b"Authorization: Bearer <ADMIN>"))
    elif draw(st.booleans()):
        fields.append(("line", b"Authorization: " + draw(st.sampled_from(BAD_AUTHORIZATIONS))))
    if draw(st.integers(0, 4)) == 0:
        fields.append(("line", b"Expect: 100-continue"))
    plan = None
    if framing in ("cl", "cl+te"):
        fields.append(("cl", b"Content-Length", ContentLength("exact")))
    if framing == "cl-short":
        fields.append(("cl", b"Content-Length", ContentLength("minus", draw(st.integers(1, 8)))))
    if framing in ("chunked", "broken-chunks", "cl+te"):
        fields.append(("te", b"Transfer-Encoding", b"chunked"))
        plan = draw(well_formed_chunks if framing == "chunked" else chunk_plans)
    return build_case(line, draw(st.permutations(fields)), content, plan)


@st.composite
def fuzzed_requests(draw: st.DrawFn) -> RawCase:
    line = draw(request_lines())
    fields = draw(header_fields(line.safe))
    content = draw(st.one_of(st.just(b""), bodies))
    return build_case(
        line, fields, content, draw(chunk_plans), lf_only=draw(st.integers(0, 20)) == 0
    )


def _fuzz(node: Node, name: str, cases: st.SearchStrategy[RawCase], default: int) -> None:
    batch = Batch(node, name)

    @settings(FUZZ_SETTINGS, max_examples=examples(default))
    @given(cases)
    def send(case: RawCase) -> None:
        count_input(f"raw http: {name}")
        batch.send(case)

    send()
    batch.finish()


def test_fuzzed_request_lines(node: Node) -> None:
    """Methods, targets (origin, *, absolute, no leading /, escapes, raw bytes) and versions."""
    _fuzz(node, "request lines", fuzzed_request_lines(), 1000)


def test_fuzzed_header_blocks(node: Node) -> None:
    """Framing (Content-Length, Transfer-Encoding), Range, Host, obs-fold, bare LF, NUL, no ":"."""
    _fuzz(node, "header blocks", fuzzed_header_blocks(), 1000)


def test_fuzzed_bodies(node: Node) -> None:
    """Deep JSON, huge numbers, invalid UTF-8, chunked bodies with bad sizes, at the body routes."""
    _fuzz(node, "bodies", fuzzed_bodies(), 700)


def test_fuzzed_whole_requests(node: Node) -> None:
    """All of it at once: fuzzed request line, headers and body."""
    _fuzz(node, "whole requests", fuzzed_requests(), 1000)


def test_whole_run_left_no_trace(node: Node) -> None:
    """
    After everything above: the node is up, nothing changed, and its whole
    log (startup included) has no critical or error line and no traceback.
    """
    batch = Batch(node, "whole run")
    batch.first_log = 0
    batch.finish()
    assert "Traceback" not in node.server.stderr_text, node.server.stderr_text[-3000:]
    raw = [line for line in node.server.raw_lines if "Traceback" in line]
    assert raw == [], raw[:5]
