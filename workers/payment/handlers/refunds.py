"""Refunds and reversals: money given back from the payee to the payer of a completed payment,
asked of the ledger like any payment (its answer is taken in `lifecycle.refund_posted`)."""

from __future__ import annotations

from uuid import UUID

from bus.actor import PARTNER, not_for_customers, owner_only
from bus.handling import Context, Deferred
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import EXTERNAL_KINDS, PaymentError, PaymentKind, PaymentStatus
from workers.payment import store
from workers.payment.domain.orders import RefundTarget, check_refund, reference, step_up_refusal
from workers.payment.domain.screening import FRAUD_BASE
from workers.payment.domain.transfers import refund_transfers, refund_words
from workers.payment.handlers import lifecycle
from workers.payment.handlers.lifecycle import (
    ask_ledger,
    believes_verified,
    fact_fields,
    not_found,
    owner_of,
    random8,
    refuse,
    reply_with,
    subject_of,
)
from workers.payment.store import PaymentRow

K, S, E = PaymentKind, PaymentStatus, PaymentError


async def refund_payment(ctx: Context, cmd: c.RefundPayment) -> Reply | Deferred:
    return await _give_back(ctx, cmd.refund_id, cmd.payment_id, cmd.amount, cmd.actor, cmd.reason, reversal=False,
                            verified=cmd.verified and believes_verified(ctx.actor))  # fmt: skip


async def reverse_payment(ctx: Context, cmd: c.ReversePayment) -> Reply | Deferred:
    if (denied := not_for_customers(ctx.actor)) is not None:
        return denied
    return await _give_back(ctx, cmd.reversal_id, cmd.payment_id, None, cmd.actor, cmd.reason, reversal=True)


async def _give_back(ctx: Context, new_id: UUID, original_id: UUID, amount: int | None, actor: str, reason: str,
                     *, reversal: bool, verified: bool = False) -> Reply | Deferred:  # fmt: skip
    kind = K.reversal if reversal else K.refund
    existing = await store.get_payment(ctx.conn, new_id)
    if existing is not None:
        if existing.view.refund_of == original_id and existing.view.kind == kind:
            return reply_with(existing)
        return Reply.refusal(E.payment_exists, f"payment {new_id} exists with other fields")
    original = await store.get_payment(ctx.conn, original_id, for_update=True)
    if original is None:
        return not_found(original_id)
    o = original.view
    # The money comes back from the payee: a customer may refund only what they received.
    if ctx.actor is not None and ctx.actor.is_customer:
        if o.kind in EXTERNAL_KINDS:
            return Reply.refusal(E.forbidden, "refunds of external payments are staff work")
        if denied := owner_only(ctx.actor, await owner_of(ctx, original.payee_account_id)):
            return denied
    amount = amount if amount is not None else o.amount - original.refund_reserved
    if reversal and original.refund_reserved:
        return Reply.refusal(E.not_refundable, "a payment partly refunded is corrected by refunds, not reversed")
    if amount <= 0:
        return Reply.refusal(E.refund_exceeds_amount, "nothing is left to refund", {"remaining": 0})
    asker = ctx.actor
    if not reversal and (refusal := step_up_refusal(
        kind, o.channel, amount, by_customer=asker is not None and asker.is_customer,
        by_partner=asker is not None and asker.via == PARTNER, verified=verified,
        threshold=lifecycle.CONFIG.step_up_threshold,
    )):  # fmt: skip
        return refuse(refusal)
    target = RefundTarget(kind=o.kind, status=o.status, amount=o.amount, currency=o.currency,
                          refunded_amount=original.refund_reserved, completed_at=original.completed_at)  # fmt: skip
    if refusal := check_refund(target, amount, o.currency, ctx.now):
        return refuse(refusal)
    assert o.payer_account_id is not None, "refundable payments have a payer"
    view = c.PaymentView(
        payment_id=new_id, reference=reference(kind, ctx.now, random8()), kind=kind, channel=o.channel,
        status=S.initiated, payer_account_id=original.payee_account_id, payee=c.Payee(account_id=o.payer_account_id),
        amount=amount, fee=o.fee if reversal else 0, currency=o.currency, fraud_score=FRAUD_BASE,
        fraud_level=c.FraudLevel.low, refund_of=original_id, refunded_amount=0, maker=subject_of(ctx.actor, actor),
        description=reason[:140], created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    row = PaymentRow(view=view, payee_account_id=o.payer_account_id, customer_id=original.customer_id,
                     needs_approval=False, charged_periods=[], refund_reserved=0, standing_order_id=None,
                     expires_at=None, completed_at=None, failure_reason=None, partner=None)  # fmt: skip
    await store.insert_payment(ctx.conn, row)
    # Reserved now, so two concurrent refunds can never give back more than the amount.
    await store.update_payment(ctx.conn, original_id, ctx.now, refund_reserved=original.refund_reserved + amount)
    await ctx.emit(c.PaymentInitiated(**fact_fields(row, ctx.now), fee=view.fee, fraud_score=view.fraud_score, fraud_level=view.fraud_level))
    transfers = refund_transfers(new_id, refund_words(view, o), o.currency, original_kind=o.kind,
                                 original_payer=o.payer_account_id, original_payee=original.payee_account_id,
                                 amount=amount, fee=view.fee, reversal=reversal)  # fmt: skip
    return await ask_ledger(ctx, row, "reverse" if reversal else "refund", transfers)
