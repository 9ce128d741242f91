"""Close of business's `account.interest` step, and the interest reads (banking-rules §2).

The step for a business date, each part one transaction, resumable after any crash:
1. accrue: page through the ledger's day-end balances of the date (`ledger.get_day_end_balances`,
   kept by the step before this one), adding each interest-bearing account's accrual for the days
   the close covers (and, for the `account.charges` step, every open account's balance-days of
   the month: one pass over the balances, two uses); the run's cursor moves with each page, so a page is accrued once even when
   two chains of pages run (a re-asked step beside one still in flight: the second finds the
   cursor moved and stops);
2. post: every period that ended within those days, rounded once, interest_expense → the account
   (code `interest`), up to a ledger batch a round, until none is left;
3. report done, with what posted. A credit the ledger refuses (a frozen account) stays `due` and is
   tried again by each later close; the day still closes.
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
from workers.account.domain import interest
from workers.account.handlers import charges, steps
from workers.account.handlers.accounts import owned_account

STEP = "account.interest"
STEP_PAGE = "interest_page"  # the ledger's answer: a page of day-end balances
STEP_POST = "interest_post"  # the ledger's answer: a round of interest transfers
PAGE_SIZE = ledger.MAX_BATCH
POST_ROUND = ledger.MAX_BATCH
_DONE = Reply.success()  # a step's continuation answers nobody: the step was asked by an event


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    if STEP not in event.steps:
        return
    run = await store.start_interest_run(ctx.conn, event.business_date, event.next_business_date,
                                         new_close=event.attempt == 1)
    if run["status"] == "accruing":
        await _ask_page(ctx, run["business_date"], run["cursor"])
    elif run["status"] == "posting":
        await _resend_outstanding(ctx, run["business_date"])
    else:
        await _report_done(ctx, run["business_date"])


async def _ask_page(ctx: Context, business_date: dt.date, after: UUID | None) -> Deferred:
    return await ctx.request(
        ledger.GetDayEndBalances(business_date=business_date, after=after, limit=PAGE_SIZE),
        step=STEP_PAGE, key=f"{business_date}:{after}",
        state={"business_date": business_date.isoformat(), "after": str(after) if after else None},
    )  # fmt: skip


async def page_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """A page of day-end balances: accrue it, then ask the next page, or start posting."""
    business_date = dt.date.fromisoformat(state["business_date"])
    run = await store.interest_run(ctx.conn, business_date, for_update=True)
    after = UUID(state["after"]) if state["after"] else None
    if run is None or run["status"] != "accruing" or run["cursor"] != after:
        return _DONE  # another chain accrued this page already
    if not reply.ok or reply.result is None:
        reason = reply.error.message if reply.error else "no result"
        await steps.report(ctx, business_date, STEP, error=f"the ledger's day-end balances: {reason}")
        return _DONE
    page = ledger.DayEndBalances.model_validate(reply.result)
    accounted = await _accrue(ctx, business_date, run["covers_until"], page.items)
    if page.next_after is not None:
        await store.advance_interest_run(ctx.conn, business_date, cursor=page.next_after, accounts=accounted,
                                         status="accruing")  # fmt: skip
        return await _ask_page(ctx, business_date, page.next_after)
    await store.advance_interest_run(ctx.conn, business_date, cursor=None, accounts=accounted, status="posting")
    return await _post_round(ctx, business_date, run["covers_until"])


async def _accrue(ctx: Context, business_date: dt.date, until: dt.date, balances: list[ledger.DayEndBalance]) -> int:
    """Add the page's accruals; how many accounts earned interest."""
    by_id = {b.account_id: b.balance for b in balances}
    rows: list[tuple[UUID, dt.date, dt.date, dt.date, int]] = []
    earning = 0
    open_accounts = await store.open_accounts_among(ctx.conn, list(by_id))
    await charges.keep_balance_days(ctx, business_date, until, {a["account_id"]: by_id[a["account_id"]] for a in open_accounts})
    for account in open_accounts:
        if account["type"] != c.ProductType.savings:
            continue  # current accounts earn none; a fixed deposit earns its own, at maturity
        accruals = interest.accrue(by_id[account["account_id"]], account["rate_bps"], business_date, until,
                                   c.InterestPosting(account["interest_posting"]))  # fmt: skip
        earning += bool(accruals)
        rows += [(account["account_id"], a.period_end, a.first, a.last, a.balance_bps_days) for a in accruals]
    await store.add_accruals(ctx.conn, rows)
    return earning


async def _post_round(ctx: Context, business_date: dt.date, until: dt.date) -> Reply | Deferred:
    """Ask the ledger to post up to a batch of ended periods; none left: the step is done."""
    due = await store.due_interest(ctx.conn, business_date, until, POST_ROUND)
    if not due:
        if await store.interest_posting_outstanding(ctx.conn, business_date):
            return _DONE  # another round's answer is still coming; it finishes the step
        await store.advance_interest_run(ctx.conn, business_date, cursor=None, accounts=0, status="done")
        await _report_done(ctx, business_date)
        return _DONE
    asked = []
    for row in due:
        amount = interest.interest_minor(int(row["balance_bps_days"]))
        transfer_id = interest.interest_transfer_id(row["account_id"], row["period_end"], business_date) if amount else None
        asked.append((row["account_id"], row["period_end"], amount, transfer_id))
    await store.mark_interest_asked(ctx.conn, business_date, asked)
    transfers = [
        _interest_transfer(transfer_id, row["ledger_account_id"], amount, row["currency"], row["period_end"])
        for row, (_, _, amount, transfer_id) in zip(due, asked, strict=True) if transfer_id is not None
    ]  # fmt: skip
    if not transfers:
        return await _post_round(ctx, business_date, until)  # every period rounded to zero: the next round
    return await _ask_post(ctx, business_date, transfers)


def _interest_transfer(transfer_id: UUID, account: UUID, amount: int, currency: str, period_end: dt.date) -> ledger.NewTransfer:
    return ledger.NewTransfer(
        id=transfer_id, debit_account_id=ledger.bank_account_id("interest_expense", currency), credit_account_id=account,
        amount=amount, currency=currency, code="interest", reference=interest.reference(period_end),
        narration=f"Interest to {period_end.isoformat()}",
    )  # fmt: skip


async def _ask_post(ctx: Context, business_date: dt.date, transfers: list[ledger.NewTransfer]) -> Deferred:
    return await ctx.request(
        ledger.CreateTransfers(transfers=transfers), step=STEP_POST, key=f"{business_date}:{transfers[0].id}",
        state={"business_date": business_date.isoformat()},
    )  # fmt: skip


async def post_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The ledger's results for a round: each posted, or due again; then the next round."""
    business_date = dt.date.fromisoformat(state["business_date"])
    run = await store.interest_run(ctx.conn, business_date, for_update=True)
    if run is None or run["status"] != "posting":
        return _DONE
    results = steps.batch_results(reply)
    if isinstance(results, str):
        await steps.report(ctx, business_date, STEP, error=f"the ledger refused the interest batch: {results}")
        return _DONE
    for result, posted in results:
        row = await store.interest_answered(ctx.conn, business_date, result.id, error=None if posted else result.result)
        if row is not None and posted:
            await ctx.emit(c.InterestPosted(
                account_id=row["account_id"], customer_id=row["customer_id"], amount=row["amount"],
                currency=row["currency"].strip(), period_end=row["period_end"], business_date=business_date,
                transfer_id=result.id, occurred_at=ctx.now,
            ))  # fmt: skip
    return await _post_round(ctx, business_date, run["covers_until"])


async def _resend_outstanding(ctx: Context, business_date: dt.date) -> None:
    """Asked again while posting (its worker died, or a reply is slow): the unanswered transfers
    again, under the same ids (the ledger answers `exists` for those it has), or the next round."""
    outstanding = await store.interest_posting_outstanding(ctx.conn, business_date)
    if not outstanding:
        run = await store.interest_run(ctx.conn, business_date, for_update=True)
        assert run is not None
        await _post_round(ctx, business_date, run["covers_until"])
        return
    for start in range(0, len(outstanding), POST_ROUND):
        await _ask_post(ctx, business_date, [
            _interest_transfer(r["transfer_id"], r["ledger_account_id"], r["amount"], r["currency"].strip(), r["period_end"])
            for r in outstanding[start:start + POST_ROUND]
        ])  # fmt: skip


async def _report_done(ctx: Context, business_date: dt.date) -> None:
    run = await store.interest_run(ctx.conn, business_date)
    assert run is not None
    posted = [{"currency": r["currency"].strip(), "postings": r["postings"], "amount": int(r["amount"])}
              for r in await store.interest_posted_on(ctx.conn, business_date)]  # fmt: skip
    await steps.report(ctx, business_date, STEP, result={"accounts_accrued": run["accounts"], "posted": posted})


# --- reads ---------------------------------------------------------------------------------------


async def get_interest(ctx: Context, cmd: c.GetInterest) -> Reply:
    account = await owned_account(ctx, cmd.account_id)
    if isinstance(account, Reply):
        return account
    product = await store.product(ctx.conn, account.product_code, account.product_version)
    assert product is not None, "an account's product version is never deleted"
    periods = [
        c.InterestPeriod(
            period_end=r["period_end"], accrued_from=r["accrued_from"], accrued_through=r["accrued_through"],
            accrued=str(interest.exact_minor(int(r["balance_bps_days"]))),
            amount=r["amount"] if r["amount"] is not None else interest.interest_minor(int(r["balance_bps_days"])),
            status=c.InterestStatus(r["status"]), transfer_id=r["transfer_id"], posted_on=r["posted_on"], error=r["error"],
        )
        for r in await store.interest_periods(ctx.conn, account.account_id, cmd.limit)
    ]  # fmt: skip
    return Reply.success(c.InterestView(account_id=account.account_id, currency=account.currency,
                                        rate_bps=product.rate_bps, interest_posting=product.interest_posting,
                                        periods=periods))  # fmt: skip
