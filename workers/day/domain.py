"""The business day's decisions, pure (banking-rules §0): which dates are business days, whether
a close may start, and when it is complete.

Business days are Monday to Friday minus the holidays. A close of business runs for the open
date only, its steps one after another; it completes when every step of `COB_STEPS` has reported
done and the ledger's trial balance balances in every currency; the next business date is the
next business day after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from contracts.day import DayError, DayStatus, StepStatus, TrialBalanceLine

WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())
MAX_DAYS_AHEAD = 366  # a calendar with more holidays in a row than this is refused, not looped on


def is_business_day(date: dt.date, holidays: Collection[dt.date]) -> bool:
    return date.weekday() not in WEEKEND and date not in holidays


def next_business_date(after: dt.date, holidays: Collection[dt.date]) -> dt.date:
    """The first business day after `after`."""
    date = after
    for _ in range(MAX_DAYS_AHEAD):
        date += dt.timedelta(days=1)
        if is_business_day(date, holidays):
            return date
    raise ValueError(f"no business day within {MAX_DAYS_AHEAD} days after {after}")


def first_business_date(on_or_after: dt.date, holidays: Collection[dt.date]) -> dt.date:
    return on_or_after if is_business_day(on_or_after, holidays) else next_business_date(on_or_after, holidays)


@dataclass(frozen=True, slots=True)
class Day:
    business_date: dt.date
    status: DayStatus


def close_refusal(day: Day, asked: dt.date) -> DayError | None:
    """Only the open date closes: a caller with an older view is told, not obeyed."""
    return None if asked == day.business_date else DayError.wrong_business_date


def step_to_ask(steps: Mapping[str, StepStatus], order: Sequence[str]) -> str | None:
    """Steps run one after another: the first in `order` not done (a new close asks the first; a
    repeat the failed or unreported one), or None when every step is done."""
    return next((step for step in order if steps.get(step, StepStatus.waiting) != StepStatus.done), None)


def calendar_refusal(day: Day) -> DayError | None:
    """A close decided at its start which calendar days it covers: the calendar waits for it."""
    return DayError.day_closing if day.status == DayStatus.closing else None


def holiday_refusal(date: dt.date, business_date: dt.date, *, adding: bool) -> DayError | None:
    """The past and the open date are fixed; a weekend is no business day already."""
    if date <= business_date:
        return DayError.invalid_holiday
    if adding and date.weekday() in WEEKEND:
        return DayError.invalid_holiday
    return None


def unbalanced(lines: Iterable[TrialBalanceLine]) -> list[str]:
    """The currencies whose posted debits and credits differ."""
    return [line.currency for line in lines if not line.balanced]
