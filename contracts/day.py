"""Messages of the day worker: the bank's one business date, its calendar, and close of business
(banking-rules §0; issue 11).

The business date is owned by the day worker alone; every other worker learns it from
`day.opened` (and `day.closed`), never from the wall clock. Business days are Monday to Friday
minus the holidays an operator keeps (`day.add_holiday`, `day.remove_holiday`).

Close of business (COB) is a process on the bus:
1. `day.close_day` names the date it closes (a stale caller is refused `wrong_business_date`);
   the day turns `closing` and `day.closing` asks for the first step of `COB_STEPS`.
2. The worker that owns the step runs it for that date, idempotently, and publishes its own
   `<worker>.cob_step_reported` (done, or failed with the reason). Done, the next step is asked:
   steps run one after another, in `COB_STEPS` order, because each may rest on the one before
   (interest is accrued on the balances the ledger kept at the day's end, and the trial balance
   is taken after interest has posted).
3. When every step is done the day closes: `day.closed` carries the date, the next business date
   and the ledger's trial balance, and `day.opened` the next date. A failed step stops the close
   with its reason; `day.close_day` again (once mended) asks the failed step again.
Steps not reported are asked again (a worker died halfway): each is idempotent per (date, step).
While a day closes its calendar is fixed: the close decided at its start which days it covers.
"""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field

from contracts.common import Command, Contract, Event

# The bank's time zone (banking-rules §0): where its dates and its statements' times are read.
# One setting for every process, so a statement, a payment reference and a close agree.
BANK_TIME_ZONE = ZoneInfo(os.environ.get("CBS_BANK_TIME_ZONE", "Asia/Kolkata"))

# The end-of-day steps, `<worker>.<step>`, in the order they run. A worker's routes name a handler
# for each of its own (tests/unit/test_day.py keeps the two in step).
COB_STEPS: tuple[str, ...] = (
    "ledger.day_end_balances",  # the ledger keeps each deposit account's posted balance as the day ends
    "account.interest",  # savings interest accrues on those balances, and posts at each period's end
    "account.charges",  # the monthly fees, at a month's end, from what the account holds above its floor
    "account.dormancy",  # accounts a year without customer activity turn dormant
    "account.deposits",  # fixed deposits that matured are paid out or renewed
    "loan.repayments",  # each instalment due is debited from its loan's linked account
    "ledger.trial_balance",  # the books as the day closes, interest included
    "account.statements",  # at a month's end: each account's statement, cut where those books were taken
)
MAX_HOLIDAY_NAME = 200
MAX_ERROR_CHARS = 1_000


class DayError(StrEnum):
    """Stable refusal codes of the day worker."""

    wrong_business_date = "wrong_business_date"  # the caller closes a date that is not the open one
    not_a_business_day = "not_a_business_day"  # a holiday on a date the bank has already reached
    holiday_not_found = "holiday_not_found"
    invalid_holiday = "invalid_holiday"
    day_closing = "day_closing"  # the calendar is fixed while a close runs


class DayStatus(StrEnum):
    open = "open"
    closing = "closing"


class StepStatus(StrEnum):
    waiting = "waiting"  # not asked yet: a step before it is not done
    pending = "pending"  # asked, not yet reported
    done = "done"
    failed = "failed"


# --- views -----------------------------------------------------------------------------------


class TrialBalanceLine(Contract):
    """One currency's totals over every ledger account: the books balance when debits = credits."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    debits_posted: int = Field(ge=0, description="sum of every account's posted debits, minor units")
    credits_posted: int = Field(ge=0, description="sum of every account's posted credits, minor units")
    accounts: int = Field(ge=0, description="ledger accounts in this currency")

    @property
    def balanced(self) -> bool:
        return self.debits_posted == self.credits_posted


class StepView(Contract):
    step: str
    status: StepStatus
    error: str | None = None
    attempts: int = Field(ge=0, description="times the step was asked for this date")
    reported_at: AwareDatetime | None = None


class BusinessDayView(Contract):
    business_date: dt.date = Field(description="the bank's open business date")
    status: DayStatus
    steps: list[StepView] = Field(description="close of business of this date, while it is closing")
    last_closed: dt.date | None = Field(default=None, description="the last business date closed")
    next_business_date: dt.date = Field(description="the date the bank opens once this one is closed")


class Holiday(Contract):
    date: dt.date
    name: str = Field(min_length=1, max_length=MAX_HOLIDAY_NAME)


class HolidayList(Contract):
    items: list[Holiday]


# --- commands --------------------------------------------------------------------------------


class GetBusinessDay(Command):
    """The open business date and, while closing, each step's state. Result: `BusinessDayView`."""

    routing_key: ClassVar[str] = "day.get_business_day"
    read_only: ClassVar[bool] = True


class CloseDay(Command):
    """Close the open business date. Result: `BusinessDayView` (the close runs on; follow
    `day.closed` or ask `day.get_business_day`). Asked again while closing, it asks the failed
    and unreported steps again. Refusals: wrong_business_date."""

    routing_key: ClassVar[str] = "day.close_day"

    business_date: dt.date = Field(description="the date the caller means to close: must be the open one")


class ListHolidays(Command):
    """Holidays from `since` on, in date order. Result: `HolidayList`."""

    routing_key: ClassVar[str] = "day.list_holidays"
    read_only: ClassVar[bool] = True

    since: dt.date | None = Field(default=None, description="first date; default: the open business date")
    limit: int = Field(default=100, ge=1, le=1_000)


class AddHoliday(Command):
    """Make a date a holiday (no business day). Result: `Holiday`. Refusals: invalid_holiday (a
    weekend, or a date the bank has already reached)."""

    routing_key: ClassVar[str] = "day.add_holiday"

    date: dt.date
    name: str = Field(min_length=1, max_length=MAX_HOLIDAY_NAME)


class RemoveHoliday(Command):
    """Make a holiday a business day again. Result: `Holiday` (the one removed). Refusals:
    holiday_not_found, invalid_holiday (a date the bank has already reached)."""

    routing_key: ClassVar[str] = "day.remove_holiday"

    date: dt.date


# --- events ----------------------------------------------------------------------------------


class DayOpened(Event):
    """The bank's business date is now `business_date` (first start, and after each close)."""

    routing_key: ClassVar[str] = "day.opened"

    business_date: dt.date
    occurred_at: AwareDatetime


class DayClosing(Event):
    """Close of business of `business_date` has begun: each owner runs the steps named here that
    are its own, then publishes `<worker>.cob_step_reported`."""

    routing_key: ClassVar[str] = "day.closing"

    business_date: dt.date
    next_business_date: dt.date = Field(
        description="the date that opens after this close: a close covers the calendar days up to it "
                    "(Friday's close accrues Saturday's and Sunday's interest too)")
    steps: list[str] = Field(min_length=1, description="`<worker>.<step>`, the one to run now")
    attempt: int = Field(ge=1, description="1, then one more each time unreported steps are asked again")
    occurred_at: AwareDatetime


class DayClosed(Event):
    """`business_date` is closed: every step reported done; the books balanced."""

    routing_key: ClassVar[str] = "day.closed"

    business_date: dt.date
    next_business_date: dt.date
    trial_balance: list[TrialBalanceLine]
    occurred_at: AwareDatetime


class HolidaysChanged(Event):
    routing_key: ClassVar[str] = "day.holidays_changed"

    date: dt.date
    name: str | None = Field(description="the holiday's name; None: no longer a holiday")
    actor: str
    occurred_at: AwareDatetime


class StepReport(Event):
    """Base of each step owner's `<worker>.cob_step_reported` (a subclass per worker names the key)."""

    business_date: dt.date
    step: str = Field(description="`<worker>.<step>`")
    status: StepStatus = Field(description="done or failed")
    error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS, description="why it failed")
    result: dict[str, Any] | None = Field(default=None, description="what the step produced (the trial balance)")
    occurred_at: AwareDatetime


COMMANDS: tuple[type[Command], ...] = (GetBusinessDay, CloseDay, ListHolidays, AddHoliday, RemoveHoliday)
EVENTS: tuple[type[Event], ...] = (DayOpened, DayClosing, DayClosed, HolidaysChanged)
