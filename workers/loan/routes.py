"""The loan worker's contract sheet (banking-rules §5; issue 12).

So far the schedule calculator, open to every caller (it holds no state and moves no money), and
the business date it learns from `day.opened` (a schedule's due dates count from it by default).
"""

from __future__ import annotations

from bus.handling import EventRoute, Routes
from contracts import day, loan
from workers.loan import handlers

ROUTES = Routes(
    worker="loan",
    commands={
        loan.CalculateLoan: handlers.calculate,
    },
    events=(EventRoute(day.DayOpened, handlers.on_day_opened),),
    publishes=loan.EVENTS,
)
