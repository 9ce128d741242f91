"""The schedule calculator, and the business date the loan worker learns (`day.opened`)."""

from __future__ import annotations

from bus.handling import Context
from contracts import day
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import schedule


async def on_day_opened(ctx: Context, event: day.DayOpened) -> None:
    await store.learn_business_date(ctx.conn, event.business_date, event.occurred_at)


async def calculate(ctx: Context, cmd: c.CalculateLoan) -> Reply:
    """An EMI and its whole schedule; due dates from `disbursed_on`, or the open business date."""
    disbursed_on = cmd.disbursed_on or await store.business_date(ctx.conn)
    if disbursed_on is None:
        return Reply.refusal(c.LoanError.invalid_terms, "no business date is known yet: name disbursed_on")
    drawn = schedule.schedule(cmd.principal, cmd.rate_bps, cmd.months, cmd.method, cmd.amortization, disbursed_on,
                              currency=cmd.currency)  # fmt: skip
    return Reply.success(drawn)
