"""The edge's request span: a SERVER span `<METHOD> <route template>` that every command the request
sends continues (bus/tracing.py). Pure ASGI; while tracing is off it passes each request straight on.

A client's own `traceparent` is not followed: the edge faces the internet, and a sampled flag a
client sets would decide what the bank records. Each request starts its own trace.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus import tracing


def route_of(scope: Scope) -> str | None:
    """The matched route's template (`/v1/accounts/{account_id}`), never the path: span names stay few."""
    return getattr(scope.get("route"), "path", None)


class HttpTracing:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not tracing.ON or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracer = tracing.tracer()
        method = scope["method"]
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"],
                                      "url.scheme": scope.get("scheme", "http")}  # fmt: skip
        # A root whatever the current context holds: a request is where a trace begins.
        with tracer.start_as_current_span(method, context=tracing.TraceContext(), kind=SpanKind.SERVER,
                                          attributes=attributes) as span:  # fmt: skip
            status = 500

            async def traced(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, traced)
            finally:
                route = route_of(scope)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                tracing.log.info("%s %s %d", method, route or scope["path"], status)
