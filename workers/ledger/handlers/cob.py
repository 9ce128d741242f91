"""Close of business: the ledger's steps (`ledger.day_end_balances`, `ledger.trial_balance`),
and the reads of what they kept (day-end balances, statements, the journal, the trial balance)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bus.handling import Context
from contracts import day
from contracts import ledger as c
from contracts.common import Reply
from workers.ledger import store
from workers.ledger.domain import books

DAY_END_STEP = "ledger.day_end_balances"
TRIAL_BALANCE_STEP = "ledger.trial_balance"
DEPOSIT_CODE = "customer_deposit"  # the accounts whose day-end balances interest accrues on


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    """Close of business asks for one of the ledger's steps (each idempotent per date)."""
    if DAY_END_STEP in event.steps:
        await _keep_day_end_balances(ctx, event)
    if TRIAL_BALANCE_STEP in event.steps:
        await _keep_trial_balance(ctx, event)


async def _keep_day_end_balances(ctx: Context, event: day.DayClosing) -> None:
    """Every open deposit account's posted balance as the day ends, kept once per close: asked
    again (attempt 2 on), the first cut stands (later payments and the interest itself belong to
    the next day); a new close of the date (attempt 1: a bank set back to it) takes it anew."""
    accounts = await store.keep_day_end_balances(ctx.conn, event.business_date, DEPOSIT_CODE, new_close=event.attempt == 1)
    await ctx.emit(c.CobStepReported(business_date=event.business_date, step=DAY_END_STEP, status=day.StepStatus.done,
                                     result={"accounts": accounts}, occurred_at=ctx.now))  # fmt: skip


async def get_day_end_balances(ctx: Context, cmd: c.GetDayEndBalances) -> Reply:
    rows = await store.day_end_balances(ctx.conn, cmd.business_date, cmd.after, cmd.limit)
    if rows is None:
        return Reply.refusal(c.LedgerError.day_end_not_taken, f"no day-end balances kept for {cmd.business_date}")
    items = [c.DayEndBalance(account_id=r["account_id"], balance=r["balance"]) for r in rows]
    next_after = items[-1].account_id if len(items) == cmd.limit else None
    return Reply.success(c.DayEndBalances(business_date=cmd.business_date, items=items, next_after=next_after))


async def get_statements(ctx: Context, cmd: c.GetStatements) -> Reply:
    until = await store.books_cut(ctx.conn, cmd.month_end)
    if until is None:
        return Reply.refusal(c.LedgerError.books_not_closed, f"no books taken for a business date up to {cmd.month_end}")
    since = await store.books_cut(ctx.conn, cmd.month_end.replace(day=1) - timedelta(days=1))
    rows = await store.statements(ctx.conn, list(dict.fromkeys(cmd.account_ids)), since, until)
    items = [c.StatementTotals(account_id=r["account_id"], opening=r["opening"], credits=int(r["credits"]),
                               debits=int(r["debits"]), closing=r["closing"], transfers=r["transfers"],
                               balanced=r["opening"] + int(r["credits"]) - int(r["debits"]) == r["closing"])
             for r in rows]  # fmt: skip
    return Reply.success(c.Statements(month_end=cmd.month_end, period_from=since, period_until=until, items=items))


async def get_journal(ctx: Context, cmd: c.GetJournal) -> Reply:
    since, until = await store.books_cut_of(ctx.conn, cmd.business_date)
    if until is None:
        return Reply.refusal(c.LedgerError.books_not_closed, f"no books taken for {cmd.business_date}: not closed")
    rows = await store.journal(ctx.conn, since, until, cmd.after or 0, cmd.limit)
    lines = [c.JournalLine.model_validate(dict(r)) for r in rows]
    return Reply.success(c.Journal(business_date=cmd.business_date, period_from=since, period_until=until, lines=lines,
                                   next_after=lines[-1].seq if len(lines) == cmd.limit else None))  # fmt: skip


async def _keep_trial_balance(ctx: Context, event: day.DayClosing) -> None:
    """The trial balance: kept for the date by general-ledger account (`ledger.get_trial_balance`
    reads it back), and debits = credits in every currency, or the step fails with the currencies
    that differ (and the day does not close). Asked again for the same date, it takes the totals
    again: idempotent per (date, step)."""
    kept = [_code_totals(r) for r in await store.keep_trial_balance(ctx.conn, event.business_date)]
    per_currency: dict[str, list[books.CodeTotals]] = {}
    for t in kept:
        per_currency.setdefault(t.currency, []).append(t)
    lines = [day.TrialBalanceLine(currency=cur, debits_posted=sum(t.debits_posted for t in ts),
                                  credits_posted=sum(t.credits_posted for t in ts), accounts=sum(t.accounts for t in ts))
             for cur, ts in sorted(per_currency.items())]  # fmt: skip
    unbalanced = [line.currency for line in lines if not line.balanced]
    await ctx.emit(c.CobStepReported(
        business_date=event.business_date, step=TRIAL_BALANCE_STEP,
        status=day.StepStatus.failed if unbalanced else day.StepStatus.done,
        error=f"posted debits and credits differ in {', '.join(unbalanced)}" if unbalanced else None,
        result={"trial_balance": [line.model_dump(mode="json") for line in lines]}, occurred_at=ctx.now,
    ))  # fmt: skip


def _code_totals(r: Any) -> books.CodeTotals:
    return books.CodeTotals(currency=r["currency"].strip(), code=r["code"], accounts=r["accounts"],
                            debits_posted=int(r["debits_posted"]), credits_posted=int(r["credits_posted"]))  # fmt: skip


async def get_trial_balance(ctx: Context, cmd: c.GetTrialBalance) -> Reply:
    kept = [_code_totals(r) for r in await store.kept_trial_balance(ctx.conn, cmd.business_date)]
    if not kept:
        return Reply.refusal(c.LedgerError.trial_balance_not_found,
                             f"no trial balance was kept for {cmd.business_date}: it is kept when that date closes")  # fmt: skip
    rows = books.trial_balance_rows(kept)
    totals, sheet, income = books.statements(rows)
    return Reply.success(c.TrialBalance(business_date=cmd.business_date, rows=rows, totals=totals,
                                        balance_sheet=sheet, income_statement=income))  # fmt: skip
