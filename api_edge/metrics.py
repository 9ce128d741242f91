"""Per-route HTTP metrics of the edge: requests by route template, method and status, and their
duration. Pure ASGI, outermost, so a refusal by the body bound or the rate limiter is counted too.
The route is the template (`/v1/accounts/{account_id}`), never the path: the label set stays bounded."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "cbs_http_requests", "HTTP requests the edge answered, by route template, method and status",
    ["route", "method", "status"], registry=None,
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "cbs_http_request_duration_seconds", "From a request's arrival to its response's start, by route template and method",
    ["route", "method"], registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
COLLECTORS = (HTTP_REQUESTS, HTTP_SECONDS)
UNMATCHED = "unmatched"  # no route: a 404 (or 405), whatever path was asked


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what a client sees when the app raises before it answers

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                HTTP_SECONDS.labels(route, scope["method"]).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
