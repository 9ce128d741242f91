"""The day worker's contract sheet: the business date, the calendar, close of business.

Staff only for every change (customers are refused here whatever the edge allowed). It learns
each step owner's `<worker>.cob_step_reported`, and publishes `day.opened|closing|closed`.
"""

from __future__ import annotations

from bus.actor import staff_only
from bus.handling import Duty, EventRoute, Routes
from contracts import day
from workers.day import handlers

ROUTES = Routes(
    worker="day",
    commands={
        day.GetBusinessDay: handlers.get_business_day,
        day.CloseDay: staff_only(handlers.close_day),
        day.ListHolidays: handlers.list_holidays,
        day.AddHoliday: staff_only(handlers.add_holiday),
        day.RemoveHoliday: staff_only(handlers.remove_holiday),
    },
    events=tuple(EventRoute(report, handlers.on_step_reported) for report in handlers.STEP_REPORTS),
    duties=(
        Duty("close_when_due", handlers.close_when_due, handlers.SWEEP_S),
        Duty("ask_unreported_again", handlers.ask_unreported_again, handlers.SWEEP_S),
        Duty("export_status", handlers.export_status, handlers.SWEEP_S),
    ),
    metrics=handlers.METRICS,
    on_start=handlers.open_first_day,
    publishes=day.EVENTS,
)
