"""What the account worker's close-of-business steps share: reading a ledger batch's answer, and
saying, when a step ends, done (with what it did) or failed (with why) as `account.cob_step_reported`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bus.handling import Context
from contracts import account as c
from contracts import day, ledger
from contracts.common import Reply

# The bank's time zone (banking-rules §0), read once at start as the day worker reads it: the bank
# date of an opening (charges) and the instant a year of inactivity ends (dormancy).
BANK_TZ = day.BANK_TIME_ZONE
IN_THE_LEDGER = (ledger.TransferResultCode.ok, ledger.TransferResultCode.exists)


def batch_results(reply: Reply) -> list[tuple[ledger.TransferResult, bool]] | str:
    """Each transfer's result and whether it is in the ledger (`exists` is a repeat's `ok`), or why
    the ledger refused the whole batch."""
    if not reply.ok or reply.result is None:
        return reply.error.message if reply.error else "no result"
    return [(r, r.result in IN_THE_LEDGER) for r in ledger.CreateTransfersResult.model_validate(reply.result).results]


async def report(ctx: Context, business_date: dt.date, step: str, *, error: str | None = None,
                 result: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Done unless `error` says why it failed."""
    status = day.StepStatus.failed if error else day.StepStatus.done
    await ctx.emit(c.AccountCobStepReported(business_date=business_date, step=step, status=status, error=error,
                                            result=result, occurred_at=ctx.now))  # fmt: skip
