"""
The running server against its own OpenAPI document (schemathesis): a real
``twistd -n revenge`` with a media library, fuzzed as an administrator over
every documented operation. Every answer must be documented (status, content
type, headers, body schema), none may be a 5xx, every one carries a valid
X-Request-ID (the client's own when it sent a valid one), and the server logs
no error while it is being fuzzed.

``REVENGE_FUZZ_EXAMPLES`` raises the number of generated requests per operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

from revenge.testing import (
    ServerProcess,
    add_user_with_cli,
    put_avatar,
    write_sample_media_library,
)
from revenge.web import is_valid_request_id
from revenge.web._openapi import OPENAPI_ROUTE, documented_operations, load_openapi_document

from .tally import count_input, examples

ADMIN = "fuzz-admin"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4

POSTER = {"library": "movies", "path": "poster.jpg"}

# Requests that random data would hardly ever make: the success paths, whose
# answers must match the document too. Sent before the generated ones.
KNOWN_GOOD: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("/api/v1/users", "POST"): [{"body": {"name": "known-user", "admin": False}}],
    ("/api/v1/users/{name}/avatar", "PUT"): [
        {"path_parameters": {"name": ADMIN}, "body": PNG, "media_type": "image/png"}
    ],
    ("/api/v1/users/{name}/avatar", "GET"): [
        {"path_parameters": {"name": ADMIN}},
        {"path_parameters": {"name": ADMIN}, "headers": {"If-None-Match": "*"}},
    ],
    ("/api/v1/users/{name}/avatar", "DELETE"): [{"path_parameters": {"name": "pictured"}}],
    ("/api/v1/users/{name}", "DELETE"): [{"path_parameters": {"name": "spare"}}],
    ("/api/v1/jobs/{name}/run", "POST"): [
        {"path_parameters": {"name": "activity_cleanup"}},
        {"path_parameters": {"name": "avatar_sweep"}},
    ],
    ("/api/v1/libraries/{name}/items", "GET"): [
        {"path_parameters": {"name": "movies"}},
        {"path_parameters": {"name": "movies"}, "query": {"path": "Film (2001)", "limit": 1}},
    ],
    ("/media/{library}/{path}", "GET"): [
        {"path_parameters": POSTER},
        {"path_parameters": POSTER, "headers": {"Range": "bytes=2-9"}},
        {"path_parameters": POSTER, "headers": {"Range": "bytes=500-"}},
        {"path_parameters": {"library": "movies", "path": "empty.srt"}},
    ],
    ("/media/{library}/{path}", "HEAD"): [{"path_parameters": POSTER}],
}


@dataclass
class FuzzTarget:
    server: ServerProcess
    token: str
    database: str
    tried: set[str] = field(default_factory=set)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    workdir = tmp_path_factory.mktemp("fuzzed-node")
    movies = workdir / "movies"
    write_sample_media_library(movies)
    if request.param == "sqlite":
        database_url = f"sqlite:///{workdir}/data/revenge.db"
    else:
        # Skips (or fails on CI) when PostgreSQL is not there, as everywhere.
        database_url = request.getfixturevalue("postgres_server").create_database()
    env = {
        "REVENGE_DATABASE_URL": database_url,
        "REVENGE_DATA_DIR": str(workdir / "data"),
        "REVENGE_NODE_ID": "fuzzed-node",
        "REVENGE_MEDIA_MOVIE_PATHS": str(movies),
        # Small: schemathesis tries bodies around the cap.
        "REVENGE_STORAGE_AVATAR_MAX_BYTES": "65536",
    }
    token = add_user_with_cli(workdir, env, ADMIN, admin=True)
    for name in ("spare", "pictured"):
        add_user_with_cli(workdir, env, name)
    with ServerProcess(workdir, env=env) as server:
        server.wait_ready()
        for name in (ADMIN, "pictured"):
            put_avatar(server.url, name, token, PNG)
        yield FuzzTarget(server, token, request.param)


@pytest.fixture(scope="module")
def api_schema(fuzz_target: FuzzTarget) -> Any:
    return schemathesis.openapi.from_url(fuzz_target.server.url + OPENAPI_ROUTE)


def carries_a_valid_request_id(ctx: Any, response: Any, case: Case) -> bool | None:
    """Every answer has one X-Request-ID, the client's own when that was valid."""
    values = response.headers.get("x-request-id") or []
    assert len(values) == 1, f"expected one X-Request-ID, got {values!r}"
    assert is_valid_request_id(values[0].encode("latin-1")), values[0]
    sent = (case.headers or {}).get("X-Request-ID")
    if isinstance(sent, str) and is_valid_request_id(sent.encode("latin-1", "replace")):
        assert values[0] == sent, f"sent X-Request-ID {sent!r}, got {values[0]!r} back"
    return None


# Parametrized from the packaged document at collection time; the test then
# takes the operation from the document the server serves (tests/web checks
# that the two are the same document).
OPERATIONS = sorted(documented_operations(load_openapi_document()))


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_operation_answers_as_documented(
    path: str, method: str, api_schema: Any, fuzz_target: FuzzTarget
) -> None:
    operation = api_schema[path][method]
    authorization = {"Authorization": f"Bearer {fuzz_target.token}"}

    def call(case: Case) -> int:
        count_input(f"api: schemathesis requests ({fuzz_target.database})")
        fuzz_target.tried.add(f"{method} {path}")
        response = case.call_and_validate(
            headers=authorization,
            additional_checks=[carries_a_valid_request_id],
            # Unknown query parameters are ignored, as HTTP servers do; this
            # check wants them refused. Invalid values of known ones are
            # still answered 4xx (status_code_conformance holds them to it).
            excluded_checks=[negative_data_rejection],
            timeout=30,
        )
        status: int = response.status_code
        return status

    for known in KNOWN_GOOD.get((path, method), []):
        assert call(operation.Case(**known)) < 400, known
    # Valid requests, and requests that break the document on purpose.
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(max_examples=examples(12))
    @given(cases)
    def answers_as_documented(case: Case) -> None:
        call(case)

    answers_as_documented()


def test_every_operation_was_fuzzed_and_nothing_was_logged_as_an_error(
    fuzz_target: FuzzTarget,
) -> None:
    operations = documented_operations(load_openapi_document())
    documented = {f"{method} {path}" for path, method in operations}
    assert fuzz_target.tried == documented
    problems = [
        record
        for record in fuzz_target.server.logs()
        if record.get("level") in ("error", "critical") or "traceback" in record
    ]
    assert problems == []
