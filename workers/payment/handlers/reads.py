"""Reads of payments (either side of a payment may read it) and the customer's saved payees."""

from __future__ import annotations

from bus.actor import owner_only
from bus.paging import cursor_or_refusal, decode_time_id, page_of
from bus.handling import Context
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import PaymentError
from workers.payment import store
from workers.payment.domain.orders import Refusal, normalize_payee
from workers.payment.handlers.lifecycle import not_found, owner_of, refuse

E = PaymentError
MAX_PAYEES = 500  # per customer


# --- reads --------------------------------------------------------------------------------------------


async def get_payment(ctx: Context, cmd: c.GetPayment) -> Reply:
    row = await store.get_payment(ctx.conn, cmd.payment_id)
    if row is None:
        return not_found(cmd.payment_id)
    if ctx.actor is not None and ctx.actor.is_customer:
        # Either side of a payment may read it.
        owners = {row.customer_id, await owner_of(ctx, row.payee_account_id)}
        if ctx.actor.customer_id not in owners:
            return Reply.refusal("not_owner", "this belongs to another customer")
    return Reply.success(row.view)


async def list_account_payments(ctx: Context, cmd: c.ListAccountPayments) -> Reply:
    if denied := owner_only(ctx.actor, await owner_of(ctx, cmd.account_id)):
        return denied
    after, refusal = cursor_or_refusal(cmd.cursor, decode_time_id)
    if refusal is not None:
        return refusal
    found = await store.account_payments(ctx.conn, cmd.account_id, after=after, limit=cmd.limit + 1)
    page, cursor = page_of(found, cmd.limit, lambda p: (p.created_at.isoformat(), p.payment_id))
    return Reply.success(c.PaymentPage(items=page, next_cursor=cursor))


# --- payees -------------------------------------------------------------------------------------------


async def add_payee(ctx: Context, cmd: c.AddPayee) -> Reply:
    payee = normalize_payee(cmd.payee)
    if isinstance(payee, Refusal):
        return refuse(payee)
    existing = await store.get_payee(ctx.conn, cmd.payee_id)
    if existing is not None:
        if (existing.customer_id, existing.payee) == (cmd.customer_id, payee):
            return Reply.success(existing)  # a retry
        return Reply.refusal(E.payee_exists, f"payee {cmd.payee_id} exists with other fields")
    if await store.count_payees(ctx.conn, cmd.customer_id) >= MAX_PAYEES:
        return Reply.refusal(E.limit_exceeded, f"a customer keeps at most {MAX_PAYEES} payees", {"limit": "payees"})
    view = c.PayeeView(payee_id=cmd.payee_id, customer_id=cmd.customer_id, payee=payee, added_at=ctx.now)
    await store.insert_payee(ctx.conn, view)
    await ctx.emit(c.PayeeAdded(payee_id=view.payee_id, customer_id=view.customer_id, payee=payee, occurred_at=ctx.now))
    return Reply.success(view)


async def list_payees(ctx: Context, cmd: c.ListPayees) -> Reply:
    return Reply.success(c.PayeePage(items=await store.customer_payees(ctx.conn, cmd.customer_id, MAX_PAYEES)))
