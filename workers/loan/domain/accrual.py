"""Interest accrual and its booking (banking-rules §5 "Accrual"), pure.

Accrual. An instalment's scheduled interest is earned over its period, the days after the
previous due date (after the disbursement, for the first) up to and including its own due date:
each day accrues floor(interest / days); the last day takes the remainder, so the period accrues
its interest exactly. The close of business books each day's accrual of every running loan:
loan interest receivable (asset) against interest income, or against interest in suspense (a
liability) while the loan is defaulted (an NPA's interest is not income until it is received).

Receipt. Interest received clears the receivable accrued for it; interest received that was never
accrued (a foreclosure's exact days beyond the even accrual, or a loan from before accrual) is
income at once; and suspense it clears becomes income (recognised on receipt).

Write-back. Accrued interest that will never be received (what a foreclosure quote does not ask,
what a write-off gives up) is reversed from where it was booked: suspense first, then income.

Turns. A loan turning defaulted moves its accrued, unreceived interest from income to suspense
(income reversal); a defaulted loan turning active again (every arrear paid) moves what is left in
suspense back to income.

Every amount is an integer in minor units; nothing here rounds (floor division is exact on integers).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

RECEIVABLE = "loan_interest_receivable"
INCOME = "interest_income"
SUSPENSE = "interest_suspense"


def accrued_by(interest_minor: int, period_days: int, days_elapsed: int) -> int:
    """What a period of `period_days` has accrued after `days_elapsed` of its days: each day
    floor(interest / days), the last day the remainder."""
    assert interest_minor >= 0 and period_days >= 1
    days = min(max(days_elapsed, 0), period_days)
    return interest_minor if days == period_days else interest_minor // period_days * days


@dataclass(frozen=True, slots=True)
class Period:
    """An instalment's accrual period: (accrues_from, due_date], and what it has accrued so far."""

    number: int
    accrues_from: dt.date
    due_date: dt.date
    interest: int
    accrued: int


def accrual(period: Period, through: dt.date) -> int:
    """What the days up to `through` add to the period's accrual (0 when it is accrued that far)."""
    days = (period.due_date - period.accrues_from).days
    target = accrued_by(period.interest, days, (through - period.accrues_from).days)
    return max(target - period.accrued, 0)


@dataclass(frozen=True, slots=True)
class Receipt:
    """How interest received from the customer is booked."""

    to_receivable: int  # clears what was accrued for it
    to_income: int  # never accrued: income at once
    released: int  # suspense it clears, recognised as income (interest_suspense → interest_income)


def receipt(received: int, receivable: int, suspended: int) -> Receipt:
    """`receivable`: accrued and not yet received; `suspended`: the part of it in suspense."""
    assert received >= 0 and 0 <= suspended <= receivable
    cleared = min(received, receivable)
    return Receipt(to_receivable=cleared, to_income=received - cleared, released=min(cleared, suspended))


@dataclass(frozen=True, slots=True)
class WriteBack:
    """Accrued interest that will never be received, reversed (each from there to the receivable)."""

    from_suspense: int
    from_income: int


def write_back(receivable: int, suspended: int, received: int = 0) -> WriteBack:
    """What is left of the receivable after `received` cleared it (the suspended part first)."""
    r = receipt(received, receivable, suspended)
    left, left_suspended = receivable - r.to_receivable, suspended - r.released
    return WriteBack(from_suspense=left_suspended, from_income=left - left_suspended)
