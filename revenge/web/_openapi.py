"""
The API's OpenAPI description: ``revenge/web/openapi.json``, maintained by
hand beside the routes and served at ``GET /api/v1/openapi.json``.

tests/web/test_openapi.py keeps it true: its operations must be exactly the
app's registered routes and methods, and it must be a valid OpenAPI 3.1
document; the fuzz suite checks real responses against its schemas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

from revenge.web._app import RevengeApp
from revenge.web._errors import JSON_CONTENT_TYPE

OPENAPI_ROUTE = "/api/v1/openapi.json"

# The operations an OpenAPI path item may hold (HEAD included; werkzeug adds
# HEAD to every GET by itself, which the document states once, in prose).
_OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# werkzeug's ``<name>`` and ``<converter:name>`` (``<path:path>``).
_WERKZEUG_ARGUMENT = re.compile(
    r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>"
)


def load_openapi_document() -> dict[str, Any]:
    """The document as shipped in the package."""
    text = resources.files("revenge.web").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def openapi_path(template: str) -> str:
    """A werkzeug route template as an OpenAPI path: ``/a/<path:rest>`` → ``/a/{rest}``."""
    return _WERKZEUG_ARGUMENT.sub(r"{\1}", template)


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Every ``(path, METHOD)`` the document describes."""
    return {
        (path, method.upper())
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in _OPERATION_METHODS
    }


def registered_operations(templates: Iterable[tuple[str, tuple[str, ...]]]) -> set[tuple[str, str]]:
    """Every ``(OpenAPI path, METHOD)`` of a ``RevengeApp.templates`` list."""
    return {
        (openapi_path(template), method.upper())
        for template, methods in templates
        for method in methods
    }


def install_openapi_route(app: RevengeApp) -> None:
    """Serve the document to anyone (it holds nothing a client could not learn by trying)."""
    # Encoded once: the document never changes while the process runs.
    body = json.dumps(load_openapi_document(), separators=(",", ":")).encode("utf-8")
    length = b"%d" % (len(body),)

    @app.route(OPENAPI_ROUTE)
    def openapi(request: Any) -> bytes:
        request.setHeader(b"Content-Type", JSON_CONTENT_TYPE)
        request.setHeader(b"Content-Length", length)
        return body
