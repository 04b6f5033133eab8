"""The HTTP layer: request ids, access log, JSON errors, health and metrics routes."""

from revenge.web._app import MetricsResource, RevengeApp
from revenge.web._errors import ApiError, error_body, json_body
from revenge.web._health import HealthChecks, Readiness
from revenge.web._request import UNMATCHED_ROUTE, RevengeRequest, RevengeSite
from revenge.web._request_id import (
    REQUEST_ID_HEADER,
    choose_request_id,
    is_valid_request_id,
    new_request_id,
)
from revenge.web._service import ListenerService, StartupError

__all__ = [
    "REQUEST_ID_HEADER",
    "UNMATCHED_ROUTE",
    "ApiError",
    "HealthChecks",
    "ListenerService",
    "MetricsResource",
    "Readiness",
    "RevengeApp",
    "RevengeRequest",
    "RevengeSite",
    "StartupError",
    "choose_request_id",
    "error_body",
    "is_valid_request_id",
    "json_body",
    "new_request_id",
]
