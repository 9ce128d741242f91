"""Restructuring (issue 12: "a new schedule for the outstanding, approved by maker-checker"), pure.

What is rescheduled. On the day it is approved: the principal not yet repaid (due or not), and
the interest the loan owes and has not paid: that of the instalments past due, and what the
current period has accrued so far. That interest is capitalised: it becomes principal of the new
schedule (the loan's ledger account debited, the interest receivable it was accrued to credited;
interest owed but never accrued, a loan from before accrual, is income at once). Penalties and late
fees owed are waived: a restructuring is the bank's agreement to a new plan. The old instalments not paid
are closed as `restructured`; the new schedule starts on the approval date, its instalments
numbered after the old ones.

Who. An officer (`loans:review`) asks for it, another (`loans:approve`) approves it. Only a
performing or overdue loan: a defaulted loan's interest sits in suspense, and capitalising it
would turn unreceived interest into principal that a later recovery reclassifies as income —
regulators require such a loan to stay an NPA until it performs for a period, which CBS does not
track; such a loan is collected or written off instead.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from uuid import UUID

from contracts import ledger
from contracts.loan import MAX_MONTHS, LoanError, LoanProductTerms, LoanStatus
from workers.loan.domain import accrual, repayment
from workers.loan.domain.foreclosure import SETTLED, Line

RESTRUCTURABLE = (LoanStatus.active, LoanStatus.overdue)


@dataclass(frozen=True, slots=True)
class Terms:
    outstanding_principal: int
    arrears_interest: int  # of the instalments past due, unpaid
    accrued_interest: int  # of the current period, accrued and not yet due
    to_receivable: int  # of the capitalised interest, what clears the receivable
    to_income: int  # what was never accrued: income at once
    waived_penalties: int  # and late fees
    last_number: int  # the new schedule's instalments are numbered after this

    @property
    def capitalised_interest(self) -> int:
        return self.arrears_interest + self.accrued_interest

    @property
    def principal(self) -> int:
        return self.outstanding_principal + self.capitalised_interest


def terms(lines: list[Line], business_date: dt.date, last_number: int) -> Terms:
    """`last_number`: the loan's last instalment's, of any schedule."""
    open_lines = [x for x in lines if x.status not in SETTLED]
    due = [x for x in open_lines if x.due_date <= business_date]
    not_due = [x for x in open_lines if x.due_date > business_date]
    arrears = sum(x.interest - x.paid_interest for x in due)
    accrued_due = sum(max(x.accrued_interest - x.paid_interest, 0) for x in due)
    accrued_ahead = sum(x.accrued_interest for x in not_due)
    return Terms(
        outstanding_principal=sum(x.principal - x.paid_principal for x in open_lines), arrears_interest=arrears,
        accrued_interest=accrued_ahead, to_receivable=min(accrued_due, arrears) + accrued_ahead,
        to_income=arrears - min(accrued_due, arrears),
        waived_penalties=sum(x.penalty_due - x.penalty_paid + x.charges_due - x.charges_paid for x in due),
        last_number=last_number,
    )  # fmt: skip


def refusal(status: LoanStatus, months: int, rate_bps: int, product: LoanProductTerms, t: Terms) -> tuple[LoanError, str] | None:
    if status not in RESTRUCTURABLE:
        return LoanError.invalid_transition, f"only an active or overdue loan is restructured; it is {status}"
    if t.principal <= 0:
        return LoanError.invalid_transition, "nothing is outstanding"
    if rate_bps > product.max_rate_bps:
        return LoanError.invalid_restructure, f"the rate is above the product's {product.max_rate_bps} bps"
    if months > product.max_months or t.last_number + months > MAX_MONTHS:
        most = min(product.max_months, MAX_MONTHS - t.last_number)
        return LoanError.invalid_restructure, f"at most {most} months: the product's term, and {MAX_MONTHS} instalments in a loan's life"
    return None


def transfers(loan_id: UUID, restructure_id: UUID, currency: str, loan_number: str, t: Terms) -> list[ledger.NewTransfer]:
    """One linked chain: the capitalised interest onto the loan's account (its principal grows),
    off the receivable (or income, for interest never accrued)."""
    bank = functools.partial(ledger.bank_account_id, currency=currency)
    words = {"reference": loan_number, "narration": f"Loan {loan_number}: restructured, interest capitalised"}
    legs = (("interest", loan_id, bank(accrual.RECEIVABLE), t.to_receivable, "loan_capitalisation"),
            ("interest:unaccrued", loan_id, bank(accrual.INCOME), t.to_income, "loan_capitalisation"))  # fmt: skip
    return repayment.linked_chain(restructure_id, "restructure:", currency, words, legs)
