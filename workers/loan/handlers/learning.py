"""What the loan worker learns from the customer and account workers' facts: whether a customer may
borrow (active, KYC completed) and whether an account may carry a loan (theirs, active, its
currency). Applications are checked against it; nothing is ever asked synchronously."""

from __future__ import annotations

from typing import Any

from bus.handling import Context
from contracts import customer
from workers.loan import store


async def on_customer_registered(ctx: Context, event: customer.CustomerRegistered) -> None:
    await store.record_customer(ctx.conn, event.customer_id, event.status, event.kyc_status, event.occurred_at)


async def on_kyc_status_changed(ctx: Context, event: customer.CustomerKycStatusChanged) -> None:
    await store.record_customer(ctx.conn, event.customer_id, event.status, event.new_status, event.occurred_at)


async def on_customer_status_changed(ctx: Context, event: Any) -> None:
    """customer.suspended / reactivated / closed."""
    await store.record_customer(ctx.conn, event.customer_id, event.status, event.kyc_status, event.occurred_at)


async def on_account_fact(ctx: Context, event: Any) -> None:
    """account.opened / frozen / unfrozen / closed / dormant / reactivated: the newest status."""
    await store.record_account(ctx.conn, event.account_id, event.customer_id, event.currency, event.status,
                               event.occurred_at)  # fmt: skip
