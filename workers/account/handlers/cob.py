"""Close of business: the account worker's steps, each run when the day worker asks for it."""

from __future__ import annotations

from bus.handling import Context
from contracts import day
from workers.account.handlers import charges, deposits, dormancy, interest, statements


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    await interest.on_day_closing(ctx, event)  # account.interest
    await charges.on_day_closing(ctx, event)  # account.charges
    await dormancy.on_day_closing(ctx, event)  # account.dormancy
    await deposits.on_day_closing(ctx, event)  # account.deposits
    await statements.on_day_closing(ctx, event)  # account.statements
