"""Ledger routes: balances and history of an account, and the back office's raw transfers.

Customers and tellers move money through payment orders (api_edge/payments.py); these routes are
for the back office, trusted partners and benchmarks.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api_edge.auth import Principal, require
from api_edge.errors import problem
from api_edge.gateway import body_model, gateway_of, idempotency_key, reply_response
from contracts import ledger as c
from contracts.common import Reply

router = APIRouter(tags=["ledger"])

CreateTransfersBody = body_model(c.CreateTransfers, exclude=set(), name="CreateTransfersBody")
CreateAccountsBody = body_model(c.CreateAccounts, exclude=set(), name="CreateAccountsBody")


@router.post("/v1/ledger/transfers")
async def create_transfers(
    body: CreateTransfersBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("transfers:create", "transfers"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """1 to 1,000 transfers; one result each (`ok`, `exists`, or a refusal code), in order."""
    data = body.model_dump()  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.CreateTransfers, data, who, key)


@router.post("/v1/ledger/accounts")
async def create_accounts(
    body: CreateAccountsBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("ledger:admin"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = body.model_dump()  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.CreateAccounts, data, who, key)


@router.get("/v1/ledger/transfers/{transfer_id}")
async def get_transfer(transfer_id: UUID, request: Request, who: Principal = require("ledger:read")) -> Response:
    respond = partial(_first, "transfers", "transfer_not_found")
    return await gateway_of(request).answer(c.LookupTransfers(ids=[transfer_id]), who, respond)


@router.get("/v1/ledger/trial-balance")
async def get_trial_balance(
    request: Request, business_date: date = Query(description="a closed business date"),
    who: Principal = require("books:read"),
) -> Response:  # fmt: skip
    """The books as that business date closed: trial balance by general-ledger account, balance
    sheet and income statement, per currency."""
    return await gateway_of(request).query(c.GetTrialBalance, {"business_date": business_date}, who)


@router.get("/v1/accounts/{account_id}/balance")
async def get_balance(account_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    # An account's ledger account shares its id (the account worker creates it so).
    respond = partial(_first, "accounts", "account_not_found")
    return await gateway_of(request).answer(c.LookupAccounts(ids=[account_id]), who, respond)


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
    data = {"account_id": account_id, "since": since, "until": until, "code": code, "limit": limit, "cursor": cursor}
    return await gateway_of(request).query(c.GetAccountHistory, data, who)


@router.get("/v1/ledger/journal")
async def get_journal(
    request: Request, business_date: date = Query(description="a closed business date"),
    after: int | None = Query(default=None, ge=0, description="the page starts after this line (X-Next-After)"),
    who: Principal = require("books:read"),
) -> Response:  # fmt: skip
    """A closed business date's journal as CSV, for the finance team: every posted movement, one line
    a side, up to 1,000 lines a page; `X-Next-After` names the next page while there is one."""
    return await gateway_of(request).answer(c.GetJournal(business_date=business_date, after=after), who, _journal_csv)


JOURNAL_COLUMNS = ("seq", "at", "transfer_id", "account_id", "side", "amount_minor", "currency", "code")


def _journal_csv(reply: Reply) -> Response:
    if not reply.ok:
        return reply_response(reply)
    journal = c.Journal.model_validate(reply.result)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JOURNAL_COLUMNS)
    for line in journal.lines:
        writer.writerow((line.seq, line.at.isoformat(), line.transfer_id, line.account_id, line.side, line.amount,
                         line.currency, line.code))  # fmt: skip
    headers = {"X-Next-After": str(journal.next_after)} if journal.next_after is not None else {}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


def _first(key: str, missing: str, reply: Reply) -> Response:
    """The answer to a lookup of one id: the item, or 404 problem+json."""
    if not reply.ok:
        return reply_response(reply)  # e.g. not_owner -> 403
    found = (reply.result or {}).get(key, [])
    if not found:
        return problem(404, missing, "nothing with this id")
    return JSONResponse(found[0])
