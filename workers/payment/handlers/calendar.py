"""The business date and the holidays, as the day worker publishes them: the scheduler's "today"
and the calendar of standing orders and rail windows (banking-rules §0, §4). Payments never take
the wall clock's date for a banking decision; until the day worker has opened a date, the
scheduler waits and a standing order cannot be created."""

from __future__ import annotations

from datetime import date

import asyncpg

from bus.handling import Context
from contracts import day
from contracts.common import Reply
from workers.payment import store
from workers.payment.domain.orders import BankCalendar

UNKNOWN = Reply.refusal("unavailable", "the business date is not known yet: the day worker has not opened one")


async def on_day_opened(ctx: Context, event: day.DayOpened) -> None:
    await store.learn_business_date(ctx.conn, event.business_date, event.occurred_at)


async def on_holidays_changed(ctx: Context, event: day.HolidaysChanged) -> None:
    await store.learn_holiday(ctx.conn, event.date, event.name, event.occurred_at)


async def bank_calendar(conn: asyncpg.Connection) -> BankCalendar:
    return BankCalendar(holidays=await store.holidays(conn))


async def today(conn: asyncpg.Connection) -> date | None:
    """The open business date, or None before the day worker has published one."""
    return await store.business_date(conn)
