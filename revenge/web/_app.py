"""
The Klein application: routing, JSON errors and the core routes
(``/healthz``, ``/readyz``, ``/metrics``). Domain packages add their routes
with :meth:`RevengeApp.route`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from revenge.metrics import Metrics
from revenge.web._errors import ApiError, error_body, json_body
from revenge.web._health import HealthChecks

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class MetricsResource(Resource):
    """Prometheus text exposition of one registry (no global state, no reactor import)."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: IRequest) -> bytes:  # noqa: N802 (Twisted's name)
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._metrics.registry)


class RevengeApp:
    """Owns the Klein router; every route is registered through :meth:`route`."""

    def __init__(self, health: HealthChecks, metrics: Metrics, serve_metrics: bool = True) -> None:
        self.klein = Klein()
        self.health = health
        self.metrics = metrics
        self.templates: list[tuple[str, tuple[str, ...]]] = []
        self._install_error_handlers()
        self._install_core_routes(serve_metrics)

    def route(
        self, template: str, methods: Sequence[str] = ("GET",), branch: bool = False
    ) -> Callable[[_Handler], _Handler]:
        """
        Register ``handler(request, **url_args)`` for ``template`` (werkzeug
        syntax, e.g. ``/api/v1/users/<name>``). The template, not the raw path,
        labels the request's metrics and access log line. ``branch`` also
        routes every path below the template to the handler (for resources
        that traverse the rest themselves).
        """
        methods = tuple(methods)

        def register(handler: _Handler) -> _Handler:
            def labelled(request: Any, **url_args: Any) -> Any:
                request.route_template = template
                return handler(request, **url_args)

            endpoint = f"{'|'.join(methods)} {template}"
            self.klein.route(template, methods=list(methods), endpoint=endpoint, branch=branch)(
                labelled
            )
            self.templates.append((template, methods))
            return handler

        return register

    def resource(self) -> IResource:
        return self.klein.resource()

    def _install_error_handlers(self) -> None:
        # Klein tries handlers in registration order; the last one catches
        # everything else, which then reaches RevengeRequest.processingFailed.
        @self.klein.handle_errors(ApiError)
        def api_error(request: IRequest, failure: Failure) -> bytes:
            error = failure.value
            assert isinstance(error, ApiError)
            for name, value in error.headers.items():
                request.setHeader(name, value)
            return error_body(request, error.status, error.code, error.message)

        @self.klein.handle_errors(NotFound)
        def not_found(request: IRequest, failure: Failure) -> bytes:
            return error_body(request, 404, "not_found", "no such resource")

        @self.klein.handle_errors(MethodNotAllowed)
        def method_not_allowed(request: IRequest, failure: Failure) -> bytes:
            error = failure.value
            assert isinstance(error, MethodNotAllowed)
            allowed = sorted(error.valid_methods or [])
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            method = request.method.decode("latin-1")
            return error_body(
                request, 405, "method_not_allowed", f"{method} is not allowed here"
            )

        @self.klein.handle_errors(HTTPException)
        def other_http_error(request: IRequest, failure: Failure) -> bytes:
            error = failure.value
            assert isinstance(error, HTTPException)
            status = error.code or 400
            code = (error.name or "http_error").lower().replace(" ", "_")
            return error_body(request, status, code, error.description or error.name)

    def _install_core_routes(self, serve_metrics: bool) -> None:
        @self.route("/healthz")
        def healthz(request: IRequest) -> bytes:
            return json_body(request, 200, {"status": "ok"})

        @self.route("/readyz")
        async def readyz(request: IRequest) -> bytes:
            readiness = await self.health.evaluate()
            if readiness.draining:
                return json_body(request, 503, {"status": "draining"})
            if readiness.failing:
                return json_body(
                    request, 503, {"status": "unavailable", "failing": readiness.failing}
                )
            return json_body(request, 200, {"status": "ok", "checks": self.health.names()})

        if serve_metrics:
            metrics_resource = MetricsResource(self.metrics)

            @self.route("/metrics")
            def metrics(request: IRequest) -> IResource:
                return metrics_resource
