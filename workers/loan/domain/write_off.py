"""Write-off and recoveries (banking-rules §5: defaulted → written_off, terminal, recoveries still
post), pure.

A write-off gives up a defaulted loan: its outstanding principal becomes a loan loss (debit
loan_write_off, an expense; credit the loan's own account, which then owes nothing and closes),
and the interest it accrued and never received, held in suspense, is written back (it was never
income). What the customer owed stays a claim: principal, the interest of the instalments due,
and their penalties. A recovery pays the claim down, any amount up to what is left of it, from the
linked account to recoveries income (loan_recovery_income): the loss stays booked as it was.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from uuid import UUID, uuid5

from contracts import ledger
from contracts.loan import LoanError
from workers.loan.domain import accrual, repayment
from workers.loan.domain.foreclosure import SETTLED, Line


@dataclass(frozen=True, slots=True)
class Claim:
    principal: int  # not yet repaid, due or not
    interest: int  # of the instalments due, unpaid (future interest is never owed)
    penalties: int
    receivable: int  # accrued and not received
    suspended: int  # of it, held in suspense
    charges: int = 0  # late fees

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.penalties + self.charges


def claim(lines: list[Line], business_date: dt.date) -> Claim:
    open_lines = [x for x in lines if x.status not in SETTLED]
    due = [x for x in open_lines if x.due_date <= business_date]
    return Claim(
        principal=sum(x.principal - x.paid_principal for x in open_lines),
        interest=sum(x.interest - x.paid_interest for x in due),
        penalties=sum(x.penalty_due - x.penalty_paid for x in due),
        receivable=sum(max(x.accrued_interest - x.paid_interest, 0) for x in open_lines),
        suspended=sum(x.suspended_interest for x in open_lines),
        charges=sum(x.charges_due - x.charges_paid for x in due),
    )


def transfers(loan_id: UUID, currency: str, loan_number: str, owed: Claim) -> list[ledger.NewTransfer]:
    """One linked chain: the principal a loss, the receivable written back (suspense first). Its
    ids derive from the loan: a loan is written off once."""
    back = accrual.write_back(owed.receivable, owed.suspended)
    bank = functools.partial(ledger.bank_account_id, currency=currency)
    words = {"reference": loan_number, "narration": f"Loan {loan_number}: written off"}
    parts = (
        ("principal", bank("loan_write_off"), loan_id, owed.principal, "loan_write_off"),
        ("interest:back:suspense", bank(accrual.SUSPENSE), bank(accrual.RECEIVABLE), back.from_suspense, "loan_write_back"),
        ("interest:back:income", bank(accrual.INCOME), bank(accrual.RECEIVABLE), back.from_income, "loan_write_back"),
    )  # fmt: skip
    return repayment.linked_chain(loan_id, "write_off:", currency, words, parts)


def recovery_refusal(amount: int, claim_total: int, recovered: int) -> tuple[LoanError, str, dict[str, int]] | None:
    left = claim_total - recovered
    if left <= 0:
        return LoanError.nothing_due, "the written-off claim is recovered in full", {"claim_left": 0}
    if amount > left:
        return LoanError.overpayment_refused, f"what is left of the written-off claim is {left}", {"claim_left": left}
    return None


def recovery_transfer(payment_id: UUID, linked_account_id: UUID, currency: str, loan_number: str, amount: int) -> ledger.NewTransfer:
    """Whole or not at all (not balancing: the customer chose the amount)."""
    return ledger.NewTransfer(id=uuid5(payment_id, "recovery"), debit_account_id=linked_account_id,
                              credit_account_id=ledger.bank_account_id("loan_recovery_income", currency), amount=amount,
                              currency=currency, code="loan_recovery", reference=loan_number,
                              narration=f"Loan {loan_number}: recovery after write-off")  # fmt: skip
