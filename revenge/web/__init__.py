"""The HTTP layer: request ids, access log, JSON errors, health and metrics routes."""

from revenge.web._app import Release, RevengeApp
from revenge.web._errors import ApiError, api_error_for, json_body
from revenge.web._health import HealthChecks
from revenge.web._json import ClientJSONError, loads_client_json
from revenge.web._openapi import install_openapi_route
from revenge.web._request import RevengeSite
from revenge.web._request_id import is_valid_request_id
from revenge.web._service import ListenerService, StartupError

__all__ = [
    "ApiError",
    "ClientJSONError",
    "HealthChecks",
    "ListenerService",
    "Release",
    "RevengeApp",
    "RevengeSite",
    "StartupError",
    "api_error_for",
    "install_openapi_route",
    "is_valid_request_id",
    "json_body",
    "loads_client_json",
]
