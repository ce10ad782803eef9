"""Prometheus collectors of the web service and the middleware that feeds them."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "veloera_web_http_requests_total",
    "HTTP requests served by the web console",
    ["method", "route", "status_class"],
)
HTTP_SECONDS = Histogram(
    "veloera_web_http_request_duration_seconds",
    "Time spent serving a web console request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RPC_ERRORS = Counter(
    "veloera_web_rpc_errors_total", "Failed gRPC calls made by the web console", ["code"]
)

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"})


class MetricsMiddleware:
    """Counts requests by route template (bounded), never by raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", "") if isinstance(route, BaseRoute) else ""
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            HTTP_REQUESTS.labels(method, label or "unmatched", f"{status // 100}xx").inc()
            HTTP_SECONDS.labels(method, label or "unmatched").observe(time.perf_counter() - started)
