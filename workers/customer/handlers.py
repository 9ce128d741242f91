"""The customer worker's recipes: load, decide (domain), store, emit, reply."""

from __future__ import annotations

import os
from collections.abc import Callable
from uuid import UUID

from bus.paging import cursor_or_refusal, decode_text, page_of
from bus.handling import Context
from contracts import account as account_events
from contracts import customer as c
from contracts.common import Reply
from workers.customer import store
from workers.customer.domain import decisions, profile
from workers.customer.domain.decisions import Change
from workers.customer.domain.profile import Refusal

# ISO 3166-1 alpha-2 codes whose nationals and residents always score high risk (banking-rules §1).
HIGH_RISK_COUNTRIES = frozenset(
    code.strip().upper() for code in os.environ.get("CBS_HIGH_RISK_COUNTRIES", "").split(",") if code.strip()
)
CUSTOMER_NUMBER_DIGITS = 10


def customer_number(sequence: int) -> str:
    return f"C{sequence:0{CUSTOMER_NUMBER_DIGITS}d}"


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message, refusal.details)


def not_found(customer_id: UUID) -> Reply:
    return Reply.refusal(c.CustomerError.customer_not_found, f"no customer {customer_id}")


def duplicate(code: c.CustomerError) -> Reply:
    return Reply.refusal(code, {
        c.CustomerError.duplicate_customer: "this customer_id is already registered",
        c.CustomerError.duplicate_email: "another customer has this email address",
        c.CustomerError.duplicate_national_id: "another customer has this national id",
    }[code])  # fmt: skip


async def register_customer(ctx: Context, cmd: c.RegisterCustomer) -> Reply:
    if await store.load(ctx.conn, cmd.customer_id) is not None:
        return duplicate(c.CustomerError.duplicate_customer)
    number = customer_number(await store.next_customer_number(ctx.conn))
    change = decisions.decide_registration(cmd, number, ctx.now.date(), ctx.now, HIGH_RISK_COUNTRIES)
    if isinstance(change, Refusal):
        return refuse(change)
    # The unique indexes, not the lookup above, decide a race between two registrations.
    if clash := await store.insert(ctx.conn, change.customer):
        return duplicate(clash)
    return await _emit(ctx, change)


async def get_customer(ctx: Context, cmd: c.GetCustomer) -> Reply:
    customer = await store.load(ctx.conn, cmd.customer_id)
    return Reply.success(customer) if customer else not_found(cmd.customer_id)


async def update_customer(ctx: Context, cmd: c.UpdateCustomer) -> Reply:
    return await _change(
        ctx, cmd.customer_id, lambda x: decisions.decide_update(x, cmd, ctx.now.date(), ctx.now, HIGH_RISK_COUNTRIES)
    )


async def search_customers(ctx: Context, cmd: c.SearchCustomers) -> Reply:
    after_number, refusal = cursor_or_refusal(cmd.cursor, decode_text)
    if refusal:
        return refusal
    found = await store.search(ctx.conn, cmd.query, after_number=after_number, limit=cmd.limit + 1)
    page, next_cursor = page_of(found, cmd.limit, lambda customer: (customer.customer_number,))
    items = [profile.summary(customer) for customer in page]
    return Reply.success(c.CustomerPage(items=items, next_cursor=next_cursor))


async def add_kyc_document(ctx: Context, cmd: c.AddKycDocument) -> Reply:
    return await _change(ctx, cmd.customer_id, lambda x: decisions.decide_add_document(x, cmd, ctx.now.date(), ctx.now))


async def verify_kyc_document(ctx: Context, cmd: c.VerifyKycDocument) -> Reply:
    return await _change(
        ctx, cmd.customer_id, lambda x: decisions.decide_verify_document(x, cmd, ctx.now.date(), ctx.now)
    )


async def reject_kyc_document(ctx: Context, cmd: c.RejectKycDocument) -> Reply:
    return await _change(
        ctx, cmd.customer_id, lambda x: decisions.decide_reject_document(x, cmd, ctx.now.date(), ctx.now)
    )


async def suspend_customer(ctx: Context, cmd: c.SuspendCustomer) -> Reply:
    return await _change(ctx, cmd.customer_id, lambda x: decisions.decide_suspend(x, cmd, ctx.now))


async def reactivate_customer(ctx: Context, cmd: c.ReactivateCustomer) -> Reply:
    return await _change(ctx, cmd.customer_id, lambda x: decisions.decide_reactivate(x, cmd, ctx.now))


async def close_customer(ctx: Context, cmd: c.CloseCustomer) -> Reply:
    # Open accounts are counted from account.* events (loans will add theirs the same way).
    open_products = await store.open_products(ctx.conn, cmd.customer_id)
    return await _change(ctx, cmd.customer_id, lambda x: decisions.decide_close(x, cmd, open_products, ctx.now))


# --- shared steps --------------------------------------------------------------------------


Decide = Callable[[c.CustomerView], Change | Refusal]


async def _change(ctx: Context, customer_id: UUID, decide: Decide) -> Reply:
    """Lock, decide, save and emit: the recipe of every command that changes a customer."""
    customer = await store.load(ctx.conn, customer_id, for_update=True)
    if customer is None:
        return not_found(customer_id)
    change = decide(customer)
    if isinstance(change, Refusal):
        return refuse(change)
    if change.customer.version == customer.version:
        return Reply.success(customer)  # nothing changed: nothing to store or announce
    if clash := await store.save(ctx.conn, change.customer):
        return duplicate(clash)
    return await _emit(ctx, change)


async def _emit(ctx: Context, change: Change) -> Reply:
    for event in change.events:
        await ctx.emit(event)
    return Reply.success(change.customer)


# --- what the customer worker learns from the account worker ---------------------------------


async def on_account_opened(ctx: Context, event: account_events.AccountOpened) -> None:
    await store.product_opened(ctx.conn, event.account_id, event.customer_id, "account")


async def on_account_closed(ctx: Context, event: account_events.AccountClosed) -> None:
    await store.product_closed(ctx.conn, event.account_id, event.customer_id, "account")
