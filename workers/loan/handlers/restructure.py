"""Restructuring a loan (the rules in workers/loan/domain/restructure.py): one officer asks for
new terms, another approves them; on approval what the loan owes is taken again as of that day,
its interest capitalised through the ledger (one linked chain, a saga step), and the new schedule
follows the old instalments, which close as `restructured`. While the ledger is asked the loan is
`restructuring`, which close of business and payments leave alone."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bus.actor import believed_permissions
from bus.handling import Context, Deferred
from contracts import ledger
from contracts import loan as c
from contracts.common import Reply
from contracts.identity import Permission
from workers.loan import store
from workers.loan.domain import restructure, schedule
from workers.loan.handlers.loans import chain_refusal, with_instalments

STEP_CAPITALISE = "loan_restructure"  # the ledger's answer: the interest capitalised


async def _drawn(ctx: Context, loan: c.LoanView, restructure_id: UUID, months: int, rate_bps: int, reason: str,
                 requested_by: str) -> tuple[c.RestructureView, restructure.Terms] | Reply:  # fmt: skip
    """The restructuring as of today and what it reschedules, or why it cannot be."""
    product = await store.product(ctx.conn, loan.product_code, loan.product_version)
    business_date = await store.business_date(ctx.conn)
    assert product is not None and business_date is not None
    lines = await store.lines(ctx.conn, loan.loan_id, for_update=True)
    if any(x.status in ("asked", "paying") for x in lines):
        return Reply.refusal(c.LoanError.invalid_transition, "an instalment is being collected: restructure once that is answered")
    t = restructure.terms(lines, business_date, await store.last_instalment_number(ctx.conn, loan.loan_id))
    if refused := restructure.refusal(loan.status, months, rate_bps, product, t):
        return Reply.refusal(refused[0], refused[1], {"status": loan.status})
    drawn = schedule.schedule(t.principal, rate_bps, months, product.method, product.amortization, business_date, currency=loan.currency)
    view = c.RestructureView(restructure_id=restructure_id, status=c.RestructureStatus.requested, months=months, rate_bps=rate_bps,
                             reason=reason, requested_by=requested_by, as_of=business_date,
                             outstanding_principal=t.outstanding_principal, capitalised_interest=t.capitalised_interest,
                             waived_penalties=t.waived_penalties, principal=t.principal, schedule=drawn)  # fmt: skip
    return view, t


async def request(ctx: Context, cmd: c.RequestLoanRestructure) -> Reply:
    loan = await store.loan(ctx.conn, cmd.loan_id, for_update=True)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    waiting = loan.restructure
    if waiting is not None and waiting.restructure_id == cmd.restructure_id:
        if (waiting.months, waiting.rate_bps, waiting.reason) != (cmd.months, cmd.rate_bps, cmd.reason):
            return Reply.refusal(c.LoanError.restructure_exists, f"restructuring {cmd.restructure_id} was asked with other terms")
        return Reply.success(await with_instalments(ctx, loan))  # a retry: the loan as it stands
    if waiting is not None and waiting.status == c.RestructureStatus.requested:
        return Reply.refusal(c.LoanError.invalid_transition, f"restructuring {waiting.restructure_id} waits for approval")
    drawn = await _drawn(ctx, loan, cmd.restructure_id, cmd.months, cmd.rate_bps, cmd.reason, cmd.actor)
    if isinstance(drawn, Reply):
        return drawn
    loan = loan.model_copy(update={"restructure": drawn[0], "updated_at": ctx.now})
    await store.save_loan(ctx.conn, loan)
    return Reply.success(await with_instalments(ctx, loan))


async def approve(ctx: Context, cmd: c.ApproveLoanRestructure) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, cmd.loan_id, for_update=True)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    waiting = loan.restructure
    if waiting is None or waiting.restructure_id != cmd.restructure_id:
        return Reply.refusal(c.LoanError.restructure_not_found, f"no restructuring {cmd.restructure_id} of loan {loan.number}")
    if waiting.status == c.RestructureStatus.approved or loan.status == c.LoanStatus.restructuring:
        return Reply.success(await with_instalments(ctx, loan))  # a retry
    if Permission.loans_approve not in believed_permissions(ctx.actor, cmd.permissions):
        return Reply.refusal(c.LoanError.forbidden, "approving a restructuring needs loans:approve")
    if cmd.actor == waiting.requested_by:
        return Reply.refusal(c.LoanError.same_maker, "the officer who asked for it cannot approve it")
    drawn = await _drawn(ctx, loan, waiting.restructure_id, waiting.months, waiting.rate_bps, waiting.reason, waiting.requested_by)
    if isinstance(drawn, Reply):
        return drawn
    view, t = drawn[0].model_copy(update={"approved_by": cmd.actor}), drawn[1]
    state = {"loan_id": str(loan.loan_id), "before": loan.status.value, "after": t.last_number}
    loan = loan.model_copy(update={"status": c.LoanStatus.restructuring, "restructure": view, "updated_at": ctx.now})
    await store.save_loan(ctx.conn, loan)
    if not (chain := restructure.transfers(loan.loan_id, view.restructure_id, loan.currency, loan.number, t)):
        return await capitalised(ctx, state, Reply.success({"results": [{"result": "ok"}]}))  # nothing to capitalise
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_CAPITALISE, state=state)


async def capitalised(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The interest is principal now: the new schedule is the loan's. Refused: as it was, the
    restructuring still waiting."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None and loan.restructure is not None, "a loan is never deleted"
    if loan.status != c.LoanStatus.restructuring:
        return Reply.success(await with_instalments(ctx, loan))  # a repeated answer
    if cause := chain_refusal(reply):
        await store.save_loan(ctx.conn, loan.model_copy(update={"status": c.LoanStatus(state["before"]), "updated_at": ctx.now}))
        return Reply.refusal(c.LoanError.invalid_transition, f"the ledger would not capitalise the interest: {cause}",
                             {"ledger_result": cause})  # fmt: skip
    done = loan.restructure.model_copy(update={"status": c.RestructureStatus.approved})
    await store.restructure_instalments(ctx.conn, loan.loan_id)
    await store.insert_instalments(ctx.conn, loan.loan_id, done.schedule, after=state["after"])
    loan = loan.model_copy(update={"status": c.LoanStatus.active, "restructure": done, "rate_bps": done.rate_bps, "schedule": done.schedule,
                                   "days_past_due": 0, "bucket": c.Bucket.current, "updated_at": ctx.now})  # fmt: skip
    await store.save_loan(ctx.conn, loan)
    await ctx.emit(c.LoanRestructured(loan_id=loan.loan_id, customer_id=loan.customer_id, number=loan.number, days_past_due=0,
                                      bucket=c.Bucket.current, restructure=done, business_date=done.as_of, occurred_at=ctx.now))  # fmt: skip
    return Reply.success(await with_instalments(ctx, loan))
