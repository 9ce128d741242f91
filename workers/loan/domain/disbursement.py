"""A loan's disbursement (banking-rules §5 "Disbursement"), pure: its ledger account and the one
linked chain that moves the money.

The loan is its own ledger account: code `loan_principal` (an asset of the bank, debit-normal,
`credits_must_not_exceed_debits` so no repayment can pass what is owed), owned by the customer,
titled with the loan's number. One tranche: the principal leaves it in one linked chain, the net
to the customer's linked account and the processing fee to fee income, so its balance is the
whole principal and the customer receives principal − fee (§9: 100,000.00 at 1% → 99,000.00).
Transfer ids derive from the loan id: a repeated request is answered `exists`, never paid twice.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from contracts import ledger
from contracts.loan import LoanApplicationView, LoanError
from workers.loan.domain.applications import Refusal

LOAN_CODE = "loan_principal"


def disbursement_refusal(application: LoanApplicationView) -> Refusal | None:
    if application.status != "approved":
        return Refusal(LoanError.invalid_transition, f"only an approved application is disbursed; this one is {application.status}")
    if application.loan_id is not None:
        return Refusal(LoanError.invalid_transition, f"loan {application.loan_id} is being disbursed from it")
    return None


def loan_number(sequence: int) -> str:
    return f"LN{sequence:010d}"


def ledger_account(loan_id: UUID, customer_id: UUID, currency: str, number: str) -> ledger.NewAccount:
    return ledger.NewAccount(id=loan_id, currency=currency, code=LOAN_CODE, owner_id=customer_id, title=number,
                             flags=ledger.AccountFlags(credits_must_not_exceed_debits=True, history=True))  # fmt: skip


def transfers(loan_id: UUID, linked_account_id: UUID, currency: str, net: int, fee: int, number: str) -> list[ledger.NewTransfer]:
    """The chain: the net to the customer, the fee (when there is one) to fee income; both or neither."""
    chain = [ledger.NewTransfer(id=uuid5(loan_id, "disbursement"), debit_account_id=loan_id,
                                credit_account_id=linked_account_id, amount=net, currency=currency,
                                code="loan_disbursement", reference=number, narration=f"Loan {number} disbursed")]  # fmt: skip
    if fee:
        chain.append(ledger.NewTransfer(id=uuid5(loan_id, "processing_fee"), debit_account_id=loan_id,
                                        credit_account_id=ledger.bank_account_id("fee_income", currency), amount=fee,
                                        currency=currency, code="fee", reference=number,
                                        narration=f"Processing fee: loan {number}"))  # fmt: skip
    return [t.model_copy(update={"flags": ledger.TransferFlags(linked=i < len(chain) - 1)}) for i, t in enumerate(chain)]
