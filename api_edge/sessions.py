"""Logins and who may log in: OAuth2 token routes, and the admins' users and API keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api_edge import devices
from api_edge.auth import Principal, require, throttle
from api_edge.errors import problem
from api_edge.gateway import body_model, build, gateway_of, idempotency_key
from api_edge.limits import limit_for
from contracts import identity as c
from contracts.common import Reply

router = APIRouter(tags=["auth"])

CreateUserBody = body_model(c.CreateUser, exclude=set(), name="CreateUserBody")
CreateApiKeyBody = body_model(c.CreateApiKey, exclude=set(), name="CreateApiKeyBody")

# Token refusals are 400 (RFC 6749 §5.2) except a lockout, which says when to come back.
_TOKEN_STATUS = {"locked_out": 401, "invalid_credentials": 400, "invalid_refresh_token": 400,
                 "refresh_token_revoked": 400}  # fmt: skip


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200, description="the refresh token to use or revoke")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _token(request: Request, data: dict[str, Any]) -> Response:
    command = build(c.IssueToken, data)
    if isinstance(command, Response):
        return command  # before the throttle: a request that does not make a command costs no attempt
    await throttle(request, f"ip:{_client(request)}", "auth", limit_for("auth", ()))
    return await gateway_of(request).answer(command, ANONYMOUS, _token_response)


def _token_response(reply: Reply) -> Response:
    if not reply.ok:
        assert reply.error is not None
        status = _TOKEN_STATUS.get(reply.error.code, 400)
        return problem(status, reply.error.code, reply.error.message, reply.error.details)
    return JSONResponse(reply.result, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


ANONYMOUS = Principal(subject="anonymous")
_USER_AGENT_MAX_CHARS = 1000  # past this a User-Agent is noise: what the device is lies in its start


@router.post("/v1/auth/token")
async def issue_token(
    request: Request,
    grant_type: c.GrantType = Form(description="password, client_credentials or refresh_token"),
    username: str | None = Form(default=None, max_length=200),
    password: str | None = Form(default=None, max_length=c.PASSWORD_MAX_CHARS),
    client_id: str | None = Form(default=None, max_length=200),
    client_secret: str | None = Form(default=None, max_length=200),
    refresh_token: str | None = Form(default=None, max_length=200),
    scope: str | None = Form(default=None, max_length=1000),
    device_id: str | None = Header(default=None, alias="X-Device-Id", max_length=c.DEVICE_ID_MAX_CHARS,
                                   description="optional, password grant: a mobile app's install id; without it "
                                   "the User-Agent names the device. A sign-in from a device the login has "
                                   "not used before is told to the customer"),  # fmt: skip
) -> Response:
    """OAuth2 token endpoint (form-encoded, RFC 6749): a short-lived access token and a refresh token."""
    data = {"grant_type": grant_type, "username": username, "password": password, "client_id": client_id,
            "client_secret": client_secret, "refresh_token": refresh_token, "scope": scope}  # fmt: skip
    if grant_type == c.GrantType.password:  # identity gets a hash of the device identifier, never the identifier
        user_agent = request.headers.get("user-agent", "")[:_USER_AGENT_MAX_CHARS]  # read, never refused
        data |= {"device_fingerprint": devices.fingerprint(device_id, user_agent), "device_label": devices.label(user_agent),
                 "client_address": devices.address(_client(request))}  # fmt: skip
    return await _token(request, data)


@router.post("/v1/auth/refresh")
async def refresh(body: RefreshBody, request: Request) -> Response:
    """A new token pair for a refresh token, which is used up (reusing it revokes the login)."""
    return await _token(request, {"grant_type": c.GrantType.refresh_token, "refresh_token": body.refresh_token})


@router.post("/v1/auth/logout")
async def logout(body: RefreshBody, request: Request) -> Response:
    """Ends the login: its refresh tokens, and its access tokens within seconds."""
    await throttle(request, f"ip:{_client(request)}", "auth", limit_for("auth", ()))
    return await gateway_of(request).answer(c.RevokeRefreshToken(refresh_token=body.refresh_token), ANONYMOUS)


@router.post("/v1/users", status_code=201)
async def create_user(
    body: CreateUserBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("users:admin"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = body.model_dump(mode="json")  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.CreateUser, data, who, key, created=True)


@router.get("/v1/users/{user_id}")
async def get_user(user_id: UUID, request: Request, who: Principal = require("users:admin")) -> Response:
    return await gateway_of(request).query(c.GetUser, {"user_id": user_id}, who)


@router.post("/v1/users/{user_id}/disable")
async def disable_user(
    user_id: UUID, request: Request, who: Principal = require("users:admin"), key: str | None = Depends(idempotency_key)
) -> Response:
    """No new logins, and the tokens and API keys it holds refused within seconds."""
    data = {"user_id": user_id, "actor": who.subject, "reason": "disabled by an admin"}
    return await gateway_of(request).change(c.DisableUser, data, who, key)


@router.post("/v1/users/{user_id}/enable")
async def enable_user(
    user_id: UUID, request: Request, who: Principal = require("users:admin"), key: str | None = Depends(idempotency_key)
) -> Response:
    """New logins work again; tokens issued before the disabling stay refused."""
    data = {"user_id": user_id, "actor": who.subject, "reason": "enabled by an admin"}
    return await gateway_of(request).change(c.EnableUser, data, who, key)


@router.post("/v1/api-keys", status_code=201)
async def create_api_key(
    body: CreateApiKeyBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("users:admin"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """The secret is in this response only: store it now."""
    data = body.model_dump(mode="json")  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.CreateApiKey, data, who, key, created=True)


@router.post("/v1/api-keys/{key_id}/revoke")
async def revoke_api_key(
    key_id: UUID, request: Request, who: Principal = require("users:admin"), key: str | None = Depends(idempotency_key)
) -> Response:
    return await gateway_of(request).change(c.RevokeApiKey, {"key_id": key_id}, who, key)
