"""Savings interest (banking-rules §2 and §0): accrued each calendar day on the end-of-day posted
balance, kept exact, rounded once (half-up, to the minor unit) when posted at the end of each
posting period and on closure.

Exact without fractions: one day's interest is `balance × rate_bps / (10_000 × 365)` minor units
(actual/365, §0 decision: a leap year's 366 days each earn 1/365 of the rate). An accrual keeps
the numerator, Σ balance × rate_bps over its days, an integer in "balance-basis-point-days"; the
period's interest is that sum divided once and rounded once. No day's share is ever rounded, so
1,000.00 at 4% for 30 days posts 3.29, not 30 × 0.11 = 3.30 (§9).

A close of business covers the calendar days from its business date up to the next business date:
Friday's close accrues Saturday and Sunday on Friday's balance, which is the balance they had.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from uuid import NAMESPACE_URL, UUID, uuid5

from contracts.account import InterestPosting

BPS_PER_UNIT = 10_000  # a rate of 1 (100%) in basis points
DAY_COUNT_BASIS = 365  # actual/365
DENOMINATOR = BPS_PER_UNIT * DAY_COUNT_BASIS  # balance-bps-days per minor unit of interest
ONE_DAY = dt.timedelta(days=1)


def period_end(day: dt.date, posting: InterestPosting) -> dt.date:
    """The last day of the calendar month or quarter `day` falls in: interest posts for it then."""
    month = day.month if posting == InterestPosting.monthly else (day.month - 1) // 3 * 3 + 3
    return dt.date(day.year, month, calendar.monthrange(day.year, month)[1])


@dataclass(frozen=True, slots=True)
class Accrual:
    """Days `first`..`last` (inclusive) of the period ending `period_end`, at one balance and rate."""

    period_end: dt.date
    first: dt.date
    last: dt.date
    balance_bps_days: int


def accrue(balance: int, rate_bps: int, first: dt.date, until: dt.date, posting: InterestPosting) -> list[Accrual]:
    """The accrual of calendar days `first` up to `until` (exclusive) on a day-end `balance` (minor
    units), split where a posting period ends. None for a balance or rate that earns nothing."""
    assert first < until, f"a close covers at least its own date: {first} .. {until}"
    assert rate_bps >= 0
    if balance <= 0 or rate_bps == 0:  # an overdrawn or empty account earns no credit interest
        return []
    accruals = []
    day = first
    while day < until:
        end = period_end(day, posting)
        last = min(end, until - ONE_DAY)
        days = (last - day).days + 1
        accruals.append(Accrual(end, day, last, balance * rate_bps * days))
        day = last + ONE_DAY
    return accruals


def interest_minor(balance_bps_days: int) -> int:
    """The accrued interest in minor units, rounded once, half-up (banking-rules §0)."""
    assert balance_bps_days >= 0
    whole, rest = divmod(balance_bps_days, DENOMINATOR)
    return whole + (1 if 2 * rest >= DENOMINATOR else 0)


def exact_minor(balance_bps_days: int) -> Decimal:
    """The accrued interest before rounding, in minor units (for views; 12 decimal places)."""
    return (Decimal(balance_bps_days) / DENOMINATOR).quantize(Decimal("1e-12"))


def due(period_end_: dt.date, until: dt.date) -> bool:
    """A period posts at the close that covers its last day (the close's days end before `until`)."""
    return period_end_ < until


def reference(period_end_: dt.date) -> str:
    """The interest credit's reference on a statement: the period it pays (e.g. INT-20260331)."""
    return f"INT-{period_end_:%Y%m%d}"


def interest_transfer_id(account_id: UUID, period_end_: dt.date, business_date: dt.date) -> UUID:
    """One interest transfer per account, period and close that asks: the same close asking again
    is answered `exists`; a later close retrying a refused credit needs a new id (the ledger keeps a
    failed id failed)."""
    return uuid5(NAMESPACE_URL, f"cbs.account.interest.{account_id}.{period_end_.isoformat()}.{business_date.isoformat()}")


def closure_interest_transfer_id(account_id: UUID, period_end_: dt.date) -> UUID:
    """The interest a closing posts for a period: once per account and period (a refused close
    writes nothing in the ledger, so the retry may use the same id)."""
    return uuid5(NAMESPACE_URL, f"cbs.account.interest.{account_id}.{period_end_.isoformat()}.closure")
