"""Repayment of instalments at close of business (banking-rules §5 "Repayment"), pure.

On its due date (at the first close on or after it: a Sunday's is taken at Monday's close, never
early) each instalment is debited from the loan's linked account as two balancing debits: its
interest to interest income first, then its principal to the loan's own account (§5's allocation
order, interest before principal). Balancing: the ledger takes what the account holds above its
floor, up to each part, so a shortfall is never refused: it leaves the instalment partially paid.
Each instalment is asked once (its transfer ids derive from the loan and its number, so a repeated
round is answered `exists`); what a partly paid one still owes waits for the overdue handling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from uuid import UUID, uuid5

from contracts import ledger
from contracts.loan import Bucket, InstalmentStatus, LoanError, LoanStatus
from workers.loan.domain.accrual import INCOME, RECEIVABLE, SUSPENSE, Receipt
from workers.loan.domain.schedule import penalty_addition_minor


@dataclass(frozen=True, slots=True)
class Due:
    """An instalment due, as the store hands it over."""

    loan_id: UUID
    number: int
    principal: int
    interest: int
    linked_account_id: UUID
    currency: str
    loan_number: str
    receivable: int = 0  # of its interest, what was accrued (all of it, on its due date; none for a loan from before accrual)
    customer_id: UUID | None = None


def interest_transfer_id(loan_id: UUID, number: int) -> UUID:
    return uuid5(loan_id, f"instalment:{number}:interest")


def unaccrued_interest_transfer_id(loan_id: UUID, number: int) -> UUID:
    return uuid5(loan_id, f"instalment:{number}:interest:unaccrued")


def principal_transfer_id(loan_id: UUID, number: int) -> UUID:
    return uuid5(loan_id, f"instalment:{number}:principal")


def transfers(due: Due) -> list[ledger.NewTransfer]:
    """Interest, then principal, each a balancing debit of the linked account; a part of 0.00
    asks nothing. The interest clears its receivable (accrued by the close of its due date);
    interest never accrued is income at once (workers/loan/domain/accrual.py)."""
    words = {"reference": due.loan_number, "narration": f"Loan {due.loan_number}: instalment {due.number}"}
    accrued = min(due.interest, due.receivable)
    parts = (
        (interest_transfer_id(due.loan_id, due.number), ledger.bank_account_id(RECEIVABLE, due.currency), accrued, "loan_interest"),
        (unaccrued_interest_transfer_id(due.loan_id, due.number), ledger.bank_account_id(INCOME, due.currency),
         due.interest - accrued, "loan_interest"),
        (principal_transfer_id(due.loan_id, due.number), due.loan_id, due.principal, "loan_repayment"),
    )  # fmt: skip
    return [ledger.NewTransfer(id=transfer_id, debit_account_id=due.linked_account_id, credit_account_id=to, amount=amount,
                               currency=due.currency, code=code, flags=ledger.TransferFlags(balancing_debit=True), **words)
            for transfer_id, to, amount, code in parts if amount > 0]  # fmt: skip


def part_ids(due: Due) -> list[UUID]:
    """The ids of the transfers `transfers(due)` asks (its parts of more than 0.00), without making them."""
    accrued = min(due.interest, due.receivable)
    parts = ((interest_transfer_id, accrued), (unaccrued_interest_transfer_id, due.interest - accrued), (principal_transfer_id, due.principal))
    return [make(due.loan_id, due.number) for make, amount in parts if amount > 0]


def interest_taken(due: Due, moved: dict[UUID, int]) -> int:
    """What the interest debits took, by transfer id."""
    return moved.get(interest_transfer_id(due.loan_id, due.number), 0) + moved.get(unaccrued_interest_transfer_id(due.loan_id, due.number), 0)


def settled(due: Due, paid_interest: int, paid_principal: int) -> InstalmentStatus:
    assert 0 <= paid_interest <= due.interest and 0 <= paid_principal <= due.principal
    whole = (paid_interest, paid_principal) == (due.interest, due.principal)
    return InstalmentStatus.paid if whole else InstalmentStatus.partially_paid


# --- a manual payment of what is due ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owed:
    """What an instalment due still owes."""

    number: int
    interest: int
    principal: int
    penalty: int = 0
    charges: int = 0  # the product's late fee, charged once past the grace days

    @property
    def total(self) -> int:
        return self.penalty + self.charges + self.interest + self.principal


@dataclass(frozen=True, slots=True)
class Share:
    """What a payment gives one instalment."""

    number: int
    interest: int
    principal: int
    penalty: int = 0
    charges: int = 0


def penalty_owed(penalty_due: int, penalty_paid: int, days_late: int, grace_days: int) -> int:
    """§5: none when paid within the grace days (the accrued penalty is waived); later, all of it."""
    assert penalty_paid <= penalty_due and days_late >= 0
    return 0 if days_late <= grace_days else penalty_due - penalty_paid


def allocate(owed: list[Owed], amount: int) -> list[Share] | tuple[LoanError, str, dict[str, int]]:
    """§5: oldest first, penalty before charges before interest before principal; at least what
    the oldest still owes (`amount_below_due`), at most everything due (`overpayment_refused`:
    paying ahead is a prepayment)."""
    assert amount > 0
    if not owed:
        return LoanError.nothing_due, "no instalment is due: paying ahead is a prepayment", {}
    oldest, total = owed[0].total, sum(o.total for o in owed)
    if amount < oldest:
        return LoanError.amount_below_due, f"the oldest instalment due still owes {oldest}", {"oldest_due": oldest}
    if amount > total:
        return LoanError.overpayment_refused, f"everything due comes to {total}", {"total_due": total}
    shares, left = [], amount
    for o in owed:
        parts = []
        for part in (o.penalty, o.charges, o.interest, o.principal):  # §5's order
            parts.append(min(part, left))
            left -= parts[-1]
        penalty, charges, interest, principal = parts
        if any(parts):
            shares.append(Share(o.number, interest, principal, penalty, charges))
    assert left == 0
    return shares


def payment_transfers(loan_id: UUID, payment_id: UUID, linked_account_id: UUID, currency: str, loan_number: str,
                      shares: list[Share], interest: Receipt) -> list[ledger.NewTransfer]:  # fmt: skip
    """One linked chain, whole or not at all (no balancing: the customer chose the amount). The
    penalty is booked now, when paid (§5), to penalty income, a late fee to fee income; the
    interest as `interest` says
    (workers/loan/domain/accrual.py: the receivable cleared, suspense released)."""
    penalty, charges, principal = (sum(getattr(s, f) for s in shares) for f in ("penalty", "charges", "principal"))
    assert interest.to_receivable + interest.to_income == sum(s.interest for s in shares)
    words = {"reference": loan_number, "narration": f"Loan {loan_number}: payment"}
    bank = functools.partial(ledger.bank_account_id, currency=currency)
    parts = (("penalty", linked_account_id, bank("penalty_income"), penalty, "penalty"),
             ("charges", linked_account_id, bank("fee_income"), charges, "fee"),
             ("interest", linked_account_id, bank(RECEIVABLE), interest.to_receivable, "loan_interest"),
             ("interest:unaccrued", linked_account_id, bank(INCOME), interest.to_income, "loan_interest"),
             ("principal", linked_account_id, loan_id, principal, "loan_repayment"),
             ("interest:released", bank(SUSPENSE), bank(INCOME), interest.released, "loan_release"))  # fmt: skip
    return linked_chain(payment_id, "", currency, words, parts)


Leg = tuple[str, UUID, UUID, int, str]  # (name, debit account, credit account, amount, code)


def linked_chain(namespace: UUID, prefix: str, currency: str, words: dict[str, str], legs: tuple[Leg, ...]) -> list[ledger.NewTransfer]:
    """The legs of more than 0.00 as one linked chain (the ledger takes all of them or none), each
    transfer's id uuid5(namespace, prefix + its name): asked again, the same ids."""
    chain = [ledger.NewTransfer(id=uuid5(namespace, prefix + name), debit_account_id=debit, credit_account_id=credit, amount=amount,
                                currency=currency, code=code, **words)
             for name, debit, credit, amount, code in legs if amount > 0]  # fmt: skip
    return [t.model_copy(update={"flags": ledger.TransferFlags(linked=i < len(chain) - 1)}) for i, t in enumerate(chain)]


# --- delinquency ---------------------------------------------------------------------------------------

NPA_AFTER_DAYS = 90  # §5: defaulted from day 91
_BUCKETS = ((0, Bucket.current), (30, Bucket.dpd_1_30), (60, Bucket.dpd_31_60), (90, Bucket.dpd_61_90))


def days_past_due(oldest_owing_due: date | None, business_date: date) -> int:
    """Days since the oldest instalment still owing fell due (0: none owing past its date)."""
    if oldest_owing_due is None or oldest_owing_due >= business_date:
        return 0
    return (business_date - oldest_owing_due).days


def bucket(dpd: int) -> Bucket:
    assert dpd >= 0
    return next((b for most, b in _BUCKETS if dpd <= most), Bucket.npa)


def delinquent_status(current: LoanStatus, dpd: int) -> LoanStatus:
    """active ⇄ overdue → defaulted (from day 91), which stays until nothing is past due, then
    active again (§5: once every arrear is paid)."""
    if dpd == 0:
        return LoanStatus.active
    if current == LoanStatus.defaulted or dpd > NPA_AFTER_DAYS:
        return LoanStatus.defaulted
    return LoanStatus.overdue


def late_fee_due(days_late: int, grace_days: int, charged: bool, late_fee: int) -> int:
    """The product's late fee, once, on an instalment still owing after its grace days."""
    return late_fee if days_late > grace_days and not charged else 0


def penalty_additions(owing: int, rate_bps: int, due_date: date, accrued_through: date | None, through: date) -> int:
    """What the days after `accrued_through` (or the due date) up to `through` add to an
    instalment's penalty, on what it owes now: each day k after the due date adds round(total to
    k) − round(total to k − 1), so the additions sum to the rounded total (§5's decision)."""
    first = (accrued_through or due_date) - due_date
    last = through - due_date
    if owing <= 0 or rate_bps == 0 or last.days <= first.days:
        return 0
    return sum(penalty_addition_minor(owing, rate_bps, k) for k in range(first.days + 1, last.days + 1))
