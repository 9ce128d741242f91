"""The loan worker's contract sheet (banking-rules §5; issue 12).

So far the schedule calculator and the products' reads, open to every caller (they hold nothing
of anyone's), products defined by staff only, and the business date it learns from `day.opened`
(a schedule's due dates count from it by default).
"""

from __future__ import annotations

from bus.actor import staff_only
from bus.handling import EventRoute, Routes
from contracts import day, loan
from workers.loan import handlers

ROUTES = Routes(
    worker="loan",
    commands={
        loan.CalculateLoan: handlers.calculate,
        loan.ListLoanProducts: handlers.list_products,
        loan.GetLoanProduct: handlers.get_product,
        loan.DefineLoanProduct: staff_only(handlers.define_product),
    },
    events=(EventRoute(day.DayOpened, handlers.on_day_opened),),
    on_start=handlers.ensure_default_products,
    publishes=loan.EVENTS,
)
