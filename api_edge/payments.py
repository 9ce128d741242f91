"""Payment routes: payment orders, approvals, refunds, reversals, payees and standing orders.

The edge builds each command from the path, the body and the authenticated principal and forwards
it; the payment worker decides. The actor is always who the edge authenticated, never what the
body claims, and the checker's permissions are the ones the edge verified.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_edge.auth import AuthError, Principal, require
from api_edge.errors import problem, status_for
from api_edge.gateway import body_model, gateway_of, idempotency_key
from contracts import identity
from contracts import payment as c
from contracts.common import MAX_AMOUNT, Command, Reply

router = APIRouter(tags=["payments"])

CASH_KINDS = frozenset({c.PaymentKind.cash_deposit, c.PaymentKind.cash_withdrawal})
# Kinds no caller places as an order: each has its own way in.
NOT_PLACED_HERE = {
    c.PaymentKind.reversal: "reversals have their own route: POST /v1/payments/{payment_id}/reverse",
    c.PaymentKind.incoming: "incoming credits come from the clearing partner, not from this API",
}

InitiatePaymentBody = body_model(c.InitiatePayment, exclude={"actor", "verified"}, name="InitiatePaymentBody")
RejectPaymentBody = body_model(c.RejectPayment, exclude={"payment_id", "actor", "permissions"}, name="RejectPaymentBody")
CancelPaymentBody = body_model(c.CancelPayment, exclude={"payment_id", "actor"}, name="CancelPaymentBody")
RefundPaymentBody = body_model(c.RefundPayment, exclude={"payment_id", "actor", "verified"}, name="RefundPaymentBody")
ReversePaymentBody = body_model(c.ReversePayment, exclude={"payment_id", "actor"}, name="ReversePaymentBody")
AddPayeeBody = body_model(c.AddPayee, exclude={"customer_id", "actor"}, name="AddPayeeBody")
CreateStandingOrderBody = body_model(c.CreateStandingOrder, exclude={"actor"}, name="CreateStandingOrderBody")
CancelStandingOrderBody = body_model(
    c.CancelStandingOrder, exclude={"standing_order_id", "actor"}, name="CancelStandingOrderBody"
)


class ApprovePaymentBody(BaseModel):
    """Nothing to say: the approver is the caller. An empty body or `{}`."""

    model_config = ConfigDict(extra="forbid")


async def _change(request: Request, contract: type[Command], data: dict[str, Any], who: Principal, key: str | None,
                  created: bool = False) -> Response:  # fmt: skip
    # The actor is who the edge authenticated, never what the body claims.
    return await gateway_of(request).change(contract, {**data, "actor": who.subject}, who, key, created=created)


class OtpHeaders(BaseModel):
    otp_id: str | None
    otp_code: str | None

    @property
    def given(self) -> bool:
        return self.otp_id is not None or self.otp_code is not None


def otp_headers(
    otp_id: str | None = Header(default=None, alias="X-OTP-Id", max_length=100,
                                description="a one-time password's id (POST /v1/otp), for a large customer debit"),
    otp_code: str | None = Header(default=None, alias="X-OTP-Code", max_length=20,
                                  description="the code it sent by SMS or email"),
) -> OtpHeaders:  # fmt: skip
    return OtpHeaders(otp_id=otp_id, otp_code=otp_code)


@router.post("/v1/payments", status_code=201)
async def initiate_payment(
    body: InitiatePaymentBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
    otp: OtpHeaders = Depends(otp_headers),
) -> Response:
    """Place a payment order: cash (tellers), internal, NEFT, RTGS, IMPS, UPI or a refund. From a
    customer or a customer channel, one of at least the step-up threshold (10,000.00 by default)
    needs a verified one-time password (`X-OTP-Id`, `X-OTP-Code`), else `verification_required` (428)."""
    kind = body.kind  # type: ignore[attr-defined]
    if kind in NOT_PLACED_HERE:
        return problem(400, "invalid_message", NOT_PLACED_HERE[kind])
    if kind in CASH_KINDS and not who.may("cash:handle"):
        raise AuthError(403, "forbidden", "cash payments need the `cash:handle` permission", who=who, permission="cash:handle")
    data = body.model_dump()  # type: ignore[attr-defined]
    if otp.given:
        verified = await _verify_otp(request, who, otp, payment_purpose(data), consumed_by=data["payment_id"])
        if isinstance(verified, Response):
            return verified
        data["verified"] = True  # never from the body (InitiatePaymentBody has no such field)
    return await _change(request, c.InitiatePayment, data, who, key, created=True)


# --- step-up one-time passwords (banking-rules §2) ---------------------------------------------
# The edge verifies, identity keeps the OTP (any edge replica, across restarts), the payment worker
# refuses a large customer-channel debit without the edge's `verified`. An OTP is bound to the one
# payment order it was asked for: the SHA-256 of what the order does (id, kind, accounts, payee,
# amount), so the same code cannot carry another amount, payer or payee.
BOUND_FIELDS = ("payment_id", "kind", "payer_account_id", "payee", "payee_id", "amount", "currency", "refund_of")


def _purpose(prefix: str, bound: dict[str, Any]) -> str:
    canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}:" + hashlib.sha256(canonical.encode()).hexdigest()


def payment_purpose(order: dict[str, Any]) -> str:
    """`payment:<sha256 hex>` of the order's bound fields, in canonical JSON."""
    return _purpose("payment", {name: order.get(name) for name in BOUND_FIELDS})


def refund_purpose(refund: dict[str, Any]) -> str:
    """`refund:<sha256 hex>` of a refund by its route: the new refund's id, the payment it gives back
    and the amount (null: all that is left, as the route's body says it)."""
    return _purpose("refund", {name: refund.get(name) for name in ("refund_id", "payment_id", "amount")})


async def _verify_otp(request: Request, who: Principal, otp: OtpHeaders, purpose: str, *,
                      consumed_by: Any) -> Reply | Response:  # fmt: skip
    if otp.otp_id is None or otp.otp_code is None:
        return problem(400, "invalid_message", "give both X-OTP-Id and X-OTP-Code")
    try:
        otp_uuid = UUID(otp.otp_id)
    except ValueError:
        return problem(400, "invalid_message", "X-OTP-Id is not a UUID")
    command = identity.VerifyOtp(otp_id=otp_uuid, code=otp.otp_code[:20], purpose=purpose,
                                 consumed_by=str(consumed_by))  # fmt: skip
    reply = await gateway_of(request).read(command, who)
    if isinstance(reply, Response) or reply.ok:
        return reply
    assert reply.error is not None
    return problem(status_for(reply.error.code), reply.error.code, reply.error.message, reply.error.details)


class OtpRefund(BaseModel):
    """A refund by its route (`POST /v1/payments/{payment_id}/refund`), as it will be asked."""

    model_config = ConfigDict(extra="forbid")

    payment_id: UUID = Field(description="the payment to refund (the route's path)")
    refund_id: UUID = Field(description="the refund's id, as the route's body will give it")
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT, description="as the body will give it; null: all that is left")


class OtpBody(BaseModel):
    """A one-time password for one payment order, or for one refund by its route: exactly as it will
    be placed (the code is bound to it)."""

    model_config = ConfigDict(extra="forbid")

    otp_id: UUID = Field(description="new OTP's id, chosen by the caller; give it back in X-OTP-Id")
    channel: identity.OtpChannel = Field(default=identity.OtpChannel.sms, description="sms (default) or email")
    payment: InitiatePaymentBody | None = Field(  # type: ignore[valid-type]
        default=None, description="the payment order it authorises, as it will be placed")  # fmt: skip
    refund: OtpRefund | None = Field(default=None, description="or the refund it authorises, as it will be asked")

    @model_validator(mode="after")
    def _one_purpose(self) -> OtpBody:
        if (self.payment is None) == (self.refund is None):
            raise ValueError("give exactly one of `payment` and `refund`")
        return self


@router.post("/v1/otp", status_code=201)
async def issue_otp(
    body: OtpBody,
    request: Request,
    who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """Ask for a one-time password (6 digits, 5 minutes, 3 tries) sent by SMS (or email) to the
    customer, for the one payment order in the body; then place that order with the headers
    `X-OTP-Id` and `X-OTP-Code`; or for one refund (`refund`), then ask it by
    `POST /v1/payments/{payment_id}/refund` with the headers. Customers only (staff channels need none)."""
    purpose = (payment_purpose(body.payment.model_dump()) if body.payment is not None  # type: ignore[attr-defined]
               else refund_purpose(body.refund.model_dump(mode="json")))  # type: ignore[union-attr]  # fmt: skip
    data = {"otp_id": body.otp_id, "channel": body.channel, "purpose": purpose}
    return await gateway_of(request).change(identity.IssueOtp, data, who, key, created=True)


@router.get("/v1/payments/{payment_id}")
async def get_payment(payment_id: UUID, request: Request, who: Principal = require("accounts:read", "payments")) -> Response:
    return await gateway_of(request).query(c.GetPayment, {"payment_id": payment_id}, who)


@router.get("/v1/accounts/{account_id}/payments")
async def list_account_payments(
    account_id: UUID,
    request: Request,
    limit: int = Query(default=50, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("accounts:read", "payments"),
) -> Response:
    data = {"account_id": account_id, "limit": limit, "cursor": cursor}
    return await gateway_of(request).query(c.ListAccountPayments, data, who)


@router.post("/v1/payments/{payment_id}/approve")
async def approve_payment(
    payment_id: UUID,
    request: Request,
    body: ApprovePaymentBody | None = None,
    who: Principal = require("payments:approve", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = {"payment_id": payment_id, "permissions": sorted(who.permissions)}
    return await _change(request, c.ApprovePayment, data, who, key)


def _payment_action(verb: str, contract: type[Command], body_type: Any, permission: str, *, created: bool = False,
                    checker: bool = False, doc: str | None = None) -> None:  # fmt: skip
    """`POST /v1/payments/{payment_id}/<verb>`: the body, the path's payment id and the caller
    make the command; a checker's command also carries the permissions the edge verified."""

    async def act(
        payment_id: UUID,
        body: Any,
        request: Request,
        who: Principal = require(permission, "payments"),
        key: str | None = Depends(idempotency_key),
    ) -> Response:
        data = {**body.model_dump(), "payment_id": payment_id}
        if checker:
            data["permissions"] = sorted(who.permissions)
        return await _change(request, contract, data, who, key, created=created)

    act.__annotations__["body"] = body_type  # a model, not a name: this module postpones annotations
    router.post(f"/v1/payments/{{payment_id}}/{verb}", name=f"{verb}_payment", status_code=201 if created else 200,
                description=doc)(act)  # fmt: skip


_payment_action("reject", c.RejectPayment, RejectPaymentBody, "payments:approve", checker=True)
_payment_action("cancel", c.CancelPayment, CancelPaymentBody, "payments:create")


@router.post("/v1/payments/{payment_id}/refund", name="refund_payment", status_code=201)
async def refund_payment(
    payment_id: UUID,
    body: RefundPaymentBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
    otp: OtpHeaders = Depends(otp_headers),
) -> Response:
    """Refund a completed payment in full (no `amount`) or in part, as a new payment `refund_id`. A
    customer's refund of at least the step-up threshold debits their account: it needs a verified
    one-time password asked for this refund (`POST /v1/otp` with `refund`), else 428."""
    data = {**body.model_dump(), "payment_id": payment_id}  # type: ignore[attr-defined]
    if otp.given:
        verified = await _verify_otp(request, who, otp, refund_purpose(data), consumed_by=data["refund_id"])
        if isinstance(verified, Response):
            return verified
        data["verified"] = True  # never from the body (RefundPaymentBody has no such field)
    return await _change(request, c.RefundPayment, data, who, key, created=True)


_payment_action("reverse", c.ReversePayment, ReversePaymentBody, "payments:reverse", created=True,
                doc="Staff correction: principal and fee back to the payer in full, as a new payment `reversal_id`.")


@router.post("/v1/customers/{customer_id}/payees", status_code=201)
async def add_payee(
    customer_id: UUID,
    body: AddPayeeBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = {**body.model_dump(), "customer_id": customer_id}  # type: ignore[attr-defined]
    return await _change(request, c.AddPayee, data, who, key, created=True)


@router.get("/v1/customers/{customer_id}/payees")
async def list_payees(
    customer_id: UUID, request: Request, who: Principal = require("accounts:read", "payments")
) -> Response:
    return await gateway_of(request).query(c.ListPayees, {"customer_id": customer_id}, who)


@router.post("/v1/standing-orders", status_code=201)
async def create_standing_order(
    body: CreateStandingOrderBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = body.model_dump()  # type: ignore[attr-defined]
    return await _change(request, c.CreateStandingOrder, data, who, key, created=True)


@router.get("/v1/standing-orders/{standing_order_id}")
async def get_standing_order(
    standing_order_id: UUID, request: Request, who: Principal = require("accounts:read", "payments")
) -> Response:
    return await gateway_of(request).query(c.GetStandingOrder, {"standing_order_id": standing_order_id}, who)


@router.get("/v1/accounts/{account_id}/standing-orders")
async def list_standing_orders(
    account_id: UUID, request: Request, who: Principal = require("accounts:read", "payments")
) -> Response:
    return await gateway_of(request).query(c.ListStandingOrders, {"account_id": account_id}, who)


@router.post("/v1/standing-orders/{standing_order_id}/cancel")
async def cancel_standing_order(
    standing_order_id: UUID,
    body: CancelStandingOrderBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = {**body.model_dump(), "standing_order_id": standing_order_id}  # type: ignore[attr-defined]
    return await _change(request, c.CancelStandingOrder, data, who, key)
