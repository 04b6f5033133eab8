"""The HTTP layer: request ids, access log, JSON errors, health and metrics routes."""

from revenge.web._app import (
    DEFAULT_MAX_BODY_BYTES,
    Admission,
    BodyLimit,
    MetricsResource,
    Release,
    RevengeApp,
)
from revenge.web._errors import ApiError, error_body, json_body
from revenge.web._health import HealthChecks, Readiness
from revenge.web._json import MAX_JSON_DEPTH, ClientJSONError, loads_client_json
from revenge.web._openapi import (
    OPENAPI_ROUTE,
    documented_operations,
    install_openapi_route,
    load_openapi_document,
    openapi_path,
    registered_operations,
)
from revenge.web._request import (
    HEADERS_TIMEOUT,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MIN_BODY_BYTES_PER_SECOND,
    UNMATCHED_ROUTE,
    RevengeChannel,
    RevengeRequest,
    RevengeSite,
)
from revenge.web._request_id import (
    REQUEST_ID_HEADER,
    choose_request_id,
    is_valid_request_id,
)
from revenge.web._service import ListenerService, StartupError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HEADERS_TIMEOUT",
    "MAX_HEADERS",
    "MAX_JSON_DEPTH",
    "MAX_HEADER_BYTES",
    "MIN_BODY_BYTES_PER_SECOND",
    "OPENAPI_ROUTE",
    "REQUEST_ID_HEADER",
    "UNMATCHED_ROUTE",
    "Admission",
    "ApiError",
    "BodyLimit",
    "ClientJSONError",
    "HealthChecks",
    "ListenerService",
    "MetricsResource",
    "Readiness",
    "Release",
    "RevengeApp",
    "RevengeChannel",
    "RevengeRequest",
    "RevengeSite",
    "StartupError",
    "choose_request_id",
    "documented_operations",
    "error_body",
    "install_openapi_route",
    "is_valid_request_id",
    "json_body",
    "load_openapi_document",
    "loads_client_json",
    "openapi_path",
    "registered_operations",
]
