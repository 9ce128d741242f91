"""Foreclosure (banking-rules §5 "Prepayment / foreclosure": full only), pure: today's quote from
the loan's instalments, and the one linked chain that pays it.

The quote: the principal not yet due, its simple interest since the last due date (since the
disbursement before the first), the arrears (instalments due and unpaid: their interest and
principal), the penalties owed (none on an instalment still within its grace days), and the
prepayment charge on the principal not yet due (`schedule.foreclosure_quote`). The future
instalments' scheduled interest is not owed: foreclosing saves it.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from uuid import UUID

from contracts import ledger
from workers.loan.domain import accrual, repayment, schedule

SETTLED = ("paid", "foreclosed", "written_off", "restructured")


@dataclass(frozen=True, slots=True)
class Line:
    """An instalment as the store holds it."""

    number: int
    due_date: dt.date
    principal: int
    interest: int
    paid_principal: int
    paid_interest: int
    penalty_due: int
    penalty_paid: int
    status: str
    accrued_interest: int = 0
    suspended_interest: int = 0
    charges_due: int = 0
    charges_paid: int = 0


@dataclass(frozen=True, slots=True)
class Quote:
    outstanding_principal: int
    interest: int
    arrears_interest: int
    arrears_principal: int
    penalties: int
    prepayment_charge: int
    total: int
    charges: int = 0  # late fees owed (in the total)


def quote(lines: list[Line], business_date: dt.date, disbursed_on: dt.date, rate_bps: int, prepayment_charge_bps: int,
          grace_days: int) -> Quote:  # fmt: skip
    due = [x for x in lines if x.due_date <= business_date and x.status not in SETTLED]
    future = [x for x in lines if x.due_date > business_date]
    assert all(x.paid_principal == x.paid_interest == 0 for x in future), "nothing is paid before it is due"
    arrears_interest = sum(x.interest - x.paid_interest for x in due)
    arrears_principal = sum(x.principal - x.paid_principal for x in due)
    penalties = sum(repayment.penalty_owed(x.penalty_due, x.penalty_paid, (business_date - x.due_date).days, grace_days) for x in due)
    charges = sum(x.charges_due - x.charges_paid for x in due)
    last_due = max((x.due_date for x in lines if x.due_date <= business_date), default=disbursed_on)
    q = schedule.foreclosure_quote(sum(x.principal for x in future), rate_bps, (business_date - last_due).days,
                                   arrears_minor=arrears_interest + arrears_principal, penalties_minor=penalties,
                                   prepayment_charge_bps=prepayment_charge_bps)  # fmt: skip
    return Quote(q.outstanding_principal_minor, q.interest_minor, arrears_interest, arrears_principal, penalties,
                 q.prepayment_charge_minor, q.total_minor + charges, charges)  # fmt: skip


def interest_booking(lines: list[Line], q: Quote) -> tuple[accrual.Receipt, accrual.WriteBack]:
    """How the quote's interest is booked against what the loan accrued and has not received: the
    receivable cleared (suspense released), interest beyond the accrual income at once, accrual
    the quote does not ask (the rest of the current period, say) written back."""
    open_lines = [x for x in lines if x.status not in SETTLED]
    receivable = sum(max(x.accrued_interest - x.paid_interest, 0) for x in open_lines)
    suspended = sum(x.suspended_interest for x in open_lines)
    received = q.interest + q.arrears_interest
    return accrual.receipt(received, receivable, suspended), accrual.write_back(receivable, suspended, received)


def transfers(loan_id: UUID, payment_id: UUID, linked_account_id: UUID, currency: str, loan_number: str,
              q: Quote, lines: list[Line]) -> list[ledger.NewTransfer]:  # fmt: skip
    """One linked chain, whole or nothing: penalties, interest, the charge to their incomes; every
    unpaid principal to the loan's account, which then owes exactly nothing; and the loan's
    accrued interest receivable brought to nothing (received, or written back)."""
    words = {"reference": loan_number, "narration": f"Loan {loan_number}: foreclosed"}
    received, back = interest_booking(lines, q)
    bank = functools.partial(ledger.bank_account_id, currency=currency)
    customer = linked_account_id
    parts = (
        ("penalty", customer, bank("penalty_income"), q.penalties, "penalty"),
        ("charges", customer, bank("fee_income"), q.charges, "fee"),
        ("interest", customer, bank(accrual.RECEIVABLE), received.to_receivable, "loan_interest"),
        ("interest:unaccrued", customer, bank(accrual.INCOME), received.to_income, "loan_interest"),
        ("charge", customer, bank("fee_income"), q.prepayment_charge, "fee"),
        ("principal", customer, loan_id, q.outstanding_principal + q.arrears_principal, "loan_repayment"),
        ("interest:released", bank(accrual.SUSPENSE), bank(accrual.INCOME), received.released, "loan_release"),
        ("interest:back:suspense", bank(accrual.SUSPENSE), bank(accrual.RECEIVABLE), back.from_suspense, "loan_write_back"),
        ("interest:back:income", bank(accrual.INCOME), bank(accrual.RECEIVABLE), back.from_income, "loan_write_back"),
    )  # fmt: skip
    return repayment.linked_chain(payment_id, "foreclosure:", currency, words, parts)
