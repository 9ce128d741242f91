"""What a loan received, kept and told in one place: each receipt is a row of `loan_receipt` (the
loan's repayments, as its customer reads them) and a `loan.payment_received` event, written in the
transaction that took the money's answer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from uuid import UUID, uuid5

from bus.handling import Context
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.handlers.loans import readable


@dataclass(frozen=True, slots=True)
class Receipt:
    loan_id: UUID
    customer_id: UUID
    number: str  # the loan's
    kind: c.LoanPaymentKind
    amount: int
    business_date: dt.date
    payment_id: UUID | None = None  # a payment by hand's
    instalment: int | None = None  # an auto-debit's

    @property
    def receipt_id(self) -> UUID:
        return self.payment_id or uuid5(self.loan_id, f"receipt:{self.instalment}:{self.business_date}")


async def received(ctx: Context, receipts: list[Receipt]) -> None:
    """Kept (once: a repeated answer keeps nothing new) and told."""
    await store.insert_receipts(ctx.conn, [(r.receipt_id, r.loan_id, r.kind.value, r.instalment, r.business_date, r.amount, ctx.now)
                                           for r in receipts if r.amount > 0])  # fmt: skip
    for r in receipts:
        if r.amount > 0:
            await ctx.emit(c.LoanPaymentReceived(loan_id=r.loan_id, customer_id=r.customer_id, number=r.number, kind=r.kind,
                                                 payment_id=r.payment_id, amount=r.amount, business_date=r.business_date,
                                                 occurred_at=ctx.now))  # fmt: skip


async def list_repayments(ctx: Context, cmd: c.ListLoanRepayments) -> Reply:
    loan = await readable(ctx, cmd.loan_id)
    if isinstance(loan, Reply):
        return loan
    rows = await store.receipts_of(ctx.conn, loan.loan_id, cmd.limit)
    return Reply.success(c.LoanRepaymentList(items=[c.LoanRepaymentView(**dict(r)) for r in rows]))
