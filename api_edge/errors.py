"""Problem details (RFC 9457) for every refusal, and the code → HTTP status mapping."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

_CONFLICT_CODES = {"idempotency_key_reused", "id_already_failed", "version_conflict", "account_exists"}


def status_for(code: str) -> int:
    """The HTTP status of a refusal code (banking-rules §8)."""
    if code == "invalid_message":
        return 400
    if code in ("unauthenticated",):
        return 401
    if code in ("forbidden", "not_owner"):
        return 403
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
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return problem(400, "invalid_message", "the request does not match its schema", errors)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail))


async def on_auth_error(request: Request, exc: Any) -> JSONResponse:
    return problem(exc.status, exc.code, exc.message, headers=exc.headers)
