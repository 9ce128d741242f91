"""Account routes: products, opening, reads and the lifecycle."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.gateway import body_model, build, idempotency_key
from contracts import account as c

router = APIRouter(tags=["accounts"])


class LifecycleBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the change")


OpenAccountBody = body_model(c.OpenAccount, exclude=set(), name="OpenAccountBody")


def _gateway(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.gateway


@router.get("/v1/products")
async def list_products(request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    return await _gateway(request).query(c.ListProducts(), who)


@router.post("/v1/accounts", status_code=201)
async def open_account(
    body: OpenAccountBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("accounts:write", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    command = build(c.OpenAccount, body.model_dump())  # type: ignore[attr-defined]
    if isinstance(command, Response):
        return command
    return await _gateway(request).send(command, who, key=key, created=True)


@router.get("/v1/accounts/{account_id}")
async def get_account(account_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    return await _gateway(request).query(c.GetAccount(account_id=account_id), who)


@router.get("/v1/customers/{customer_id}/accounts")
async def list_customer_accounts(
    customer_id: UUID,
    request: Request,
    limit: int = Query(default=50, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    command = c.ListCustomerAccounts(customer_id=customer_id, limit=limit, cursor=cursor)
    return await _gateway(request).query(command, who)


def _lifecycle(command_type: type[c.FreezeAccount] | type[c.UnfreezeAccount] | type[c.CloseAccount], verb: str) -> None:
    @router.post(f"/v1/accounts/{{account_id}}/{verb}", name=f"{verb}_account")
    async def change(
        account_id: UUID,
        body: LifecycleBody,
        request: Request,
        who: Principal = require("accounts:freeze", "accounts"),
        key: str | None = Depends(idempotency_key),
    ) -> Response:
        # The actor is who the edge authenticated, never what the body claims.
        command = command_type(account_id=account_id, actor=who.subject, reason=body.reason)
        return await _gateway(request).send(command, who, key=key)


_lifecycle(c.FreezeAccount, "freeze")
_lifecycle(c.UnfreezeAccount, "unfreeze")
_lifecycle(c.CloseAccount, "close")
