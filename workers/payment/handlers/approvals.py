"""Maker-checker: a checker approves or rejects a payment held for approval, and its maker (or
staff) cancels one not yet decided."""

from __future__ import annotations

from uuid import UUID

from bus.actor import believed_permissions, not_for_customers, owner_only
from bus.handling import Context, Deferred
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import EXTERNAL_KINDS, PaymentError, PaymentStatus
from workers.payment import store
from workers.payment.domain.orders import Refusal, Step, check_approver, transition
from workers.payment.domain.transfers import post_transfers
from workers.payment.handlers.lifecycle import (
    ask_ledger,
    fact_fields,
    fail_and_release,
    holds_for,
    not_found,
    refuse,
    release_to_rail,
    reply_with,
    subject_of,
)
from workers.payment.store import PaymentRow

S, E = PaymentStatus, PaymentError


async def approve_payment(ctx: Context, cmd: c.ApprovePayment) -> Reply | Deferred:
    checked = await _checker(ctx, cmd)
    if isinstance(checked, Reply):
        return checked
    row, approver = checked
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, approver=approver, expires_at=None)
    await ctx.emit(c.PaymentApproved(**fact_fields(row, ctx.now), approver=approver))
    if row.view.kind in EXTERNAL_KINDS:
        return reply_with(await release_to_rail(ctx, row))
    return await ask_ledger(ctx, row, "post_hold", post_transfers(holds_for(row)))


async def reject_payment(ctx: Context, cmd: c.RejectPayment) -> Reply | Deferred:
    checked = await _checker(ctx, cmd)
    if isinstance(checked, Reply):
        return checked
    row, checker = checked
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, approver=checker)
    return await fail_and_release(ctx, row, "rejected", cmd.reason)


async def _checker(ctx: Context, cmd: c.ApprovePayment | c.RejectPayment) -> tuple[PaymentRow, str] | Reply:
    """The payment waiting for a checker, locked, and the checker, who may decide it (not its maker)."""
    row = await _awaiting_approval(ctx, cmd.payment_id)
    if isinstance(row, Reply):
        return row
    checker = subject_of(ctx.actor, cmd.actor)
    # The edge states the checker's permissions (a service of the bank may too); a partner's claim
    # is worth nothing, so a partner may never approve.
    if refusal := check_approver(row.view.maker, checker, believed_permissions(ctx.actor, cmd.permissions)):
        return refuse(refusal)
    return row, checker


async def _awaiting_approval(ctx: Context, payment_id: UUID) -> PaymentRow | Reply:
    if (denied := not_for_customers(ctx.actor)) is not None:
        return denied
    row = await store.get_payment(ctx.conn, payment_id, for_update=True)
    if row is None:
        return not_found(payment_id)
    if row.view.status != S.pending or not row.needs_approval or row.view.approver is not None:
        return Reply.refusal(E.invalid_transition, f"payment {payment_id} is not waiting for approval ({row.view.status})")
    return row


async def cancel_payment(ctx: Context, cmd: c.CancelPayment) -> Reply | Deferred:
    row = await store.get_payment(ctx.conn, cmd.payment_id, for_update=True)
    if row is None:
        return not_found(cmd.payment_id)
    if denied := owner_only(ctx.actor, row.customer_id):
        return denied
    if row.view.status == S.initiated:
        # The ledger is still answering the first step; a cancel now could race the hold.
        return Reply.refusal(E.invalid_transition, "the payment is being placed; try again in a moment")
    if isinstance(refusal := transition(row.view.status, Step.cancel), Refusal):
        return refuse(refusal)
    return await fail_and_release(ctx, row, "cancelled", cmd.reason, status=S.cancelled, actor=subject_of(ctx.actor, cmd.actor))
