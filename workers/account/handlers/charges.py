"""Close of business's `account.charges` step, and the charges read (banking-rules §2).

At a close that covers a month's last day, each open account whose product version charges a
monthly fee owes it: the maintenance fee, and the shortfall fee when the month's average day-end
balance (kept by the `account.interest` step's pass over the day-end balances, `keep_balance_days`)
fell below the minimum. Rounds of up to `ROUND` accounts, each one transaction and one ledger
batch of balancing debits to fee_income, then the charges an earlier close could not take (a
frozen account) again under new ids, until none is left; then the step reports done. A charge is
one row per (account, fee, month): a repeated round finds it and asks nothing twice.
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

STEP = "account.charges"
STEP_POST = "charges_post"  # the ledger's answer: a round of balancing debits
ROUND = ledger.MAX_BATCH // 2  # accounts a round; as many retries beside them fill the batch
_DONE = Reply.success()


async def keep_balance_days(ctx: Context, business_date: dt.date, until: dt.date, balances: dict[UUID, int]) -> None:
    """What a page of day-end balances of open accounts adds to their months' balance-days (the
    `account.interest` step's pass over the ledger's balances calls it: one pass, two uses)."""
    await store.add_balance_days(ctx.conn, [
        (account_id, b.month_end, b.first, b.last, b.balance_days, b.overdrawn_days)
        for account_id, balance in balances.items() for b in charges.balance_days(balance, business_date, until)
    ])  # fmt: skip


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    if STEP not in event.steps:
        return
    run = await store.start_charge_run(ctx.conn, event.business_date, event.next_business_date,
                                       new_close=event.attempt == 1)
    if run["status"] == "done":
        await _report_done(ctx, event.business_date)
        return
    outstanding = await store.charges_outstanding(ctx.conn, event.business_date)
    if outstanding:  # asked again while a round's answer is awaited: ask it again, same ids
        await _ask(ctx, event.business_date, [_debit(r["transfer_id"], r) for r in outstanding], key="again")
        return
    await _round(ctx, event.business_date)


async def _round(ctx: Context, business_date: dt.date) -> Reply | Deferred:
    """The next round: a page of fee-bearing accounts, and earlier charges due again."""
    run = await store.charge_run(ctx.conn, business_date)
    assert run is not None
    months = charges.month_ends_covered(business_date, run["covers_until"])
    cursor, status = run["cursor"], run["status"]
    while months and status == "charging":
        accounts = await store.fee_accounts(ctx.conn, cursor, ROUND)
        debits = await _charge(ctx, business_date, months, accounts)
        cursor = accounts[-1]["account_id"] if len(accounts) == ROUND else None
        status = "charging" if cursor else "retrying"
        await store.advance_charge_run(ctx.conn, business_date, cursor, status)
        if debits:
            return await _ask(ctx, business_date, debits, key=str(accounts[0]["account_id"]))
    retries = await _retry_due(ctx, business_date)
    if retries:
        return await _ask(ctx, business_date, retries, key=f"retry:{retries[0].id}")
    if await store.charges_outstanding(ctx.conn, business_date):
        return _DONE  # a round's answer is still coming; it finishes the step
    await store.advance_charge_run(ctx.conn, business_date, None, "done")
    await _report_done(ctx, business_date)
    return _DONE


async def _charge(ctx: Context, business_date: dt.date, months: list[dt.date], accounts: list[Any]) -> list[ledger.NewTransfer]:
    """Record each account's fees for the months and the debits that take them (new rows only)."""
    rows, debits = [], {}
    for month_end in months:
        sums = await store.month_balance_days(ctx.conn, [a["account_id"] for a in accounts], month_end)
        for a in accounts:
            terms = c.ProductTerms.model_validate(a["terms"])
            opened_on = a["opened_at"].astimezone(steps.BANK_TZ).date()
            balance_days, overdrawn_days = sums.get(a["account_id"], (0, 0))
            owed = charges.month_charges(terms, balance_days, charges.days_open(month_end, opened_on), overdrawn_days)
            for charge in owed:
                transfer_id = charges.charge_transfer_id(a["account_id"], charge.kind, month_end, business_date)
                rows.append((a["account_id"], charge.kind.value, month_end, charge.amount, transfer_id))
                debits[transfer_id] = _debit(transfer_id, {**a, "kind": charge.kind, "month_end": month_end, "fee": charge.amount})
    inserted = await store.insert_charges(ctx.conn, business_date, rows)
    return [debits[r["transfer_id"]] for r in inserted]


async def _retry_due(ctx: Context, business_date: dt.date) -> list[ledger.NewTransfer]:
    retries = []
    for r in await store.due_charges(ctx.conn, business_date, ROUND):
        transfer_id = charges.charge_transfer_id(r["account_id"], c.ChargeKind(r["kind"]), r["month_end"], business_date)
        await store.retry_charge(ctx.conn, r["account_id"], r["kind"], r["month_end"], transfer_id, business_date)
        retries.append(_debit(transfer_id, r))
    return retries


def _debit(transfer_id: UUID, r: Any) -> ledger.NewTransfer:
    return charges.charge_transfer(transfer_id, r["ledger_account_id"], r["currency"].strip(), c.ChargeKind(r["kind"]),
                                   r["month_end"], r["fee"])  # fmt: skip


async def _ask(ctx: Context, business_date: dt.date, debits: list[ledger.NewTransfer], *, key: str) -> Deferred:
    return await ctx.request(ledger.CreateTransfers(transfers=debits), step=STEP_POST, key=f"{business_date}:{key}",
                             state={"business_date": business_date.isoformat()})  # fmt: skip


async def post_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The ledger's results for a round: each taken (in part, or nothing), or due again; then the next round."""
    business_date = dt.date.fromisoformat(state["business_date"])
    run = await store.charge_run(ctx.conn, business_date)
    if run is None or run["status"] == "done":
        return _DONE
    results = steps.batch_results(reply)
    if isinstance(results, str):
        await steps.report(ctx, business_date, STEP, error=f"the ledger refused the charges batch: {results}")
        return _DONE
    for result, taken in results:
        row = await store.charge_answered(ctx.conn, business_date, result.id, result.amount if taken else None,
                                          None if taken else result.result)  # fmt: skip
        if row is not None and taken and row["collected"]:
            await ctx.emit(c.FeeCharged(
                account_id=row["account_id"], customer_id=row["customer_id"], kind=c.ChargeKind(row["kind"]),
                fee=row["fee"], collected=row["collected"], currency=row["currency"].strip(), month_end=row["month_end"],
                business_date=business_date, transfer_id=result.id, occurred_at=ctx.now,
            ))  # fmt: skip
    return await _round(ctx, business_date)


async def _report_done(ctx: Context, business_date: dt.date) -> None:
    charged = [{"currency": r["currency"].strip(), "kind": r["kind"], "charges": r["charges"], "fees": int(r["fees"]),
                "collected": int(r["collected"])} for r in await store.charged_on(ctx.conn, business_date)]  # fmt: skip
    await steps.report(ctx, business_date, STEP, result={"charged": charged})


async def list_charges(ctx: Context, cmd: c.ListCharges) -> Reply:
    account = await owned_account(ctx, cmd.account_id)
    if isinstance(account, Reply):
        return account
    rows = await store.account_charges(ctx.conn, account.account_id, cmd.limit)
    items = [c.ChargeView(kind=r["kind"], month_end=r["month_end"], fee=r["fee"], collected=r["collected"], status=r["status"],
                          transfer_id=r["transfer_id"], charged_on=r["charged_on"], error=r["error"]) for r in rows]  # fmt: skip
    return Reply.success(c.ChargeList(items=items))
