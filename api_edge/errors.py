"""Problem details (RFC 9457) for every refusal, and the code → HTTP status mapping."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

_CONFLICT_CODES = {
    "idempotency_key_reused", "id_already_failed", "version_conflict", "account_exists",
    "payment_exists", "payee_exists", "standing_order_exists", "partner_reference_conflict", "wrong_business_date", "hold_exists",
    "day_closing", "document_exists", "restructure_exists", "investigation_closed", "endpoint_exists",
}  # fmt: skip
# Refused for who is asking, not for what was asked; and a one-time password that does not prove
# it (wrong, locked, expired, used, for another operation): the caller must show more.
_FORBIDDEN_CODES = {"forbidden", "not_owner", "permission_denied", "maker_cannot_approve",
                    "otp_invalid", "otp_locked", "otp_expired", "otp_mismatch", "otp_used"}  # fmt: skip
# Not "never" (403) nor "this request is wrong" (422): the same request is accepted once repeated
# with a precondition, a verified one-time password (RFC 6585 §3, 428 Precondition Required).
_PRECONDITION_CODES = {"verification_required"}

# What every refusal looks like, for the OpenAPI document: the edge answers every 4xx and 5xx
# with this (never FastAPI's default 422 `HTTPValidationError`: a body that does not match its
# schema is a 400 problem here), so the document says so and clients and fuzzers can rely on it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "the refusal code, stable: branch on this"},
        "details": {"description": "what exactly was wrong, when there is more to say"},
    },
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
    for status, description in (("4XX", "Refused: problem details (RFC 9457)"),
                                ("5XX", "Not available now: problem details (RFC 9457)"))
}  # fmt: skip


def status_for(code: str) -> int:
    """The HTTP status of a refusal code (banking-rules §8)."""
    if code == "invalid_message":
        return 400
    if code in ("unauthenticated",):
        return 401
    if code in _FORBIDDEN_CODES:
        return 403
    if code in _PRECONDITION_CODES:
        return 428
    if code == "not_found" or code.endswith("_not_found") or code == "customer_unknown":
        return 404
    if code in _CONFLICT_CODES or code.startswith("exists_with_different_") or code.startswith("duplicate_"):
        return 409
    if code in ("backpressure", "unavailable"):
        return 503
    return 422  # a business refusal: the request was understood and declined


def problem(status: int, code: str, detail: str, details: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://cbs.example/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    if (refusal := await _unauthenticated(request)) is not None:
        return refusal
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return problem(400, "invalid_message", "the request does not match its schema", errors)


async def _unauthenticated(request: Request) -> JSONResponse | None:
    """A body that does not even parse is refused before the route's dependencies run, so before
    authentication: on a protected route, the 401 of an unauthenticated caller comes first."""
    from api_edge.auth import AuthError, principal

    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None or hasattr(request.state, "principal") or not _needs(dependant, principal):
        return None
    try:
        await principal(request, request.headers.get("authorization"), request.headers.get("x-api-key"))
    except AuthError as refusal:
        return await on_auth_error(request, refusal)
    return None


def _needs(dependant: Any, call: Any) -> bool:
    return any(sub.call is call or _needs(sub, call) for sub in dependant.dependencies)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and (refusal := await _unauthenticated(request)) is not None:
        return refusal  # FastAPI's "error parsing the body" (not UTF-8, ...): after authentication too
    codes = {400: "invalid_message", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    code = codes.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail))


async def on_broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A command the broker did not confirm (bus.correlator.BrokerUnavailable), on any route: the
    client retries with the same Idempotency-Key."""
    return problem(503, "unavailable", str(exc), headers={"Retry-After": "1"})


async def on_auth_error(request: Request, exc: Any) -> JSONResponse:
    from api_edge import refusals

    await refusals.record(request, exc)  # 401 and 403 are facts audit keeps
    return problem(exc.status, exc.code, exc.message, headers=exc.headers)
