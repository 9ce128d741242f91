"""A loan's disbursement (banking-rules §5 "Disbursement"), pure: its ledger account and the one
linked chain that moves the money.

The loan is its own ledger account: code `loan_principal` (an asset of the bank, debit-normal,
`credits_must_not_exceed_debits` so no repayment can pass what is owed), owned by the customer,
titled with the loan's number. One tranche: the principal leaves it in one linked chain, the net
to the customer's linked account and the processing fee to fee income, so its balance is the
whole principal and the customer receives principal − fee (§9: 100,000.00 at 1% → 99,000.00).
Transfer ids derive from the loan id: a repeated request is answered `exists`, never paid twice.
A payout onwards (a dealer, a builder) is a payment order from the linked account, placed with the
payment worker under its rules, its id derived from the loan's as well.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from contracts import ledger, payment
from contracts.loan import LoanApplicationView, LoanError, LoanPayout, LoanView
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


# --- a payout onwards, by a payment order ------------------------------------------------------------


def payout_refusal(payout: LoanPayout, net_disbursed: int) -> str | None:
    if payout.payee.account_id is not None or payout.payee.vpa is not None:
        return "a payout goes to an account at another bank (name, account number, IFSC); the linked account already holds the money"
    if payout.amount > net_disbursed:
        return f"the payout is more than the {net_disbursed} disbursed net"
    return None


def payout_id(loan_id: UUID) -> UUID:
    """The payment order's id: one per loan, so a repeated ask places it once."""
    return uuid5(loan_id, "payout")


def payout_order(loan: LoanView, payout: LoanPayout, actor: str) -> payment.InitiatePayment:
    """Placed at the branch by the officer who disbursed, from the linked account."""
    return payment.InitiatePayment(payment_id=payout_id(loan.loan_id), kind=payment.PaymentKind(payout.rail),
                                   channel=payment.Channel.branch, payer_account_id=loan.linked_account_id, payee=payout.payee,
                                   amount=payout.amount, currency=loan.currency, description=f"Loan {loan.number} disbursement",
                                   actor=actor)  # fmt: skip
