"""Loans (banking-rules §5): an approved application disbursed in one tranche through the ledger,
as two saga steps (the loan's ledger account, then one linked chain of the money); the loan reads.
The application is locked while it is asked, so a second disbursement waits and is refused."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from bus.actor import owner_only
from bus.handling import Context, Deferred
from contracts import ledger
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import disbursement, foreclosure, repayment, schedule

STEP_ACCOUNT = "loan_ledger_account"  # the ledger's answer: the loan's account made
STEP_MONEY = "loan_disbursement"  # the ledger's answer: the chain that moves the money
STEP_PAY = "loan_payment"  # the ledger's answer: a manual payment's chain
_IN_THE_LEDGER = ("ok", "exists")


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
    return await ctx.request(ledger.CreateAccounts(accounts=[account]), step=STEP_ACCOUNT, state={"loan_id": str(loan.loan_id)})


async def account_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The loan's ledger account exists: move the money; refused, the disbursement stops."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None, "a loan is never deleted"
    if loan.status != c.LoanStatus.disbursing:
        return Reply.success(loan)  # a repeated answer
    result = (reply.result or {}).get("results", [{}])[0].get("result") if reply.ok else None
    if result not in _IN_THE_LEDGER:
        return await _refused(ctx, loan, str(result or (reply.error.code if reply.error else "refused")))
    chain = disbursement.transfers(loan.loan_id, loan.linked_account_id, loan.currency, loan.net_disbursed, loan.processing_fee,
                                   loan.number)  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_MONEY, state=state)


async def money_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None, "a loan is never deleted"
    if loan.status != c.LoanStatus.disbursing:
        return Reply.success(loan)  # a repeated answer
    results = [r.get("result") for r in (reply.result or {}).get("results", [])] if reply.ok else []
    if not results or any(r not in _IN_THE_LEDGER for r in results):
        cause = next((r for r in results if r not in (*_IN_THE_LEDGER, "linked_event_failed")), None)
        return await _refused(ctx, loan, str(cause or (reply.error.code if reply.error else "linked_event_failed")))
    found = await store.application(ctx.conn, loan.application_id, for_update=True)
    assert found is not None
    disbursed_on = await store.business_date(ctx.conn)
    loan = loan.model_copy(update={"status": c.LoanStatus.active, "disbursed_on": disbursed_on, "updated_at": ctx.now})
    await store.save_loan(ctx.conn, loan)
    await store.insert_instalments(ctx.conn, loan.loan_id, loan.schedule.instalments)
    await store.save_application(ctx.conn, found[0].model_copy(update={"status": c.ApplicationStatus.disbursed,
                                                                         "updated_at": ctx.now}))  # fmt: skip
    await ctx.emit(c.LoanDisbursed(loan=loan, occurred_at=ctx.now))
    return Reply.success(loan)


async def _refused(ctx: Context, loan: c.LoanView, cause: str) -> Reply:
    """The loan stays refused, with why; its application is approved again, free for another try."""
    await store.save_loan(ctx.conn, loan.model_copy(update={"status": c.LoanStatus.refused, "refusal": cause, "updated_at": ctx.now}))
    found = await store.application(ctx.conn, loan.application_id, for_update=True)
    assert found is not None
    await store.save_application(ctx.conn, found[0].model_copy(update={"loan_id": None, "updated_at": ctx.now}))
    return Reply.refusal(c.LoanError.disbursement_refused, f"the ledger would not disburse it: {cause}", {"ledger_result": cause})


async def get_loan(ctx: Context, cmd: c.GetLoan) -> Reply:
    loan = await store.loan(ctx.conn, cmd.loan_id)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    return owner_only(ctx.actor, loan.customer_id) or Reply.success(await _with_instalments(ctx, loan))


async def list_customer_loans(ctx: Context, cmd: c.ListCustomerLoans) -> Reply:
    if refusal := owner_only(ctx.actor, cmd.customer_id):
        return refusal
    return Reply.success(c.LoanList(items=await store.loans_of(ctx.conn, cmd.customer_id, cmd.limit)))


async def _with_instalments(ctx: Context, loan: c.LoanView) -> c.LoanView:
    """The loan with what was paid of each instalment (being collected reads as pending)."""
    rows = await store.instalments_of(ctx.conn, loan.loan_id)
    instalments = [c.InstalmentView(**{k: r[k] for k in ("number", "due_date", "principal", "interest", "paid_principal",
                                                         "paid_interest", "penalty_due", "penalty_paid")},  # fmt: skip
                                    amount=r["principal"] + r["interest"], balance_after=i.balance_after,
                                    status=r["status"] if r["status"] in ("paid", "partially_paid", "foreclosed") else "pending")
                   for r, i in zip(rows, loan.schedule.instalments, strict=True)]
    return loan.model_copy(update={"instalments": instalments})


# --- a manual payment of what is due -------------------------------------------------------------------


async def pay(ctx: Context, cmd: c.PayLoan) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, cmd.loan_id, for_update=True)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    if refusal := owner_only(ctx.actor, loan.customer_id):
        return refusal
    if (made := await store.payment(ctx.conn, cmd.payment_id)) is not None:
        if (made["loan_id"], made["amount"]) != (loan.loan_id, cmd.amount):
            return Reply.refusal(c.LoanError.payment_exists, f"payment {cmd.payment_id} was made with other fields")
        if made["status"] == "refused":
            return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {made['refusal']}",
                                 {"ledger_result": made["refusal"]})  # fmt: skip
        return Reply.success(await _with_instalments(ctx, loan))  # a retry: paid once
    if loan.status not in (c.LoanStatus.active, c.LoanStatus.overdue, c.LoanStatus.defaulted):
        return Reply.refusal(c.LoanError.loan_not_active, f"loan {loan.number} is {loan.status}")
    business_date = await store.business_date(ctx.conn)
    assert business_date is not None, "an active loan was disbursed on a business date"
    product = await store.product(ctx.conn, loan.product_code, loan.product_version)
    assert product is not None, "a product version is never deleted"
    rows = await store.owed_instalments(ctx.conn, loan.loan_id, business_date)
    waived = {r["number"]: (business_date - r["due_date"]).days <= product.grace_days for r in rows}
    owed = [repayment.Owed(r["number"], r["interest"], r["principal"],
                           repayment.penalty_owed(r["penalty_due"], r["penalty_paid"], (business_date - r["due_date"]).days,
                                                  product.grace_days)) for r in rows]  # fmt: skip
    shares = repayment.allocate(owed, cmd.amount)
    if isinstance(shares, tuple):
        code, message, details = shares
        return Reply.refusal(code, message, details)
    before = {r["number"]: r["status"] for r in rows}
    kept = [{"number": s.number, "interest": s.interest, "principal": s.principal, "penalty": s.penalty,
             "waive": waived[s.number], "before": before[s.number]} for s in shares]  # fmt: skip
    await store.insert_payment(ctx.conn, cmd.payment_id, loan.loan_id, cmd.amount, kept, ctx.now)
    chain = repayment.payment_transfers(loan.loan_id, cmd.payment_id, loan.linked_account_id, loan.currency, loan.number, shares)
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_PAY,
                             state={"loan_id": str(loan.loan_id), "payment_id": str(cmd.payment_id)})  # fmt: skip


async def payment_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    made = await store.payment(ctx.conn, UUID(state["payment_id"]))
    assert loan is not None and made is not None, "loans and payments are never deleted"
    if made["status"] == "asked":
        results = [r.get("result") for r in (reply.result or {}).get("results", [])] if reply.ok else []
        taken = bool(results) and all(r in _IN_THE_LEDGER for r in results)
        cause = None if taken else str(next((r for r in results if r not in (*_IN_THE_LEDGER, "linked_event_failed")), None)
                                       or (reply.error.code if reply.error else "linked_event_failed"))  # fmt: skip
        await store.finish_payment(ctx.conn, made["payment_id"], loan.loan_id, made["shares"], refusal=cause)
        made = await store.payment(ctx.conn, made["payment_id"])
        assert made is not None
    if made["status"] == "refused":
        return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {made['refusal']}",
                             {"ledger_result": made["refusal"]})  # fmt: skip
    return Reply.success(await _with_instalments(ctx, loan))


# --- foreclosure (§5: full prepayment only) --------------------------------------------------------------

STEP_FORECLOSE = "loan_foreclosure"  # the ledger's answer: the foreclosure's chain
STEP_CLOSE_ACCOUNT = "loan_account_close"  # the ledger's answer: the loan's account closed
_RUNNING = (c.LoanStatus.active, c.LoanStatus.overdue, c.LoanStatus.defaulted)


async def _quote(ctx: Context, loan: c.LoanView) -> tuple[foreclosure.Quote, Any, list[foreclosure.Line]]:
    product = await store.product(ctx.conn, loan.product_code, loan.product_version)
    business_date = await store.business_date(ctx.conn)
    assert product is not None and business_date is not None and loan.disbursed_on is not None
    lines = await store.lines(ctx.conn, loan.loan_id, for_update=True)
    q = foreclosure.quote(lines, business_date, loan.disbursed_on, loan.rate_bps, product.prepayment_charge_bps, product.grace_days)
    return q, (business_date, product.grace_days), lines


def _quote_view(loan: c.LoanView, business_date: Any, q: foreclosure.Quote) -> c.ForeclosureQuoteView:
    return c.ForeclosureQuoteView(loan_id=loan.loan_id, business_date=business_date, outstanding_principal=q.outstanding_principal,
                                  interest=q.interest, arrears=q.arrears_interest + q.arrears_principal,
                                  arrears_interest=q.arrears_interest, arrears_principal=q.arrears_principal,
                                  penalties=q.penalties, prepayment_charge=q.prepayment_charge, total=q.total)  # fmt: skip


async def get_foreclosure_quote(ctx: Context, cmd: c.GetForeclosureQuote) -> Reply:
    loan = await store.loan(ctx.conn, cmd.loan_id)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    if refusal := owner_only(ctx.actor, loan.customer_id):
        return refusal
    if loan.status not in _RUNNING:
        return Reply.refusal(c.LoanError.loan_not_active, f"loan {loan.number} is {loan.status}")
    q, (business_date, _), _ = await _quote(ctx, loan)
    return Reply.success(_quote_view(loan, business_date, q))


async def foreclose(ctx: Context, cmd: c.ForecloseLoan) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, cmd.loan_id, for_update=True)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    if refusal := owner_only(ctx.actor, loan.customer_id):
        return refusal
    if (made := await store.payment(ctx.conn, cmd.payment_id)) is not None:
        if (made["loan_id"], made["amount"]) != (loan.loan_id, cmd.amount):
            return Reply.refusal(c.LoanError.payment_exists, f"payment {cmd.payment_id} was made with other fields")
        if made["status"] == "refused":
            return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {made['refusal']}",
                                 {"ledger_result": made["refusal"]})  # fmt: skip
        return Reply.success(await _with_instalments(ctx, loan))  # a retry: paid once
    if loan.status not in _RUNNING:
        return Reply.refusal(c.LoanError.loan_not_active, f"loan {loan.number} is {loan.status}")
    q, (business_date, grace_days), lines = await _quote(ctx, loan)
    if any(x.status in ("asked", "paying") for x in lines):
        return Reply.refusal(c.LoanError.invalid_transition, "an instalment is being collected: foreclose once that is answered")
    if cmd.amount != q.total:
        return Reply.refusal(c.LoanError.quote_changed, f"today's quote is {q.total}",
                             {"quote": _quote_view(loan, business_date, q).model_dump(mode="json")})  # fmt: skip
    before = {str(x.number): x.status for x in lines if x.status not in foreclosure.SETTLED}
    await store.insert_foreclosure(ctx.conn, cmd.payment_id, loan.loan_id, cmd.amount,
                                   {"before": before, "business_date": business_date.isoformat(), "grace_days": grace_days},
                                   ctx.now)  # fmt: skip
    chain = foreclosure.transfers(loan.loan_id, cmd.payment_id, loan.linked_account_id, loan.currency, loan.number, q)
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_FORECLOSE,
                             state={"loan_id": str(loan.loan_id), "payment_id": str(cmd.payment_id)})  # fmt: skip


async def foreclosure_paid(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    made = await store.payment(ctx.conn, UUID(state["payment_id"]))
    assert loan is not None and made is not None, "loans and payments are never deleted"
    if made["status"] == "asked":
        results = [r.get("result") for r in (reply.result or {}).get("results", [])] if reply.ok else []
        taken = bool(results) and all(r in _IN_THE_LEDGER for r in results)
        cause = None if taken else str(next((r for r in results if r not in (*_IN_THE_LEDGER, "linked_event_failed")), None)
                                       or (reply.error.code if reply.error else "linked_event_failed"))  # fmt: skip
        kept = made["shares"]
        await store.finish_foreclosure(ctx.conn, made["payment_id"], loan.loan_id, date.fromisoformat(kept["business_date"]),
                                       kept["grace_days"], kept["before"], refusal=cause)  # fmt: skip
        if cause is not None:
            return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {cause}", {"ledger_result": cause})
        loan = loan.model_copy(update={"status": c.LoanStatus.closing, "days_past_due": 0, "bucket": c.Bucket.current,
                                       "updated_at": ctx.now})  # fmt: skip
        await store.save_loan(ctx.conn, loan)
    elif made["status"] == "refused":
        return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {made['refusal']}",
                             {"ledger_result": made["refusal"]})  # fmt: skip
    if loan.status != c.LoanStatus.closing:
        return Reply.success(await _with_instalments(ctx, loan))
    close = ledger.SetAccountFlags(account_id=loan.ledger_account_id, action="close", actor="system",
                                   reason=f"loan {loan.number} foreclosed")  # fmt: skip
    return await ctx.request(close, step=STEP_CLOSE_ACCOUNT, state=state)


async def account_closed(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The loan's ledger account owes nothing and is closed: so is the loan. A refusal here (a bug:
    the chain left it at exactly zero) leaves the loan `closing` for the operators, with why."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None
    if loan.status == c.LoanStatus.closing and reply.ok:
        loan = loan.model_copy(update={"status": c.LoanStatus.closed, "updated_at": ctx.now})
        await store.save_loan(ctx.conn, loan)
        business_date = await store.business_date(ctx.conn)
        assert business_date is not None
        await ctx.emit(c.LoanClosed(loan_id=loan.loan_id, customer_id=loan.customer_id, number=loan.number, days_past_due=0,
                                    bucket=c.Bucket.current, business_date=business_date, occurred_at=ctx.now))  # fmt: skip
    elif not reply.ok:
        return Reply.refusal(c.LoanError.payment_refused, f"paid, but its ledger account would not close: {reply.error}",
                             {"ledger_error": reply.error.model_dump() if reply.error else None})  # fmt: skip
    return Reply.success(await _with_instalments(ctx, loan))
