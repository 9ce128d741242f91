"""Loans (banking-rules §5): an approved application disbursed in one tranche through the ledger,
as two saga steps (the loan's ledger account, then one linked chain of the money); the loan reads.
The application is locked while it is asked, so a second disbursement waits and is refused."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bus.actor import owner_only
from bus.handling import Context, Deferred
from contracts import ledger
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import disbursement, schedule

STEP_ACCOUNT = "loan_ledger_account"  # the ledger's answer: the loan's account made
STEP_MONEY = "loan_disbursement"  # the ledger's answer: the chain that moves the money
STEP_PAYOUT = "loan_payout"  # the payment worker's answer: the disbursement's payment order onwards
IN_THE_LEDGER = ("ok", "exists")


async def disburse(ctx: Context, cmd: c.DisburseLoan) -> Reply | Deferred:
    found = await store.application(ctx.conn, cmd.application_id, for_update=True)
    if found is None:
        return Reply.refusal(c.LoanError.application_not_found, f"no loan application {cmd.application_id}")
    application = found[0]
    if existing := await store.loan(ctx.conn, cmd.loan_id):
        if existing.application_id == application.application_id:
            return Reply.success(existing)  # a retry: the loan as it stands
        return Reply.refusal(c.LoanError.loan_exists, f"loan {cmd.loan_id} is another application's")
    if refusal := disbursement.disbursement_refusal(application):
        return Reply.refusal(refusal.code, refusal.message, {"status": application.status})
    product = await store.product(ctx.conn, application.product_code, application.product_version)
    business_date = await store.business_date(ctx.conn)
    assert product is not None and application.approved_principal is not None and application.approved_rate_bps is not None
    if business_date is None:
        return Reply.refusal("unavailable", "the business date is not known yet: disburse once the day has opened")
    principal, rate_bps = application.approved_principal, application.approved_rate_bps
    net, fee = schedule.net_disbursement(principal, product.processing_fee_bps)
    if cmd.payout is not None and (refusal := disbursement.payout_refusal(cmd.payout, net)):
        return Reply.refusal(c.LoanError.invalid_payout, refusal)
    number = disbursement.loan_number(await store.next_loan_number(ctx.conn))
    loan = c.LoanView(
        loan_id=cmd.loan_id, number=number, application_id=application.application_id, customer_id=application.customer_id,
        product_code=product.code, product_version=product.version, linked_account_id=application.linked_account_id,
        ledger_account_id=cmd.loan_id, principal=principal, currency=application.currency, rate_bps=rate_bps,
        months=application.months, processing_fee=fee, net_disbursed=net, status=c.LoanStatus.disbursing,
        schedule=schedule.schedule(principal, rate_bps, application.months, product.method, product.amortization,
                                   business_date, currency=application.currency),
        created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    await store.insert_loan(ctx.conn, loan)
    await store.save_application(ctx.conn, application.model_copy(update={"loan_id": loan.loan_id, "updated_at": ctx.now}))
    account = disbursement.ledger_account(loan.loan_id, loan.customer_id, loan.currency, number)
    state = {"loan_id": str(loan.loan_id), "actor": cmd.actor,
             "payout": cmd.payout.model_dump(mode="json") if cmd.payout else None}  # fmt: skip
    return await ctx.request(ledger.CreateAccounts(accounts=[account]), step=STEP_ACCOUNT, state=state)


async def account_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The loan's ledger account exists: move the money; refused, the disbursement stops."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None, "a loan is never deleted"
    if loan.status != c.LoanStatus.disbursing:
        return Reply.success(loan)  # a repeated answer
    result = (reply.result or {}).get("results", [{}])[0].get("result") if reply.ok else None
    if result not in IN_THE_LEDGER:
        return await _refused(ctx, loan, str(result or (reply.error.code if reply.error else "refused")))
    chain = disbursement.transfers(loan.loan_id, loan.linked_account_id, loan.currency, loan.net_disbursed, loan.processing_fee,
                                   loan.number)  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_MONEY, state=state)


async def money_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None, "a loan is never deleted"
    if loan.status != c.LoanStatus.disbursing:
        return Reply.success(loan)  # a repeated answer
    if cause := chain_refusal(reply):
        return await _refused(ctx, loan, cause)
    found = await store.application(ctx.conn, loan.application_id, for_update=True)
    assert found is not None
    disbursed_on = await store.business_date(ctx.conn)
    loan = loan.model_copy(update={"status": c.LoanStatus.active, "disbursed_on": disbursed_on, "updated_at": ctx.now})
    await store.save_loan(ctx.conn, loan)
    await store.insert_instalments(ctx.conn, loan.loan_id, loan.schedule)
    await store.save_application(ctx.conn, found[0].model_copy(update={"status": c.ApplicationStatus.disbursed,
                                                                         "updated_at": ctx.now}))  # fmt: skip
    await ctx.emit(c.LoanDisbursed(loan=loan, occurred_at=ctx.now))
    if state.get("payout"):
        order = disbursement.payout_order(loan, c.LoanPayout.model_validate(state["payout"]), state.get("actor") or "system")
        return await ctx.request(order, step=STEP_PAYOUT, state=state)
    return Reply.success(loan)


async def payout_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The payment order is placed (or refused: the money stays in the linked account, with why)."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None, "a loan is never deleted"
    if loan.payout is None:
        asked = c.LoanPayout.model_validate(state["payout"])
        placed = (reply.result or {}).get("status", "initiated") if reply.ok else "refused"
        refusal = None if reply.ok else f"{reply.error.code}: {reply.error.message}" if reply.error else "refused"
        loan = loan.model_copy(update={"payout": c.LoanPayoutView(**asked.model_dump(), payment_id=disbursement.payout_id(loan.loan_id),
                                                                   status=placed, refusal=refusal), "updated_at": ctx.now})  # fmt: skip
        await store.save_loan(ctx.conn, loan)
    return Reply.success(await with_instalments(ctx, loan))


def chain_refusal(reply: Reply) -> str | None:
    """None when every transfer of a linked chain is in the ledger (`ok`, or `exists` on a repeat);
    else why not: the first result that is not merely a linked failure, or the whole reply's error."""
    results = [r.get("result") for r in (reply.result or {}).get("results", [])] if reply.ok else []
    if results and all(r in IN_THE_LEDGER for r in results):
        return None
    cause = next((r for r in results if r not in (*IN_THE_LEDGER, "linked_event_failed")), None)
    return str(cause or (reply.error.code if reply.error else "linked_event_failed"))


async def _refused(ctx: Context, loan: c.LoanView, cause: str) -> Reply:
    """The loan stays refused, with why; its application is approved again, free for another try."""
    await store.save_loan(ctx.conn, loan.model_copy(update={"status": c.LoanStatus.refused, "refusal": cause, "updated_at": ctx.now}))
    found = await store.application(ctx.conn, loan.application_id, for_update=True)
    assert found is not None
    await store.save_application(ctx.conn, found[0].model_copy(update={"loan_id": None, "updated_at": ctx.now}))
    return Reply.refusal(c.LoanError.disbursement_refused, f"the ledger would not disburse it: {cause}", {"ledger_result": cause})


async def readable(ctx: Context, loan_id: UUID) -> c.LoanView | Reply:
    """The loan, when the asker may read it (a customer: their own); else the refusal."""
    loan = await store.loan(ctx.conn, loan_id)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {loan_id}")
    return owner_only(ctx.actor, loan.customer_id) or loan


async def get_loan(ctx: Context, cmd: c.GetLoan) -> Reply:
    loan = await readable(ctx, cmd.loan_id)
    return loan if isinstance(loan, Reply) else Reply.success(await with_instalments(ctx, loan))


async def get_schedule(ctx: Context, cmd: c.GetLoanSchedule) -> Reply:
    loan = await readable(ctx, cmd.loan_id)
    if isinstance(loan, Reply):
        return loan
    loan = await with_instalments(ctx, loan)
    return Reply.success(c.LoanScheduleView(loan_id=loan.loan_id, number=loan.number, status=loan.status, schedule=loan.schedule,
                                            instalments=loan.instalments))  # fmt: skip


async def list_customer_loans(ctx: Context, cmd: c.ListCustomerLoans) -> Reply:
    if refusal := owner_only(ctx.actor, cmd.customer_id):
        return refusal
    return Reply.success(c.LoanList(items=await store.loans_of(ctx.conn, cmd.customer_id, cmd.limit)))


async def with_instalments(ctx: Context, loan: c.LoanView) -> c.LoanView:
    """The loan with what was paid of each instalment (being collected reads as pending), the
    restructured ones of an earlier schedule too."""
    shown = ("paid", "partially_paid", "foreclosed", "written_off", "restructured")
    instalments = [c.InstalmentView(**{k: r[k] for k in ("number", "due_date", "principal", "interest", "paid_principal",
                                                         "paid_interest", "penalty_due", "penalty_paid", "charges_due", "charges_paid",
                                                         "balance_after")},  # fmt: skip
                                    amount=r["principal"] + r["interest"], status=r["status"] if r["status"] in shown else "pending")
                   for r in await store.instalments_of(ctx.conn, loan.loan_id)]  # fmt: skip
    return loan.model_copy(update={"instalments": instalments})
