"""Dormancy (banking-rules §2): close of business's `account.dormancy` step turns an active account
dormant a year after its customer's last own deposit, withdrawal or payment out (learnt from
`payment.completed`: interest, fees and third parties' credits do not count); an officer
reactivates it on the customer's request, with valid KYC. The payment worker refuses a dormant
account's customer debits (`account_dormant`); credits and the bank's own debits still reach it.
"""

from __future__ import annotations

import datetime as dt

from bus.handling import Context
from contracts import account as c
from contracts import day, payment
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain
from workers.account.domain.accounts import Refusal
from workers.account.handlers import steps
from workers.account.handlers.accounts import fact, not_found, refuse

STEP = "account.dormancy"
ROUND = 1_000  # accounts a round
MAX_ROUNDS = 10  # a close turns at most this many rounds dormant; the next close goes on
# Payment kinds that are the payer's own doing; a cash deposit is the payee's own.
PAYER_ACTIVITY = frozenset({payment.PaymentKind.cash_withdrawal, payment.PaymentKind.internal, *payment.EXTERNAL_KINDS})


async def on_payment_completed(ctx: Context, event: payment.PaymentCompleted) -> None:
    """The customer acted on an account: a payment out of it, or cash into it."""
    if event.kind in PAYER_ACTIVITY and event.payer_account_id is not None:
        await store.customer_activity(ctx.conn, event.payer_account_id, event.occurred_at)
    if event.kind == payment.PaymentKind.cash_deposit and event.payee_account_id is not None:
        await store.customer_activity(ctx.conn, event.payee_account_id, event.occurred_at)


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    if STEP not in event.steps:
        return
    cutoff = domain.dormancy_cutoff(event.business_date)
    inactive_since = dt.datetime.combine(cutoff + dt.timedelta(days=1), dt.time(0), steps.BANK_TZ)
    turned, more = 0, False
    for _ in range(MAX_ROUNDS):
        due = await store.dormancy_due(ctx.conn, inactive_since, ROUND)
        for account in due:
            change = domain.go_dormant(account.status)
            assert not isinstance(change, Refusal), "only active accounts are due"
            dormant = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
            assert dormant.last_customer_activity_at is not None
            await ctx.emit(c.AccountDormant(**fact(dormant, ctx.now), business_date=event.business_date,
                                            last_customer_activity_at=dormant.last_customer_activity_at))  # fmt: skip
        turned += len(due)
        more = len(due) == ROUND
        if not more:
            break
    await steps.report(ctx, event.business_date, STEP, result={"dormant": turned, "more_next_close": more})


async def reactivate_account(ctx: Context, cmd: c.ReactivateAccount) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    change = domain.reactivate(account.status, await store.customer_standing(ctx.conn, account.customer_id))
    if isinstance(change, Refusal):
        return refuse(change)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    await store.customer_activity(ctx.conn, account.account_id, ctx.now)  # the request is the customer's doing
    account = await store.get_account(ctx.conn, account.account_id)
    assert account is not None
    await ctx.emit(c.AccountReactivated(**fact(account, ctx.now), actor=cmd.actor, reason=cmd.reason))
    return Reply.success(account)


