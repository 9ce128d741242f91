"""The HTTP edge: FastAPI app, its broker and correlator, routes by domain."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api_edge import (
    accounts, audit, customers, day, docs, errors, health, ledger, loans, metrics, notifications, operations, payments,
    sessions, statements,
)
from api_edge.auth import AuthError, Authenticator
from api_edge.body_limit import BoundedBody
from api_edge.gateway import Gateway
from api_edge.limits import make_limiter
from api_edge.revocations import RevocationWatch
from api_edge.tracing import HttpTracing
from bus import observability, tracing
from bus.broker import make_broker
from bus.correlator import BrokerUnavailable, Correlator
from bus.settings import broker_user, load


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load()
    registry = observability.metrics_registry(*metrics.COLLECTORS)
    # The edge's own broker user: the one identity whose `x-actor` workers believe.
    amqp_url = settings.process_amqp_url("edge")
    tracing.setup("edge")
    broker = make_broker("edge", settings, registry, amqp_url=amqp_url)
    correlator = Correlator(amqp_url, os.environ.get("CBS_EDGE_INSTANCE"), user_id=broker_user("edge"))
    revocations = RevocationWatch(broker, correlator)  # subscribes, so before the broker starts
    await broker.start()
    await correlator.start()
    revocations.start(settings.request_timeout_s)  # ready once it has read identity's recent revocations
    app.state.revocations = revocations
    app.state.settings = settings
    app.state.registry = registry
    app.state.broker = broker
    app.state.gateway = Gateway(correlator, settings.request_timeout_s)
    app.state.authenticator = Authenticator(app.state.gateway, revocations)
    app.state.limiter = make_limiter()
    app.state.readiness = health.Readiness(amqp_url)
    try:
        yield
    finally:
        await revocations.close()
        await correlator.stop()
        await app.state.readiness.close()
        if hasattr(app.state.limiter, "close"):
            await app.state.limiter.close()
        await broker.stop()
        tracing.shutdown()  # its last spans leave before the process does


app = FastAPI(
    title="CBS core banking API",
    version="1.0.0",
    description="Customers, accounts and payments. Every POST needs an `Idempotency-Key`; refusals are problem+json.",
    lifespan=lifespan,
    responses=errors.PROBLEM_RESPONSES,  # every refusal, on every route, is problem+json
    redirect_slashes=False,  # `/v1/customers/` (an empty id) is a 404 problem, not a 307 built from the Host header
    # FastAPI's own OpenTelemetry (on as soon as a tracer provider is set) is off: the request span
    # is api_edge/tracing.py's, which does not follow a client's `traceparent` (FastAPI's does, and
    # its span then sat outside ours, in another trace); metrics are Prometheus', logs are JSON.
    telemetry={"tracing": False, "metrics": False, "logs": False},
)
app.add_exception_handler(RequestValidationError, errors.on_validation_error)  # type: ignore[arg-type]
app.add_exception_handler(AuthError, errors.on_auth_error)  # type: ignore[arg-type]
app.add_exception_handler(StarletteHTTPException, errors.on_http_error)  # type: ignore[arg-type]
app.add_exception_handler(BrokerUnavailable, errors.on_broker_unavailable)


class SecurityHeaders:
    """Headers every API response carries; the interactive docs need their scripts, so no CSP there."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
        (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    ]
    CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in ("/docs", "/redoc", "/docs/oauth2-redirect")

        async def with_headers(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS, *([] if docs else [self.CSP])]
            await send(message)

        await self.app(scope, receive, with_headers)


app.add_middleware(BoundedBody)
app.add_middleware(SecurityHeaders)
if origins := [o.strip() for o in os.environ.get("CBS_CORS_ORIGINS", "").split(",") if o.strip()]:
    # Off unless configured: browsers may call the API only from the origins named.
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PATCH"],
                       allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-API-Key", "X-OTP-Id",
                                      "X-OTP-Code"])  # fmt: skip
app.add_middleware(HttpTracing)  # a request's span: what it sends to workers continues its trace
app.add_middleware(metrics.HttpMetrics)  # added last: outermost, so it sees every answer


for module in (health, docs, sessions, operations, customers, accounts, statements, ledger, payments, audit, day, loans,
               notifications):
    app.include_router(module.router)
