"""Close of business's `account.statements` step, and the statements read (banking-rules §2).

At the close that covers a month's last day, after the books are taken: each open account's
statement of that month, in pages of the ledger's batch size (`ledger.get_statements`: opening and
closing balances at the two cuts, credits and debits summed movement by movement). A statement
whose opening + credits − debits differs from its closing is withheld, never issued, and counted
in the step's report for the operators. One per (account, month): a repeated page draws up nothing
twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from bus.handling import Context, Deferred
from contracts import account as c
from contracts import day, ledger
from contracts.common import Reply
from workers.account import store
from workers.account.domain import charges
from workers.account.handlers import steps
from workers.account.handlers.accounts import owned_account

STEP = "account.statements"
STEP_PAGE = "statements_page"  # the ledger's answer: a page of statement totals
PAGE_SIZE = ledger.MAX_BATCH
_DONE = Reply.success()


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    if STEP not in event.steps:
        return
    months = charges.month_ends_covered(event.business_date, event.next_business_date)
    run = await store.start_statement_run(ctx.conn, event.business_date, months[0] if months else None,
                                          new_close=event.attempt == 1)
    if run["status"] == "done":
        await _report_done(ctx, event.business_date)
        return
    await _next_page(ctx, event.business_date, event.next_business_date, run["month_end"], run["cursor"])


async def _next_page(ctx: Context, business_date: dt.date, until: dt.date, month_end: dt.date,
                     after: UUID | None) -> Reply | Deferred:  # fmt: skip
    """The next page of this month's accounts; none left: the next month the close ends, or done."""
    accounts = await store.statement_accounts(ctx.conn, after, PAGE_SIZE, _closed_since(month_end))
    if accounts:
        return await ctx.request(
            ledger.GetStatements(month_end=month_end, account_ids=accounts), step=STEP_PAGE,
            key=f"{business_date}:{month_end}:{after}",
            state={"business_date": business_date.isoformat(), "until": until.isoformat(),
                   "month_end": month_end.isoformat(), "after": str(after) if after else None,
                   "last": str(accounts[-1])},
        )  # fmt: skip
    later = [m for m in charges.month_ends_covered(business_date, until) if m > month_end]
    if later:
        await store.advance_statement_run(ctx.conn, business_date, later[0], None, "drawing")
        return await _next_page(ctx, business_date, until, later[0], None)
    await store.advance_statement_run(ctx.conn, business_date, None, None, "done")
    await _report_done(ctx, business_date)
    return _DONE


async def page_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    business_date, month_end = dt.date.fromisoformat(state["business_date"]), dt.date.fromisoformat(state["month_end"])
    run = await store.statement_run(ctx.conn, business_date)
    after = UUID(state["after"]) if state["after"] else None
    if run is None or run["status"] != "drawing" or (run["month_end"], run["cursor"]) != (month_end, after):
        return _DONE  # another chain drew this page up already
    if not reply.ok or reply.result is None:
        reason = reply.error.message if reply.error else "no result"
        await steps.report(ctx, business_date, STEP, error=f"the ledger's statements: {reason}")
        return _DONE
    page = ledger.Statements.model_validate(reply.result)
    closed = await store.closed_among(ctx.conn, [t.account_id for t in page.items])
    rows = [(t.account_id, month_end, t.opening, t.credits, t.debits, t.closing, t.transfers, page.period_from,
             page.period_until, c.StatementStatus.issued if t.balanced else c.StatementStatus.withheld, business_date)
            for t in page.items if not _closed_before(t, closed)]  # fmt: skip
    for s in await store.insert_statements(ctx.conn, rows):
        if s["status"] == c.StatementStatus.issued:
            await ctx.emit(c.StatementReady(account_id=s["account_id"], customer_id=s["customer_id"], month_end=month_end,
                                            currency=s["currency"].strip(), opening=s["opening"], closing=s["closing"],
                                            credits=s["credits"], debits=s["debits"], occurred_at=ctx.now))  # fmt: skip
    last = UUID(state["last"])
    await store.advance_statement_run(ctx.conn, business_date, month_end, last, "drawing")
    return await _next_page(ctx, business_date, dt.date.fromisoformat(state["until"]), month_end, last)


def _closed_since(month_end: dt.date) -> dt.date:
    """Accounts closed since the month before began may have moved money in this month's period
    (its cut is the previous month's last close): they are asked; an empty one is left out."""
    return (month_end.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _closed_before(totals: ledger.StatementTotals, closed: set[UUID]) -> bool:
    """A closed account with nothing in the period: it closed before the period began."""
    return totals.account_id in closed and (totals.opening, totals.transfers, totals.closing) == (0, 0, 0)


async def _report_done(ctx: Context, business_date: dt.date) -> None:
    counts = await store.statements_issued_on(ctx.conn, business_date)
    await steps.report(ctx, business_date, STEP, result={"issued": counts.get("issued", 0),
                                                         "withheld": counts.get("withheld", 0)})  # fmt: skip


async def list_statements(ctx: Context, cmd: c.ListStatements) -> Reply:
    account = await owned_account(ctx, cmd.account_id)
    if isinstance(account, Reply):
        return account
    rows = await store.statements_of(ctx.conn, account.account_id, cmd.limit)
    return Reply.success(c.StatementList(items=[_view(r) for r in rows]))


async def get_statement(ctx: Context, cmd: c.GetStatement) -> Reply:
    account = await owned_account(ctx, cmd.account_id)
    if isinstance(account, Reply):
        return account
    found = await store.statements_of(ctx.conn, account.account_id, 1, cmd.month_end)
    if not found or found[0]["status"] != c.StatementStatus.issued:
        return Reply.refusal(c.AccountError.statement_not_found, f"no statement of {cmd.month_end} for this account")
    return Reply.success(_view(found[0]))


def _view(r: Any) -> c.StatementView:
    return c.StatementView(**{k: r[k] for k in c.StatementView.model_fields if k != "currency"}, currency=r["currency"].strip())
