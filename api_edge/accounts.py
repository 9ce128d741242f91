"""Account routes: products, opening, reads and the lifecycle."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.gateway import body_model, gateway_of, idempotency_key
from contracts import account as c

router = APIRouter(tags=["accounts"])


class LifecycleBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the change")


OpenAccountBody = body_model(c.OpenAccount, exclude=set(), name="OpenAccountBody")


@router.get("/v1/products")
async def list_products(request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    return await gateway_of(request).query(c.ListProducts, {}, who)


DefineProductBody = body_model(c.DefineProduct, exclude={"actor"}, name="DefineProductBody")


@router.post("/v1/products", status_code=201)
async def define_product(
    body: DefineProductBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("products:manage", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """Create a product or its next version (new accounts open under the newest; accounts keep theirs)."""
    data = {**body.model_dump(), "actor": who.subject}  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.DefineProduct, data, who, key, created=True)


@router.get("/v1/products/{code}")
async def get_product(
    code: str, request: Request, version: int | None = Query(default=None, ge=1),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    return await gateway_of(request).query(c.GetProduct, {"code": code, "version": version}, who)


@router.post("/v1/accounts", status_code=201)
async def open_account(
    body: OpenAccountBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("accounts:write", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = body.model_dump()  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.OpenAccount, data, who, key, created=True)


@router.get("/v1/accounts/{account_id}")
async def get_account(account_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    return await gateway_of(request).query(c.GetAccount, {"account_id": account_id}, who)


@router.get("/v1/customers/{customer_id}/accounts")
async def list_customer_accounts(
    customer_id: UUID,
    request: Request,
    limit: int = Query(default=50, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    data = {"customer_id": customer_id, "limit": limit, "cursor": cursor}
    return await gateway_of(request).query(c.ListCustomerAccounts, data, who)


LifecycleContract = type[c.FreezeAccount] | type[c.UnfreezeAccount] | type[c.ReactivateAccount]


def _lifecycle(command_type: LifecycleContract, verb: str) -> None:
    @router.post(f"/v1/accounts/{{account_id}}/{verb}", name=f"{verb}_account")
    async def change(
        account_id: UUID,
        body: LifecycleBody,
        request: Request,
        who: Principal = require("accounts:freeze", "accounts"),
        key: str | None = Depends(idempotency_key),
    ) -> Response:
        # The actor is who the edge authenticated, never what the body claims.
        data = {"account_id": account_id, "actor": who.subject, "reason": body.reason}
        return await gateway_of(request).change(command_type, data, who, key)


_lifecycle(c.FreezeAccount, "freeze")
_lifecycle(c.UnfreezeAccount, "unfreeze")
_lifecycle(c.ReactivateAccount, "reactivate")  # a dormant account, on the customer's request


class CloseBody(LifecycleBody):
    payout_account_id: UUID | None = Field(
        default=None, description="another active account of the same customer, same currency: receives the balance"
    )
    payout_in_cash: bool = Field(default=False, description="the balance is paid out in cash at the counter")


@router.post("/v1/accounts/{account_id}/close", name="close_account")
async def close_account(
    account_id: UUID, body: CloseBody, request: Request, who: Principal = require("accounts:freeze", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """Close for good: with money left, name where it goes (the ledger pays it all out, below the
    minimum balance to zero, and closes the account in one transaction)."""
    data = {"account_id": account_id, "actor": who.subject, "reason": body.reason,
            "payout_account_id": body.payout_account_id, "payout_in_cash": body.payout_in_cash}  # fmt: skip
    return await gateway_of(request).change(c.CloseAccount, data, who, key)


class HoldBody(BaseModel):
    hold_id: UUID = Field(description="chosen by you: the idempotency key of the hold")
    kind: c.HoldKind
    amount: int = Field(gt=0, le=c.MAX_AMOUNT, description="minor units")
    reason: str = Field(min_length=1, max_length=500)
    expires_in_s: int | None = Field(default=None, ge=1, le=c.MAX_HOLD_S, description="a hold's life; none for a lien")


@router.post("/v1/accounts/{account_id}/holds", status_code=201)
async def place_hold(
    account_id: UUID, body: HoldBody, request: Request, who: Principal = require("accounts:freeze", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """Hold (expires) or lien (until released) part of the balance: available falls at once, and
    the account cannot close while it stands."""
    data = {"account_id": account_id, "actor": who.subject, **body.model_dump()}
    return await gateway_of(request).change(c.PlaceHold, data, who, key, created=True)


@router.post("/v1/accounts/{account_id}/holds/{hold_id}/release")
async def release_hold(
    account_id: UUID, hold_id: UUID, body: LifecycleBody, request: Request,
    who: Principal = require("accounts:freeze", "accounts"), key: str | None = Depends(idempotency_key),
) -> Response:
    data = {"account_id": account_id, "hold_id": hold_id, "actor": who.subject, "reason": body.reason}
    return await gateway_of(request).change(c.ReleaseHold, data, who, key)


@router.get("/v1/accounts/{account_id}/holds")
async def list_holds(
    account_id: UUID, request: Request, limit: int = Query(default=100, ge=1, le=500),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    return await gateway_of(request).query(c.ListHolds, {"account_id": account_id, "limit": limit}, who)


@router.get("/v1/accounts/{account_id}/interest")
async def get_interest(
    account_id: UUID, request: Request, limit: int = Query(default=12, ge=1, le=120),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    """Savings interest by posting period, newest first: accrued exactly to the last close of
    business, the rounded amount that posts (or posted), and its transfer. A customer reads only
    their own accounts'."""
    return await gateway_of(request).query(c.GetInterest, {"account_id": account_id, "limit": limit}, who)


@router.get("/v1/accounts/{account_id}/charges")
async def list_charges(
    account_id: UUID, request: Request, limit: int = Query(default=24, ge=1, le=240),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    """Monthly fees, newest month first: the product's fee, what the ledger could take above the
    account's floor, and its transfer. A customer reads only their own accounts'."""
    return await gateway_of(request).query(c.ListCharges, {"account_id": account_id, "limit": limit}, who)


class OverdraftBody(LifecycleBody):
    overdraft_limit: int = Field(ge=0, description="minor units below zero the account may go; 0 = none")


@router.put("/v1/accounts/{account_id}/overdraft")
async def set_overdraft(
    account_id: UUID, body: OverdraftBody, request: Request, who: Principal = require("accounts:freeze", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """A current account's overdraft, within its product's ceiling: the ledger enforces it at once."""
    data = {"account_id": account_id, "actor": who.subject, "reason": body.reason, "overdraft_limit": body.overdraft_limit}
    return await gateway_of(request).change(c.SetOverdraft, data, who, key)


@router.get("/v1/accounts/{account_id}/statements")
async def list_statements(
    account_id: UUID, request: Request, limit: int = Query(default=12, ge=1, le=120),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:
    """Monthly statements, newest first (opening + credits − debits = closing, or none is issued);
    their lines are the account's history between `period_from` and `period_until`."""
    return await gateway_of(request).query(c.ListStatements, {"account_id": account_id, "limit": limit}, who)


OpenFixedDepositBody = body_model(c.OpenFixedDeposit, exclude=set(), name="OpenFixedDepositBody")


@router.post("/v1/fixed-deposits", status_code=201)
async def open_fixed_deposit(
    body: OpenFixedDepositBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("accounts:write", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """A fixed deposit funded at once from the customer's own account; a customer opens only their own."""
    return await gateway_of(request).change(c.OpenFixedDeposit, body.model_dump(), who, key, created=True)  # type: ignore[attr-defined]


@router.get("/v1/fixed-deposits/{account_id}")
async def get_deposit(account_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    return await gateway_of(request).query(c.GetDeposit, {"account_id": account_id}, who)


@router.post("/v1/fixed-deposits/{account_id}/close-early")
async def close_deposit_early(
    account_id: UUID, body: LifecycleBody, request: Request, who: Principal = require("accounts:freeze", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """Before maturity, at the contract rate less the product's penalty, for the days held."""
    data = {"account_id": account_id, "actor": who.subject, "reason": body.reason}
    return await gateway_of(request).change(c.CloseDepositEarly, data, who, key)


class MigrateBody(LifecycleBody):
    to_version: int = Field(ge=1, description="a version of the account's own product")


@router.post("/v1/accounts/{account_id}/migrate-product")
async def migrate_product(
    account_id: UUID, body: MigrateBody, request: Request, who: Principal = require("products:manage", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """To another version of the account's product: its rate, fees and minimum balance from now on."""
    data = {"account_id": account_id, "actor": who.subject, "reason": body.reason, "to_version": body.to_version}
    return await gateway_of(request).change(c.MigrateProduct, data, who, key)


OpenRecurringDepositBody = body_model(c.OpenRecurringDeposit, exclude=set(), name="OpenRecurringDepositBody")


@router.post("/v1/recurring-deposits", status_code=201)
async def open_recurring_deposit(
    body: OpenRecurringDepositBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("accounts:write", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """A monthly instalment from the customer's own account for 6 to 120 months, the first at once;
    read it, or close it early, under /v1/fixed-deposits/{id}."""
    return await gateway_of(request).change(c.OpenRecurringDeposit, body.model_dump(), who, key, created=True)  # type: ignore[attr-defined]


@router.post("/v1/customers/{customer_id}/close-accounts")
async def close_customer_accounts(
    customer_id: UUID, body: LifecycleBody, request: Request, who: Principal = require("accounts:freeze", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """A customer leaves the bank: each savings and current account closed in turn, its interest and
    charges settled and its balance paid out in cash at the counter."""
    data = {"customer_id": customer_id, "actor": who.subject, "reason": body.reason}
    return await gateway_of(request).change(c.CloseCustomerAccounts, data, who, key)
