"""Close of business's `loan.repayments` step (banking-rules §5 "Repayment", "Accrual"): first the
day's interest accrual of every running loan (workers/loan/domain/accrual.py), then rounds of up to
`ROUND` instalments due on or before the business date, each one transaction and one ledger batch
of balancing debits (workers/loan/domain/repayment.py), until none is left; then the day's
penalties, each loan's delinquency, the reminders of instalments due within 3 days and the lapse
of approvals never disbursed; then the bank-side postings still unasked (accrual, suspense); then
the step reports done. An instalment is asked once: a round asked again (the day worker re-asks
an unreported step) sends the same transfer ids, which the ledger answers `exists`; a posting is
made with its id in the transaction that decided it, so asking it again cannot post it twice."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from bus.handling import Context, Deferred
from contracts import day, ledger
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import accrual, repayment
from workers.loan.handlers import applications, receipts

STEP = "loan.repayments"
STEP_POST = "repayments_post"  # the ledger's answer: a round of debits
REMIND_DAYS = 3  # §5: loan.instalment_due 3 days before
ROUND = ledger.MAX_BATCH // 2 - 50  # two transfers an instalment, and room for 100 postings
IN_THE_LEDGER = (ledger.TransferResultCode.ok, ledger.TransferResultCode.exists)
_DONE = Reply.success()


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    if STEP not in event.steps:
        return
    status = await store.start_repayment_run(ctx.conn, event.business_date, new_close=event.attempt == 1)
    if status == "done":
        await _report(ctx, event.business_date)
        return
    if asked := await store.asked_instalments(ctx.conn, event.business_date):  # a round's answer is awaited: ask again
        await _ask(ctx, event.business_date, asked)
        return
    await _accrue(ctx, event.business_date)
    await _round(ctx, event.business_date)


async def _accrue(ctx: Context, business_date: dt.date) -> None:
    """Every running loan's interest through the business date (a weekend at Monday's close), to
    income, or to suspense while defaulted; one posting per currency and destination."""
    additions, totals = [], defaultdict(int)
    for loan_id, currency, defaulted, period in await store.accruing(ctx.conn, business_date):
        if added := accrual.accrual(period, business_date):
            additions.append((loan_id, period.number, added, defaulted))
            totals[currency, accrual.RECEIVABLE, accrual.SUSPENSE if defaulted else accrual.INCOME] += added
    await store.add_accruals(ctx.conn, additions, business_date)
    await store.insert_postings(ctx.conn, business_date, "accrual", totals)


async def _round(ctx: Context, business_date: dt.date) -> Reply | Deferred:
    if dues := await store.due_instalments(ctx.conn, business_date, ROUND):
        await store.mark_asked(ctx.conn, dues, business_date)
        return await _ask(ctx, business_date, dues)
    if await store.collections_over(ctx.conn, business_date):  # once a close, after its last round
        await _penalties(ctx, business_date)
        await _delinquency(ctx, business_date)
        await _remind(ctx, business_date)
        await applications.lapse(ctx, business_date)
    if await store.asked_postings(ctx.conn, 1):
        return await _ask(ctx, business_date, [])
    await store.finish_repayment_run(ctx.conn, business_date)
    await _report(ctx, business_date)
    return _DONE


async def _ask(ctx: Context, business_date: dt.date, dues: list[repayment.Due]) -> Deferred | Reply:
    """One batch: the round's debits, and as many bank-side postings still unasked as fit."""
    debits = [t for due in dues for t in repayment.transfers(due)]
    postings = [_posting(r, business_date) for r in await store.asked_postings(ctx.conn, ledger.MAX_BATCH - len(debits))]
    if not debits and not postings:  # every part 0.00 (the tail of a schedule paid off early): settled as they are
        return await posted(ctx, {"business_date": business_date.isoformat()}, Reply.success({"results": []}))
    key = f"{dues[0].loan_id}:{dues[0].number}" if dues else f"postings:{postings[0].id}"
    return await ctx.request(ledger.CreateTransfers(transfers=debits + postings), step=STEP_POST,
                             key=f"{business_date}:{key}", state={"business_date": business_date.isoformat()})  # fmt: skip


_POSTING_WORDS = {
    "accrual": "Loan interest accrued", "suspension": "Loan interest to suspense (defaulted)",
    "release": "Loan interest in suspense received", "restore": "Loan interest from suspense (recovered)",
}  # fmt: skip


def _posting(row: Any, business_date: dt.date) -> ledger.NewTransfer:
    currency = row["currency"].strip()
    return ledger.NewTransfer(id=row["posting_id"], debit_account_id=ledger.bank_account_id(row["debit_code"], currency),
                              credit_account_id=ledger.bank_account_id(row["credit_code"], currency), amount=row["amount"],
                              currency=currency, code=f"loan_{row['kind']}", reference=f"LOANS-{row['business_date']:%Y%m%d}",
                              narration=f"{_POSTING_WORDS[row['kind']]} {row['business_date']}")  # fmt: skip


async def posted(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The ledger's results: each instalment paid or partly paid by what it could take (interest
    received clears its suspense first); each posting posted; then the next round."""
    business_date = dt.date.fromisoformat(state["business_date"])
    if not reply.ok:
        reason = reply.error.message if reply.error else "no result"
        await ctx.emit(c.LoanCobStepReported(business_date=business_date, step=STEP, status=day.StepStatus.failed,
                                             error=f"the ledger refused the repayments: {reason}"[:1000], occurred_at=ctx.now))  # fmt: skip
        return _DONE
    results = ledger.CreateTransfersResult.model_validate(reply.result).results
    moved = {r.id: (r.amount or 0) if r.result in IN_THE_LEDGER else 0 for r in results}
    answered, refused = await store.finish_postings(ctx.conn, {r.id: str(r.result) for r in results})
    answer = []  # (due, interest taken, principal taken): the instalments this answer settles
    for due in await store.asked_instalments(ctx.conn, business_date):
        ids = repayment.part_ids(due)
        if ids and not any(i in moved for i in ids):
            continue  # asked in another round, whose answer is still coming
        answer.append((due, repayment.interest_taken(due, moved), moved.get(repayment.principal_transfer_id(due.loan_id, due.number), 0)))
    settled = await store.settle_instalments(ctx.conn, [(due, interest, principal, repayment.settled(due, interest, principal).value)
                                                        for due, interest, principal in answer])  # fmt: skip
    released: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    taken = []
    for due, interest, principal in answer:
        if (freed := settled.get((due.loan_id, due.number))) is None:
            continue  # settled by an earlier answer
        answered += 1
        released[due.currency, accrual.SUSPENSE, accrual.INCOME] += freed
        assert due.customer_id is not None
        taken.append(receipts.Receipt(due.loan_id, due.customer_id, due.loan_number, c.LoanPaymentKind.instalment, interest + principal,
                                      business_date, instalment=due.number))  # fmt: skip
    await receipts.received(ctx, taken)
    if not answered:
        # A second answer to a round asked twice (the day worker re-asked the step while the first
        # ask was with the ledger): the first answer settled it and went on. Going on again would
        # run a second chain of rounds beside the first, and the step could report done early.
        return _DONE
    await store.insert_postings(ctx.conn, business_date, "release", released)
    if refused:  # the bank's own accounts refused a posting: the books would not agree, so the close stops here
        await ctx.emit(c.LoanCobStepReported(business_date=business_date, step=STEP, status=day.StepStatus.failed,
                                             error=f"the ledger refused bank-side postings: {'; '.join(refused)}"[:1000],
                                             occurred_at=ctx.now))  # fmt: skip
        return _DONE
    return await _round(ctx, business_date)


_TURNS: dict[c.LoanStatus, type[c.LoanFact]] = {
    c.LoanStatus.overdue: c.LoanPaymentOverdue, c.LoanStatus.defaulted: c.LoanDefaulted, c.LoanStatus.active: c.LoanRecovered,
}  # fmt: skip


async def _delinquency(ctx: Context, business_date: dt.date) -> None:
    """After the day's collections: each loan's days past due, bucket and status; a change of
    status is told. Turning defaulted moves its accrued, unreceived interest from income to
    suspense; turning active again moves what is left in suspense back (§5 "Accrual")."""
    moves: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    for row in await store.delinquency(ctx.conn, business_date):
        dpd = repayment.days_past_due(row["oldest_owing"], business_date)
        status = repayment.delinquent_status(c.LoanStatus(row["status"]), dpd)
        if (row["status"], row["days_past_due"]) == (status, dpd):
            continue
        loan = await store.loan(ctx.conn, row["loan_id"])
        assert loan is not None
        if status == c.LoanStatus.defaulted != loan.status:
            moves["suspension", loan.currency, accrual.INCOME, accrual.SUSPENSE] += await store.suspend_interest(ctx.conn, loan.loan_id)
        elif loan.status == c.LoanStatus.defaulted != status:
            moves["restore", loan.currency, accrual.SUSPENSE, accrual.INCOME] += await store.restore_interest(ctx.conn, loan.loan_id)
        before = loan.status
        loan = loan.model_copy(update={"status": status, "days_past_due": dpd, "bucket": repayment.bucket(dpd), "updated_at": ctx.now})
        await store.save_loan(ctx.conn, loan)
        if (fact := _TURNS.get(status)) and status != before:
            await ctx.emit(fact(loan_id=loan.loan_id, customer_id=loan.customer_id, number=loan.number, days_past_due=dpd,
                                bucket=loan.bucket, business_date=business_date, occurred_at=ctx.now))  # fmt: skip
    for kind in ("suspension", "restore"):
        await store.insert_postings(ctx.conn, business_date, kind, {k[1:]: v for k, v in moves.items() if k[0] == kind})


async def _penalties(ctx: Context, business_date: dt.date) -> None:
    """§5: each day past its due date adds to an instalment's penalty, on what it owes then, and
    past the grace days the product's late fee is charged once; the ledger books both when they
    are paid. Accrued through the business date (a weekend at Monday's close)."""
    rows = await store.owing_past_due(ctx.conn, business_date)
    additions = [(r["loan_id"], r["number"],
                  repayment.penalty_additions(r["owing"], r["penalty_rate_bps"], r["due_date"], r["penalty_through"], business_date),
                  repayment.late_fee_due((business_date - r["due_date"]).days, r["grace_days"], r["charged"], r["late_fee"]))
                 for r in rows]  # fmt: skip
    await store.add_penalties(ctx.conn, additions, business_date)
    charged: defaultdict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for loan_id, _, penalty, fee in additions:
        charged[loan_id][0] += penalty
        charged[loan_id][1] += fee
    for row in await store.penalty_standing(ctx.conn, [k for k, (p, f) in charged.items() if p or f]):
        loan = c.LoanView.model_validate(row["view"])
        penalty, fee = charged[loan.loan_id]
        await ctx.emit(c.LoanPenaltyCharged(loan_id=loan.loan_id, customer_id=loan.customer_id, number=loan.number,
                                            days_past_due=loan.days_past_due, bucket=loan.bucket, amount=penalty, late_fees=fee,
                                            penalties_due=row["penalties_due"], charges_due=row["charges_due"],
                                            business_date=business_date, occurred_at=ctx.now))  # fmt: skip


async def _remind(ctx: Context, business_date: dt.date) -> None:
    """Each instalment falling due within the next 3 days, told once."""
    for r in await store.to_remind(ctx.conn, business_date, business_date + dt.timedelta(days=REMIND_DAYS)):
        await ctx.emit(c.InstalmentDue(loan_id=r["loan_id"], customer_id=r["customer_id"], number=r["loan_number"],
                                       instalment=r["number"], due_date=r["due_date"], amount=r["amount"],
                                       linked_account_id=r["linked_account_id"], occurred_at=ctx.now))  # fmt: skip


async def _report(ctx: Context, business_date: dt.date) -> None:
    await ctx.emit(c.LoanCobStepReported(business_date=business_date, step=STEP, status=day.StepStatus.done,
                                         result=await store.repayments_on(ctx.conn, business_date), occurred_at=ctx.now))  # fmt: skip
