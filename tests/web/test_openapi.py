"""
The OpenAPI document (revenge/web/openapi.json) describes exactly the routes
a node serves, is valid OpenAPI 3.1, and is served at /api/v1/openapi.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis

from revenge.web._openapi import (
    OPENAPI_ROUTE,
    documented_operations,
    load_openapi_document,
    openapi_path,
    registered_operations,
)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_openapi_document()


@pytest.fixture
def node_templates(tmp_path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """The routes of a whole node as build_server assembles it (nothing started)."""
    from twisted.internet import reactor

    from revenge.config import load_config
    from revenge.server._server import build_server

    environ = {
        "REVENGE_DATA_DIR": str(tmp_path / "data"),
        "REVENGE_NODE_ID": "openapi-test",
        "REVENGE_MEDIA_MOVIE_PATHS": str(tmp_path / "movies"),
    }
    server = build_server(load_config(None, environ, cwd=str(tmp_path)), reactor)
    return list(server.app.templates)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("/healthz", "/healthz"),
        ("/api/v1/users/<name>", "/api/v1/users/{name}"),
        ("/api/v1/users/<name>/avatar", "/api/v1/users/{name}/avatar"),
        ("/media/<library>/<path:path>", "/media/{library}/{path}"),
        ("/x/<int:id>/<string(length=2):code>", "/x/{id}/{code}"),
    ],
)
def test_werkzeug_templates_become_openapi_paths(template: str, expected: str) -> None:
    assert openapi_path(template) == expected


def test_document_and_routes_agree_both_ways(
    document: dict[str, Any], node_templates: list[tuple[str, tuple[str, ...]]]
) -> None:
    served = registered_operations(node_templates)
    described = documented_operations(document)
    assert served - described == set(), "routes missing from revenge/web/openapi.json"
    assert described - served == set(), "documented operations that no route serves"
    assert (OPENAPI_ROUTE, "GET") in served


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    # Raises with the first problem when the document breaks the OpenAPI schema.
    schemathesis.openapi.from_dict(document).validate()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_response_documents_x_request_id(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            headers = _resolve(document, response).get("headers", {})
            assert "X-Request-ID" in headers, f"{method.upper()} {path} {status}"


def test_every_error_response_is_the_json_error(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            # A 503 from /readyz is a report for orchestrators, not an error.
            if int(status) < 400 or path == "/readyz":
                continue
            content = _resolve(document, response)["content"]
            schema = _resolve(document, content["application/json"]["schema"])
            if "allOf" in schema:
                schema = _resolve(document, schema["allOf"][0])
            assert schema["required"] == ["error"], f"{method.upper()} {path} {status}"


def test_authenticated_operations_document_401(document: dict[str, Any]) -> None:
    default_security = document["security"]
    for path, method, operation in _operations(document):
        if operation.get("security", default_security):
            assert "401" in operation["responses"], f"{method.upper()} {path}"
        else:
            assert "401" not in operation["responses"], f"{method.upper()} {path}"


def test_operations_with_a_body_document_413(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        if "requestBody" in operation:
            assert "413" in operation["responses"], f"{method.upper()} {path}"


def test_user_names_are_documented_as_the_store_checks_them(document: dict[str, Any]) -> None:
    from revenge.users._store import USER_NAME_PATTERN

    documented = document["components"]["schemas"]["UserName"]["pattern"]
    assert documented == f"^{USER_NAME_PATTERN.pattern}$"


async def test_the_document_is_served_to_anyone(running_server: Any) -> None:
    reply = await running_server.call("GET", OPENAPI_ROUTE)
    assert reply.status == 200
    assert reply.headers.getRawHeaders("Content-Type") == ["application/json"]
    assert reply.headers.getRawHeaders("X-Request-ID")
    assert reply.body == load_openapi_document()
