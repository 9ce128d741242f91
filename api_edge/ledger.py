"""Ledger routes: balances and history of an account, and the back office's raw transfers.

Customers and tellers move money through payment orders (a later issue); these routes are for
the back office, trusted partners and benchmarks.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api_edge.auth import Principal, require
from api_edge.errors import problem
from api_edge.gateway import body_model, build, idempotency_key, reply_response
from contracts import ledger as c

router = APIRouter(tags=["ledger"])

CreateTransfersBody = body_model(c.CreateTransfers, exclude=set(), name="CreateTransfersBody")
CreateAccountsBody = body_model(c.CreateAccounts, exclude=set(), name="CreateAccountsBody")


def _gateway(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.gateway


@router.post("/v1/ledger/transfers")
async def create_transfers(
    body: CreateTransfersBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("transfers:create", "transfers"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """1 to 1,000 transfers; one result each (`ok`, `exists`, or a refusal code), in order."""
    command = build(c.CreateTransfers, body.model_dump())  # type: ignore[attr-defined]
    if isinstance(command, Response):
        return command
    return await _gateway(request).send(command, who, key=key)


@router.post("/v1/ledger/accounts")
async def create_accounts(
    body: CreateAccountsBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("ledger:admin"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    command = build(c.CreateAccounts, body.model_dump())  # type: ignore[attr-defined]
    if isinstance(command, Response):
        return command
    return await _gateway(request).send(command, who, key=key)


@router.get("/v1/ledger/transfers/{transfer_id}")
async def get_transfer(transfer_id: UUID, request: Request, who: Principal = require("ledger:read")) -> Response:
    return await _first(request, c.LookupTransfers(ids=[transfer_id]), who, "transfers", "transfer_not_found")


@router.get("/v1/accounts/{account_id}/balance")
async def get_balance(account_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    # An account's ledger account shares its id (the account worker creates it so).
    return await _first(request, c.LookupAccounts(ids=[account_id]), who, "accounts", "account_not_found")


@router.get("/v1/accounts/{account_id}/history")
async def get_history(
    account_id: UUID,
    request: Request,
    since: datetime | None = Query(default=None),
    until: datetime | None = Query(default=None),
    code: str | None = Query(default=None, pattern=c.CODE_PATTERN),
    limit: int = Query(default=100, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    command = build(c.GetAccountHistory, {"account_id": account_id, "since": since, "until": until, "code": code,
                                          "limit": limit, "cursor": cursor})  # fmt: skip
    if isinstance(command, Response):
        return command
    return await _gateway(request).query(command, who)


async def _first(request: Request, command: c.LookupAccounts | c.LookupTransfers, who: Principal, key: str,
                 missing: str) -> Response:  # fmt: skip
    """A lookup of one id: the item, or 404 problem+json."""
    reply = await _gateway(request).ask(command, who)
    if isinstance(reply, Response):
        return reply
    if not reply.ok:
        return reply_response(reply)  # e.g. not_owner -> 403
    found = (reply.result or {}).get(key, [])
    if not found:
        return problem(404, missing, "nothing with this id")
    return JSONResponse(found[0])
