"""What every payment handler shares: the replies and facts it builds, asking the ledger (one saga
step per action), and finishing a payment (completed, failed or cancelled, its hold voided).
"""

from __future__ import annotations

import secrets
import string
from datetime import datetime
from typing import Any
from uuid import UUID

from bus.actor import Actor, acting_subject
from bus.handling import Context, Deferred
from contracts import ledger
from contracts import payment as c
from contracts.ledger import bank_account_id
from contracts.common import Reply
from contracts.payment import PaymentError, PaymentKind, PaymentStatus
from workers.payment import domain, standing_orders, store
from workers.payment.domain import Refusal
from workers.payment.store import PaymentRow

K, S, E = PaymentKind, PaymentStatus, PaymentError
STEP_LEDGER = "ledger"
LEDGER_ACTIONS = ("post", "hold", "post_hold", "void", "refund", "reverse")


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message, refusal.details)


def random8() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))


def not_found(payment_id: UUID) -> Reply:
    return Reply.refusal(E.payment_not_found, f"no payment {payment_id}")


def reply_with(row: PaymentRow) -> Reply:
    return Reply.success(row.view)


def as_json(row: PaymentRow) -> dict[str, Any]:
    return row.view.model_dump(mode="json")


def fact_fields(row: PaymentRow, now: datetime) -> dict[str, Any]:
    v = row.view
    return {
        "payment_id": v.payment_id, "reference": v.reference, "kind": v.kind, "payer_account_id": v.payer_account_id,
        "payee_account_id": row.payee_account_id, "customer_id": row.customer_id, "amount": v.amount,
        "currency": v.currency, "status": v.status, "occurred_at": now,
    }  # fmt: skip


def subject_of(actor: Actor | None, claimed: str) -> str:
    """Who acts: the edge's authenticated person or the partner itself, never what a body claims;
    only a service of the bank names who it acts for (bus/actor.py)."""
    return acting_subject(actor, claimed)


async def owner_of(ctx: Context, account_id: UUID | None) -> UUID | None:
    account = await store.get_account(ctx.conn, account_id) if account_id else None
    return account.customer_id if account else None


def usage_periods(row: PaymentRow) -> dict[str, Any]:
    """The usage periods this payment charged, from its acceptance time."""
    periods = domain.limit_periods(row.view.kind, row.view.created_at)
    return {name: start for name, start in periods.items() if name in row.charged_periods}


# --- asking the ledger, and finishing a payment ----------------------------------------------------


def holds_for(row: PaymentRow, timeout_s: int = 0) -> list[ledger.NewTransfer]:
    v = row.view
    assert v.payer_account_id is not None
    # A large withdrawal waiting for a checker holds the cash for the vault.
    payee = bank_account_id("cash_vault", v.currency) if v.kind == K.cash_withdrawal else row.payee_account_id
    return domain.hold_transfers(v.payment_id, v.reference, v.currency, kind=v.kind, payer=v.payer_account_id,
                                 payee=payee, amount=v.amount, fee=v.fee, timeout_s=timeout_s)  # fmt: skip


async def ask_ledger(ctx: Context, row: PaymentRow, action: str, transfers: list[ledger.NewTransfer]) -> Deferred:
    state = {"payment_id": str(row.view.payment_id), "action": action}
    # One step name per action: a continuation that asks again (approve → post) needs a new step id.
    return await ctx.request(ledger.CreateTransfers(transfers=transfers), step=f"{STEP_LEDGER}_{action}", state=state)


async def complete_payment(ctx: Context, row: PaymentRow, partner_reference: str | None = None) -> PaymentRow:
    changes: dict[str, Any] = {"status": S.completed, "completed_at": ctx.now, "expires_at": None}
    if partner_reference is not None:
        changes["partner_reference"] = partner_reference
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, **changes)
    await ctx.emit(c.PaymentCompleted(**fact_fields(row, ctx.now), fee=row.view.fee, partner_reference=row.view.partner_reference))
    await standing_order_result(ctx, row, succeeded=True)
    return row


async def fail_payment(ctx: Context, row: PaymentRow, code: str, reason: str, *, status: PaymentStatus = S.failed,
                actor: str | None = None) -> PaymentRow:  # fmt: skip
    """Failed or cancelled: the limit usage it charged is given back (§4), and it says so."""
    periods = usage_periods(row)
    if periods and row.view.payer_account_id is not None:
        await store.charge(ctx.conn, row.view.payer_account_id, periods, -(row.view.amount + row.view.fee))
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=status, failure_code=str(code),
                                     failure_reason=reason, expires_at=None, charged_periods=[])  # fmt: skip
    if status == S.cancelled:
        await ctx.emit(c.PaymentCancelled(**fact_fields(row, ctx.now), actor=actor or "system", reason=reason))
    else:
        await ctx.emit(c.PaymentFailed(**fact_fields(row, ctx.now), code=str(code), reason=reason))
    if row.view.refund_of is not None:
        await release_refund_reservation(ctx, row)
    await standing_order_result(ctx, row, succeeded=False)
    return row


async def fail_and_release(ctx: Context, row: PaymentRow, code: str, reason: str, *,
                            status: PaymentStatus = S.failed, actor: str | None = None) -> Reply | Deferred:  # fmt: skip
    """Fail (or cancel) a payment whose funds are held, and void the hold; the answer follows the void."""
    row = await fail_payment(ctx, row, code, reason, status=status, actor=actor)
    return await ask_ledger(ctx, row, "void", domain.void_transfers(holds_for(row)))


async def release_refund_reservation(ctx: Context, refund: PaymentRow) -> None:
    assert refund.view.refund_of is not None
    original = await store.get_payment(ctx.conn, refund.view.refund_of, for_update=True)
    assert original is not None
    await store.update_payment(ctx.conn, original.view.payment_id, ctx.now,
                               refund_reserved=original.refund_reserved - refund.view.amount)  # fmt: skip


async def standing_order_result(ctx: Context, row: PaymentRow, *, succeeded: bool) -> None:
    if row.standing_order_id is not None:
        await standing_orders.occurrence_finished(ctx, row, succeeded=succeeded)
