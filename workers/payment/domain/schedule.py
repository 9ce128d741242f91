"""Standing-order schedules (banking-rules §4): nominal dates, due business dates, catch-up,
the retry and the suspension after failures, deterministic occurrence payment ids, validation.

Pure: no I/O, no clock. Dates are bank dates (`BankCalendar`, banking-rules §0); `today` comes in.

Terms:
- A *nominal* date is where the schedule falls: weekly start + 7k days; monthly the start's
  day-of-month, clamped to each month's last day (Jan 31 → Feb 28/29 → Mar 31: clamped per month
  from the start's day, never drifting); quarterly likewise every 3 months.
- Its *due* date is the first business day on or after it. With a long run of holidays two
  nominal dates can share a due date; each is still its own occurrence, placed once.
- An *occurrence* is one nominal date; attempt 1 is placed on its due date, attempt 2 is the retry.

Decisions the rules leave open ("refused for funds, it retries once the next business day;
3 consecutive failures suspend it"):
- A failed first attempt schedules exactly one retry, on the first business day after the day it
  was tried (the due date, or later when the scheduler catches up after downtime). A failed retry
  is not retried again: the occurrence is skipped and the schedule moves on.
- Every failed attempt counts as one consecutive failure, the retry included: an occurrence whose
  attempt and retry both fail counts 2, and the 3rd failed attempt in a row suspends the order
  (no retry is scheduled then). Any successful attempt resets the count to 0.
- Suspension wins over the end: an order suspended by its last occurrence reports `suspended`,
  not `ended`; staff see it.
- The worker stores the next *nominal* date (not the due date): the due date is derived from it,
  and a nominal date shifted past a weekend must not be skipped on catch-up.
- Occurrences are processed one by one, in nominal order, each result fed to `after_result` before
  the next one is placed; a pending retry (its nominal date is earlier) goes before new occurrences.
"""

from __future__ import annotations

import calendar as _cal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

from contracts.payment import EXTERNAL_KINDS, Frequency, PaymentError, PaymentKind, StandingOrderStatus
from workers.payment.domain.orders import BankCalendar, Refusal, check_rail_amount

SUSPEND_AFTER = 3  # consecutive failed attempts
FIRST, RETRY = 1, 2  # attempt numbers
STANDING_ORDER_KINDS = frozenset({PaymentKind.internal}) | EXTERNAL_KINDS
_MONTHS = {Frequency.monthly: 1, Frequency.quarterly: 3}


# --- nominal and due dates -------------------------------------------------------------------


def _nth(start: date, frequency: Frequency, k: int) -> date | None:
    """The k-th nominal date (k = 0 is `start`); None past `date.max`."""
    assert k >= 0
    if frequency == Frequency.once:
        return start if k == 0 else None
    try:
        if frequency == Frequency.weekly:
            return start + timedelta(days=7 * k)
        y, m = divmod(start.month - 1 + k * _MONTHS[frequency], 12)
        year, month = start.year + y, m + 1
        return date(year, month, min(start.day, _cal.monthrange(year, month)[1]))
    except (OverflowError, ValueError):  # beyond year 9999
        return None


def _first_index_on_or_after(start: date, frequency: Frequency, d: date) -> int:
    """The smallest k with `_nth(start, frequency, k) >= d`."""
    if d <= start:
        return 0
    if frequency == Frequency.once:
        return 1  # past its only date
    if frequency == Frequency.weekly:
        return -(-(d - start).days // 7)
    months = (d.year - start.year) * 12 + d.month - start.month
    k = months // _MONTHS[frequency]  # lands in d's month or before it
    nth = _nth(start, frequency, k)
    while nth is not None and nth < d:  # at most twice (quarterly)
        k += 1
        nth = _nth(start, frequency, k)
    return k


def nominal_dates(start: date, frequency: Frequency) -> Iterator[date]:
    """The schedule's nominal dates from `start` (included), in order, up to `date.max`.

    Long: take what you need (`itertools.islice`, or stop at the end date).
    """
    k = 0
    while (d := _nth(start, frequency, k)) is not None:
        yield d
        k += 1


def next_nominal_after(start: date, frequency: Frequency, end_date: date | None, nominal: date) -> date | None:
    """The first nominal date strictly after `nominal`, or None when it would pass `end_date`."""
    if nominal >= date.max:
        return None
    nxt = _nth(start, frequency, _first_index_on_or_after(start, frequency, nominal + timedelta(days=1)))
    if nxt is None or (end_date is not None and nxt > end_date):
        return None
    return nxt


def due_date(nominal: date, calendar: BankCalendar) -> date:
    """The business day on or after `nominal` (weekend or holiday → the next business day)."""
    return nominal if calendar.is_business_day(nominal) else calendar.next_business_day(nominal)


# --- occurrences -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One try at one nominal date: attempt 1 on its due date, attempt 2 the retry."""

    nominal: date
    due: date
    attempt: int

    def __post_init__(self) -> None:
        assert self.attempt in (FIRST, RETRY), "attempt is 1 (first try) or 2 (the retry)"
        assert self.due >= self.nominal, "an occurrence is never due before its nominal date"

    @classmethod
    def first(cls, nominal: date, calendar: BankCalendar) -> Occurrence:
        return cls(nominal, due_date(nominal, calendar), FIRST)


def due_occurrences(
    *,
    start: date,
    frequency: Frequency,
    end_date: date | None,
    next_nominal: date,
    today: date,
    calendar: BankCalendar,
    limit: int,
) -> list[date]:
    """Nominal dates from `next_nominal` (included) whose due date is ≤ `today`, in order, each once.

    After downtime this is every missed occurrence (catch-up). It stops at the first nominal date
    past `end_date` (that occurrence never happens) and after `limit` dates (the caller comes back
    for the rest). `next_nominal` off the schedule means "from the first nominal date on or after it".
    """
    assert limit > 0, "limit must be positive"
    out: list[date] = []
    k = _first_index_on_or_after(start, frequency, next_nominal)
    while len(out) < limit:
        nominal = _nth(start, frequency, k)
        if nominal is None or (end_date is not None and nominal > end_date):
            break
        if due_date(nominal, calendar) > today:  # due dates never decrease: nothing later is due
            break
        out.append(nominal)
        k += 1
    return out


def occurrence_payment_id(standing_order_id: UUID, nominal: date, attempt: int) -> UUID:
    """The occurrence's payment id (uuid5): every scheduler replica derives the same one, so the
    payment worker's idempotency places each attempt once."""
    assert attempt in (FIRST, RETRY), "attempt is 1 (first try) or 2 (the retry)"
    return uuid.uuid5(standing_order_id, f"standing_order.occurrence:{nominal.isoformat()}:{attempt}")


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a standing order's dates depend on."""

    start: date
    frequency: Frequency
    end_date: date | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The standing order's state after one attempt's result."""

    failures: int  # consecutive failed attempts, this one included
    next_nominal: date | None  # first nominal date after the occurrence; None when none is left ≤ end_date
    retry: Occurrence | None  # the one retry to place on `retry.due`, if any
    suspended: bool  # this failure was the 3rd in a row
    ended: bool  # nothing left to place: no next nominal date, no retry (never when suspended)

    @property
    def status(self) -> StandingOrderStatus:
        if self.suspended:
            return StandingOrderStatus.suspended
        return StandingOrderStatus.ended if self.ended else StandingOrderStatus.active


def after_result(
    schedule: Schedule,
    occurrence: Occurrence,
    *,
    failures: int,
    succeeded: bool,
    today: date,
    calendar: BankCalendar,
) -> Decision:
    """The transition after `occurrence` was tried on `today` with `failures` consecutive failures before.

    Success resets the count. A failure adds one; a failed first attempt gets one retry on the first
    business day after `today`, unless this failure suspends the order (the 3rd in a row).
    """
    assert 0 <= failures < SUSPEND_AFTER, "a suspended order places nothing"
    assert today >= occurrence.due, "an attempt is tried on or after its due date"
    next_nominal = next_nominal_after(schedule.start, schedule.frequency, schedule.end_date, occurrence.nominal)
    failures = 0 if succeeded else failures + 1
    suspended = failures >= SUSPEND_AFTER
    retry = None
    if not succeeded and not suspended and occurrence.attempt == FIRST:
        retry = Occurrence(occurrence.nominal, calendar.next_business_day(today), RETRY)
    ended = not suspended and next_nominal is None and retry is None
    return Decision(failures, next_nominal, retry, suspended, ended)


# --- validation ------------------------------------------------------------------------------


def validate_standing_order(
    start_date: date,
    end_date: date | None,
    today: date,
    frequency: Frequency,
    amount: int,
    kind: PaymentKind,
) -> Refusal | None:
    """A new standing order: start on or after today (bank date), end on or after start, a known
    frequency, internal or an external rail, and an amount the rail takes per payment."""
    assert amount > 0, "the contract keeps amounts positive"
    if frequency not in _MONTHS and frequency not in (Frequency.weekly, Frequency.once):
        return Refusal(PaymentError.invalid_schedule, f"unknown frequency {frequency!r}", {"field": "frequency"})
    if kind not in STANDING_ORDER_KINDS:
        return Refusal(
            PaymentError.invalid_schedule, f"a standing order pays internal or on a rail, not {kind}", {"field": "kind"}
        )
    if start_date < today:
        return Refusal(
            PaymentError.invalid_schedule, f"start date {start_date} is before today {today}", {"field": "start_date"}
        )
    if end_date is not None and end_date < start_date:
        return Refusal(
            PaymentError.invalid_schedule, f"end date {end_date} is before start date {start_date}", {"field": "end_date"}
        )
    return check_rail_amount(kind, amount)
