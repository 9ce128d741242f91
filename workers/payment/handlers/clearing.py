"""The clearing partner's answers: it settles or rejects the external payments it was sent, and
tells of credits that arrive for our accounts."""

from __future__ import annotations

from uuid import UUID

from bus.actor import not_for_customers
from bus.handling import Context, Deferred
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import EXTERNAL_KINDS, PaymentError, PaymentKind, PaymentStatus
from workers.payment import store
from workers.payment.domain.orders import reference
from workers.payment.domain.screening import FRAUD_BASE
from workers.payment.domain.transfers import incoming_transfers, incoming_words, post_transfers, transfer_id
from workers.payment.handlers.lifecycle import (
    ask_ledger,
    fact_fields,
    fail_and_release,
    holds_for,
    not_found,
    random8,
    reply_with,
    usable,
)
from workers.payment.store import PaymentRow

K, S, E = PaymentKind, PaymentStatus, PaymentError


async def settle_payment(ctx: Context, cmd: c.SettlePayment) -> Reply | Deferred:
    row = await _partner_answer(ctx, cmd.payment_id, cmd.partner_reference, S.completed)
    if isinstance(row, Reply):
        return row
    return await ask_ledger(ctx, row, "post_hold", post_transfers(holds_for(row)))


async def reject_external_payment(ctx: Context, cmd: c.RejectExternalPayment) -> Reply | Deferred:
    row = await _partner_answer(ctx, cmd.payment_id, cmd.partner_reference, S.failed)
    if isinstance(row, Reply):
        return row
    return await fail_and_release(ctx, row, "rejected_by_partner", cmd.reason)


async def _partner_answer(ctx: Context, payment_id: UUID, partner_reference: str, outcome: PaymentStatus) -> PaymentRow | Reply:
    """The payment the partner answers for, marked answered; or the reply when there is nothing to do."""
    row = await _partner_payment(ctx, payment_id)
    if isinstance(row, Reply):
        return row
    v = row.view
    if row.partner is not None and v.partner_reference == partner_reference and v.status in (outcome, S.processing):
        return reply_with(row)  # the partner repeated itself (its first answer may still be with the ledger)
    if v.status != S.processing or row.partner is not None:
        return Reply.refusal(E.invalid_transition, f"payment {payment_id} is {v.status}, not awaiting settlement")
    return await store.update_payment(ctx.conn, v.payment_id, ctx.now, partner_reference=partner_reference,
                                      partner=ctx.broker_user or "internal")  # fmt: skip


async def _partner_payment(ctx: Context, payment_id: UUID) -> PaymentRow | Reply:
    if ctx.actor is not None and ctx.actor.via != "partner" and (denied := not_for_customers(ctx.actor)):
        return denied
    row = await store.get_payment(ctx.conn, payment_id, for_update=True)
    if row is None or row.view.kind not in EXTERNAL_KINDS:
        return not_found(payment_id)
    return row


async def incoming_credit(ctx: Context, cmd: c.IncomingCredit) -> Reply | Deferred:
    if (denied := not_for_customers(ctx.actor)) is not None:
        return denied
    if cmd.rail not in EXTERNAL_KINDS:
        return Reply.refusal(E.invalid_payee, f"{cmd.rail} is not a clearing rail")
    partner = ctx.broker_user or "internal"
    existing = await store.incoming_by_reference(ctx.conn, partner, cmd.partner_reference)
    if existing is not None:
        same = (existing.view.amount, existing.view.currency, existing.view.description) == (cmd.amount, cmd.currency, cmd.description)
        if same:
            return reply_with(existing)  # the partner repeated itself: credited once
        return Reply.refusal(E.partner_reference_conflict, f"reference {cmd.partner_reference} was used for another credit")
    account = await store.account_by_number(ctx.conn, cmd.payee_account_number)
    if account is None:
        return Reply.refusal(E.account_not_found, "no such account number")
    if (answer := usable(None, account, account.account_id, cmd.currency, paying=False)) is not None:
        return answer
    payment_id = transfer_id(account.account_id, f"incoming:{partner}:{cmd.partner_reference}")
    view = c.PaymentView(
        payment_id=payment_id, reference=reference(K.incoming, ctx.now, random8()), kind=K.incoming,
        channel=c.Channel.api, status=S.initiated, payee=c.Payee(account_id=account.account_id), amount=cmd.amount,
        fee=0, currency=cmd.currency, fraud_score=FRAUD_BASE, fraud_level=c.FraudLevel.low, refunded_amount=0,
        maker=partner, partner_reference=cmd.partner_reference, description=cmd.description,
        created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    row = PaymentRow(view=view, payee_account_id=account.account_id, customer_id=account.customer_id,
                     needs_approval=False, charged_periods=[], refund_reserved=0, standing_order_id=None,
                     expires_at=None, completed_at=None, failure_reason=None, partner=partner)  # fmt: skip
    await store.insert_payment(ctx.conn, row)
    await ctx.emit(c.PaymentInitiated(**fact_fields(row, ctx.now), fee=0, fraud_score=view.fraud_score, fraud_level=view.fraud_level))
    words = incoming_words(view.reference, cmd.rail, payer_name=cmd.payer_name, payer_ifsc=cmd.payer_ifsc,
                           payer_account=cmd.payer_account_number or cmd.payer_vpa, description=cmd.description)  # fmt: skip
    transfers = incoming_transfers(payment_id, words, view.currency, rail=cmd.rail,
                                   account=account.account_id, amount=cmd.amount)  # fmt: skip
    return await ask_ledger(ctx, row, "post", transfers)
