"""The day worker's recipes: the business date, its calendar, and close of business."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import Gauge

from bus.handling import Context
from contracts import account, ledger, loan
from contracts import day as c
from contracts.common import Reply
from workers.day import domain, store
from workers.day.domain import Day

# Configuration (read once at start, like every worker's):
BANK_TZ = c.BANK_TIME_ZONE  # banking-rules §0
# "HH:MM" in bank time: the open date closes on its own once its wall-clock day reaches this, and a
# cluster that was down closes each missed day in order. Unset: a day closes only when asked.
CLOSE_AT = os.environ.get("CBS_DAY_CLOSE_AT") or None
# The bank's first business date (ISO), for a new installation; default: today in bank time.
FIRST_DATE = os.environ.get("CBS_DAY_FIRST_DATE") or None
STEP_RESEND_S = float(os.environ.get("CBS_DAY_STEP_RESEND_S", "30"))  # an unreported step is asked again after this
SWEEP_S = float(os.environ.get("CBS_DAY_SWEEP_S", "5"))
TRIAL_BALANCE_STEP = "ledger.trial_balance"


def _actor(ctx: Context) -> str:
    return ctx.actor.subject if ctx.actor is not None else (ctx.broker_user or "system")


def _bank_today(now: dt.datetime) -> dt.date:
    return now.astimezone(BANK_TZ).date()


# --- the business date -------------------------------------------------------------------------


async def open_first_day(ctx: Context) -> None:
    """At start: a new bank opens its first business date (every replica tries; one wins)."""
    if await store.read_day(ctx.conn) is not None:
        return
    start = dt.date.fromisoformat(FIRST_DATE) if FIRST_DATE else _bank_today(ctx.now)
    first = domain.first_business_date(start, await store.holiday_dates(ctx.conn, start))
    if await store.open_first_day(ctx.conn, first):
        await ctx.emit(c.DayOpened(business_date=first, occurred_at=ctx.now))


async def _view(ctx: Context) -> c.BusinessDayView:
    found = await store.read_day(ctx.conn)
    assert found is not None, "the day worker opens the first business date at start"
    day, last_closed = found
    steps = await store.steps(ctx.conn, day.business_date) if day.status == c.DayStatus.closing else []
    holidays = await store.holiday_dates(ctx.conn, day.business_date)
    return c.BusinessDayView(
        business_date=day.business_date, status=day.status, last_closed=last_closed,
        next_business_date=domain.next_business_date(day.business_date, holidays),
        steps=[c.StepView(step=r["step"], status=c.StepStatus(r["status"]), error=r["error"], attempts=r["attempts"],
                          reported_at=r["reported_at"]) for r in sorted(steps, key=lambda r: c.COB_STEPS.index(r["step"]))],
    )  # fmt: skip


async def get_business_day(ctx: Context, cmd: c.GetBusinessDay) -> Reply:
    return Reply.success(await _view(ctx))


# --- close of business -------------------------------------------------------------------------


async def close_day(ctx: Context, cmd: c.CloseDay) -> Reply:
    day = await store.lock_day(ctx.conn)

    assert day is not None
    if refusal := domain.close_refusal(day, cmd.business_date):
        return Reply.refusal(refusal, f"the open business date is {day.business_date}, not {cmd.business_date}",
                             {"business_date": day.business_date.isoformat()})  # fmt: skip
    await _start_or_resume(ctx, day)
    return Reply.success(await _view(ctx))


async def _start_or_resume(ctx: Context, day: Day) -> None:
    """Open the close (if it is not) and ask the step whose turn it is."""
    if day.status == c.DayStatus.open:
        # A new close: steps a past close of this date left (an installation restored to an
        # earlier date closes it again) count for nothing.
        await store.reset_steps(ctx.conn, day.business_date)
        await store.set_day(ctx.conn, day.business_date, c.DayStatus.closing, None)
    await store.ensure_steps(ctx.conn, day.business_date, list(c.COB_STEPS))
    await _ask_next(ctx, day.business_date)


async def _ask_next(ctx: Context, business_date: dt.date) -> None:
    rows = await store.steps(ctx.conn, business_date)
    step = domain.step_to_ask({r["step"]: c.StepStatus(r["status"]) for r in rows}, c.COB_STEPS)
    if step is not None:
        await _ask(ctx, business_date, step, rows)


async def _ask(ctx: Context, business_date: dt.date, step: str, rows: list[Any]) -> None:
    await store.mark_asked(ctx.conn, business_date, step)
    attempt = 1 + next((r["attempts"] for r in rows if r["step"] == step), 0)
    next_date = domain.next_business_date(business_date, await store.holiday_dates(ctx.conn, business_date))
    await ctx.emit(c.DayClosing(business_date=business_date, next_business_date=next_date, steps=[step],
                                attempt=attempt, occurred_at=ctx.now))  # fmt: skip


async def on_step_reported(ctx: Context, event: c.StepReport) -> None:
    """A step owner's report: recorded once; the last `done` closes the day."""
    day = await store.lock_day(ctx.conn)
    if day is None or day.status != c.DayStatus.closing or event.business_date != day.business_date:
        return  # late: a repeat of a date already closed, or of a close not begun
    if event.step not in c.COB_STEPS:
        return
    if not await store.report(ctx.conn, day.business_date, event.step, event.status, event.error, event.result):
        return
    rows = await store.steps(ctx.conn, day.business_date)
    if all(r["status"] == c.StepStatus.done for r in rows) and {r["step"] for r in rows} >= set(c.COB_STEPS):
        await _close(ctx, day, rows)
    elif event.status == c.StepStatus.done:
        await _ask_next(ctx, day.business_date)


async def _close(ctx: Context, day: Day, rows: list[Any]) -> None:
    result = store.jsonb(next(r["result"] for r in rows if r["step"] == TRIAL_BALANCE_STEP)) or {}
    lines = [c.TrialBalanceLine(**line) for line in result.get("trial_balance", [])]
    assert not domain.unbalanced(lines), "the ledger reports an unbalanced trial balance as failed"
    next_date = domain.next_business_date(day.business_date, await store.holiday_dates(ctx.conn, day.business_date))
    await store.record_closed(ctx.conn, day.business_date, next_date, [line.model_dump(mode="json") for line in lines])
    await store.set_day(ctx.conn, next_date, c.DayStatus.open, day.business_date)
    await ctx.emit(c.DayClosed(business_date=day.business_date, next_business_date=next_date, trial_balance=lines,
                               occurred_at=ctx.now))  # fmt: skip
    await ctx.emit(c.DayOpened(business_date=next_date, occurred_at=ctx.now))
    if _close_due(Day(next_date, c.DayStatus.open), ctx.now):
        await _start_or_resume(ctx, Day(next_date, c.DayStatus.open))  # catching up: the next missed day at once


def _close_due(day: Day, now: dt.datetime) -> bool:
    """With CBS_DAY_CLOSE_AT set: the open date's wall-clock day has reached the close time."""
    if CLOSE_AT is None or day.status != c.DayStatus.open:
        return False
    local = now.astimezone(BANK_TZ)
    return local.date() > day.business_date or (
        local.date() == day.business_date and local.time() >= dt.time.fromisoformat(CLOSE_AT)
    )


async def close_when_due(ctx: Context) -> bool:
    """Duty: start the close the clock has made due (the rest of a catch-up chains from `_close`)."""
    found = await store.read_day(ctx.conn)
    if found is None or not _close_due(found[0], ctx.now):
        return False
    day = await store.lock_day(ctx.conn)
    if day is not None and _close_due(day, ctx.now):
        await _start_or_resume(ctx, day)
    return False


async def ask_unreported_again(ctx: Context) -> bool:
    """Duty: a step not reported within STEP_RESEND_S (its worker died halfway) is asked again."""
    found = await store.read_day(ctx.conn)
    if found is None or found[0].status != c.DayStatus.closing:
        return False
    day = await store.lock_day(ctx.conn)
    if day is None or day.status != c.DayStatus.closing:
        return False
    for step in await store.unreported_since(ctx.conn, day.business_date, STEP_RESEND_S):
        await _ask(ctx, day.business_date, step, await store.steps(ctx.conn, day.business_date))
    return False


# --- the business day as metrics (issue 14: "business-day status") --------------------------------
# Read from the day's row by a duty every SWEEP_S, so a restarted worker exports it again within one
# sweep. Prometheus has no date type: the open business date is its 00:00 UTC as Unix seconds (a
# dashboard shows it as a date; `time() - cbs_business_date_seconds` grows past a day when a close is late).

BUSINESS_DATE_SECONDS = Gauge(
    "cbs_business_date_seconds", "The open business date, as its 00:00 UTC in Unix seconds", registry=None,
)  # fmt: skip
CLOSING = Gauge(
    "cbs_business_day_closing", "1 while close of business runs on the open date, else 0", registry=None,
)  # fmt: skip
COB_STEPS = Gauge(
    "cbs_cob_steps", "The steps of the close under way by status (a failed one stops the close until asked "
    "again); all 0 while the day is open", ["status"], registry=None,
)  # fmt: skip
METRICS = (BUSINESS_DATE_SECONDS, CLOSING, COB_STEPS)


def _export(business_date: dt.date, status: c.DayStatus, step_statuses: Iterable[str]) -> None:
    midnight = dt.datetime.combine(business_date, dt.time(0), tzinfo=dt.UTC)
    BUSINESS_DATE_SECONDS.set(midnight.timestamp())
    closing = status is c.DayStatus.closing
    CLOSING.set(1 if closing else 0)
    counts = dict.fromkeys((s.value for s in c.StepStatus), 0)
    for step_status in step_statuses if closing else ():
        counts[step_status] = counts.get(step_status, 0) + 1
    for step_status, n in counts.items():
        COB_STEPS.labels(step_status).set(n)


async def export_status(ctx: Context) -> bool:
    """Duty: the business date and the close's progress, as metrics."""
    found = await store.read_day(ctx.conn)
    if found is not None:
        day = found[0]
        steps = await store.steps(ctx.conn, day.business_date) if day.status == c.DayStatus.closing else []
        _export(day.business_date, day.status, (row["status"] for row in steps))
    return False


# --- the calendar ------------------------------------------------------------------------------


async def list_holidays(ctx: Context, cmd: c.ListHolidays) -> Reply:
    found = await store.read_day(ctx.conn)
    since = cmd.since or (found[0].business_date if found else None)
    rows = await store.holidays(ctx.conn, since, cmd.limit)
    return Reply.success(c.HolidayList(items=[c.Holiday(date=r["holiday_date"], name=r["name"]) for r in rows]))


async def add_holiday(ctx: Context, cmd: c.AddHoliday) -> Reply:
    day = await store.lock_day(ctx.conn)  # against a close moving the date past it meanwhile
    assert day is not None
    if refusal := domain.calendar_refusal(day):
        return _closing(refusal, day)
    if refusal := domain.holiday_refusal(cmd.date, day.business_date, adding=True):
        return Reply.refusal(refusal, f"{cmd.date} cannot become a holiday: only a weekday after the open business "
                                      f"date {day.business_date} can")  # fmt: skip
    await store.put_holiday(ctx.conn, cmd.date, cmd.name, _actor(ctx))
    await ctx.emit(c.HolidaysChanged(date=cmd.date, name=cmd.name, actor=_actor(ctx), occurred_at=ctx.now))
    return Reply.success(c.Holiday(date=cmd.date, name=cmd.name))


async def remove_holiday(ctx: Context, cmd: c.RemoveHoliday) -> Reply:
    day = await store.lock_day(ctx.conn)
    assert day is not None
    if refusal := domain.calendar_refusal(day):
        return _closing(refusal, day)
    if refusal := domain.holiday_refusal(cmd.date, day.business_date, adding=False):
        return Reply.refusal(refusal, f"{cmd.date} is on or before the open business date {day.business_date}")
    name = await store.remove_holiday(ctx.conn, cmd.date)
    if name is None:
        return Reply.refusal(c.DayError.holiday_not_found, f"{cmd.date} is not a holiday")
    await ctx.emit(c.HolidaysChanged(date=cmd.date, name=None, actor=_actor(ctx), occurred_at=ctx.now))
    return Reply.success(c.Holiday(date=cmd.date, name=name))


def _closing(refusal: c.DayError, day: Day) -> Reply:
    return Reply.refusal(refusal, f"{day.business_date} is closing: the calendar changes once it has closed",
                         {"business_date": day.business_date.isoformat()})  # fmt: skip


# The step reports this worker learns, one per step owner.
STEP_REPORTS: tuple[type[c.StepReport], ...] = (ledger.CobStepReported, account.AccountCobStepReported, loan.LoanCobStepReported)
