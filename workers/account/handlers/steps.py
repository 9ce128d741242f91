"""What every close-of-business step of the account worker says when it ends: done (with what it
did) or failed (with why), as `account.cob_step_reported`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bus.handling import Context
from contracts import account as c
from contracts import day


async def report(ctx: Context, business_date: dt.date, step: str, *, error: str | None = None,
                 result: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Done unless `error` says why it failed."""
    status = day.StepStatus.failed if error else day.StepStatus.done
    await ctx.emit(c.AccountCobStepReported(business_date=business_date, step=step, status=status, error=error,
                                            result=result, occurred_at=ctx.now))  # fmt: skip
