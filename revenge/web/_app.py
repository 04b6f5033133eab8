"""
The Klein application: routing, JSON errors and the core routes
(``/healthz``, ``/readyz``, ``/metrics``). Domain packages add their routes
with :meth:`RevengeApp.route`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import unquote_to_bytes

from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RoutingException

from revenge.metrics import Metrics
from revenge.db import DatabaseUnavailable
from revenge.web._errors import ApiError, api_error_for, error_body, json_body
from revenge.web._health import HealthChecks

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

# The largest request body any route accepts unless it asks for more (or
# less) with ``RevengeApp.route(..., max_body=...)``. JSON API bodies are
# small; the cap keeps a client from filling the disk Twisted spools bodies to.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class Release(Protocol):
    """Gives back what an admission took (a slot, say) once its request has ended."""

    def __call__(self) -> None: ...


class Admission(Protocol):
    """
    ``await admit(request, url_args)`` decides, once a request's headers are
    in and before its body is read, whether the body may come. It refuses by
    raising ApiError (answered at once, the body unread) and may return a
    :class:`Release`.
    """

    def __call__(self, request: Any, url_args: Mapping[str, Any]) -> Awaitable[Release | None]: ...


class BodyLimit(NamedTuple):
    """
    What a request line may send: the route it names (None: no route), its
    body cap, and the route's admission bound to this request's URL
    arguments (None: every body within the cap is read).
    """

    route: str | None
    max_bytes: int
    admission: Callable[[Any], Awaitable[Release | None]] | None = None


NO_ROUTE_BODY_LIMIT = BodyLimit(None, DEFAULT_MAX_BODY_BYTES)


class MetricsResource(Resource):
    """Prometheus text exposition of one registry (no global state, no reactor import)."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: IRequest) -> bytes:  # noqa: N802 (Twisted's name)
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return generate_latest(self._metrics.registry)


class RevengeApp:
    """Owns the Klein router; every route is registered through :meth:`route`."""

    def __init__(self, health: HealthChecks, metrics: Metrics, serve_metrics: bool = True) -> None:
        self.klein = Klein()
        self.health = health
        self.metrics = metrics
        self.templates: list[tuple[str, tuple[str, ...]]] = []
        self._body_limits: dict[str, BodyLimit] = {}
        self._admissions: dict[str, Admission] = {}
        self._install_error_handlers()
        self._install_core_routes(serve_metrics)

    def route(
        self,
        template: str,
        methods: Sequence[str] = ("GET",),
        branch: bool = False,
        merge_slashes: bool = True,
        max_body: int = DEFAULT_MAX_BODY_BYTES,
        admit: Admission | None = None,
    ) -> Callable[[_Handler], _Handler]:
        """
        Register ``handler(request, **url_args)`` for ``template`` (werkzeug
        syntax, e.g. ``/api/v1/users/<name>``). The template, not the raw path,
        labels the request's metrics and access log line. ``branch`` also
        routes every path below the template to the handler (for resources
        that traverse the rest themselves). ``merge_slashes=False`` makes a
        path with ``//`` a 404 instead of werkzeug's redirect to the merged
        path (for routes that must not reinterpret what the client sent).
        ``max_body`` caps the request body in bytes; ``RevengeSite`` enforces
        it while the body arrives (413), before the handler runs. ``admit``
        (see :data:`Admission`) runs when a request with a body has sent its
        headers; the body is only read, and the handler only runs, once it
        has returned (uploads check their token and take a slot there).
        """
        methods = tuple(methods)
        if max_body < 0:
            raise ValueError("max_body must not be negative")

        def register(handler: _Handler) -> _Handler:
            def labelled(request: Any, **url_args: Any) -> Any:
                request.route_template = template
                return handler(request, **url_args)

            endpoint = f"{'|'.join(methods)} {template}"
            self.klein.route(
                template,
                methods=list(methods),
                endpoint=endpoint,
                branch=branch,
                merge_slashes=merge_slashes,
            )(labelled)
            self.templates.append((template, methods))
            self._body_limits[endpoint] = BodyLimit(template, max_body)
            if admit is not None:
                self._admissions[endpoint] = admit
            return handler

        return register

    def resource(self) -> IResource:
        return self.klein.resource()

    def body_limit(self, method: bytes, path: bytes) -> BodyLimit:
        """
        The route and body cap for a request line, matched as Klein will match
        it once the body is in (``path`` without the query string). Requests
        that match no route get ``DEFAULT_MAX_BODY_BYTES``: they end in a 404
        or 405, and their bodies must not fill the disk meanwhile.
        """
        try:
            # Klein matches the percent-decoded path (Request.postpath).
            path_text = unquote_to_bytes(path).decode("utf-8")
            method_text = method.decode("ascii")
            adapter = self.klein.url_map.bind("localhost")
            rule, url_args = adapter.match(path_text, method=method_text, return_rule=True)
        except (HTTPException, RoutingException, UnicodeDecodeError):
            return NO_ROUTE_BODY_LIMIT
        endpoint = str(rule.endpoint)
        limit = self._body_limits.get(endpoint, NO_ROUTE_BODY_LIMIT)
        admit = self._admissions.get(endpoint)
        if admit is not None:

            def admission(request: Any) -> Awaitable[Release | None]:
                return admit(request, url_args)

            limit = limit._replace(admission=admission)
        return limit

    def _install_error_handlers(self) -> None:
        # Klein tries handlers in registration order; the last one catches
        # everything else, which then reaches RevengeRequest.processingFailed.
        @self.klein.handle_errors(ApiError, DatabaseUnavailable)
        def api_error(request: IRequest, failure: Failure) -> bytes:
            error = api_error_for(failure.value)
            assert error is not None
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
