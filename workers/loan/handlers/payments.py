"""Paying a loan by hand (banking-rules §5 "Repayment", "Prepayment / foreclosure"): what is due,
oldest instalment first, penalty before interest before principal; or the whole loan at today's
quote, its ledger account then closed. Each is one linked chain from the linked account, whole or
not at all, its transfer ids derived from the caller's payment id (a retry is paid once)."""

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
from workers.loan.domain import accrual, foreclosure, repayment
from workers.loan.handlers import receipts, write_off
from workers.loan.handlers.loans import chain_refusal, readable, with_instalments

STEP_PAY = "loan_payment"  # the ledger's answer: a manual payment's chain


# --- a manual payment of what is due -------------------------------------------------------------------


RUNNING = (c.LoanStatus.active, c.LoanStatus.overdue, c.LoanStatus.defaulted)


async def _payable(ctx: Context, cmd: c.PayLoan | c.ForecloseLoan, running: tuple[c.LoanStatus, ...] = RUNNING) -> c.LoanView | Reply:
    """The loan, locked, when this payment is new and the asker may pay it; else the answer: unknown,
    another customer's, a retry (paid once, or refused as before), another body, not running."""
    loan = await store.loan(ctx.conn, cmd.loan_id, for_update=True)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    if refusal := owner_only(ctx.actor, loan.customer_id):
        return refusal
    if (made := await store.payment(ctx.conn, cmd.payment_id)) is not None:
        if (made["loan_id"], made["amount"]) != (loan.loan_id, cmd.amount):
            return Reply.refusal(c.LoanError.payment_exists, f"payment {cmd.payment_id} was made with other fields")
        return _answer(made) or Reply.success(await with_instalments(ctx, loan))  # a retry: paid once
    if loan.status not in running:
        return Reply.refusal(c.LoanError.loan_not_active, f"loan {loan.number} is {loan.status}")
    return loan


def _answer(made: Any) -> Reply | None:
    """A payment the ledger refused answers so whenever it is asked again."""
    if made["status"] != "refused":
        return None
    return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {made['refusal']}",
                         {"ledger_result": made["refusal"]})  # fmt: skip


async def pay(ctx: Context, cmd: c.PayLoan) -> Reply | Deferred:
    loan = await _payable(ctx, cmd, (*RUNNING, c.LoanStatus.written_off))
    if isinstance(loan, Reply):
        return loan
    if loan.status == c.LoanStatus.written_off:
        return await write_off.recover(ctx, cmd, loan)
    business_date = await store.business_date(ctx.conn)
    assert business_date is not None, "an active loan was disbursed on a business date"
    product = await store.product(ctx.conn, loan.product_code, loan.product_version)
    assert product is not None, "a product version is never deleted"
    rows = await store.owed_instalments(ctx.conn, loan.loan_id, business_date)
    waived = {r["number"]: (business_date - r["due_date"]).days <= product.grace_days for r in rows}
    owed = [repayment.Owed(r["number"], r["interest"], r["principal"],
                           repayment.penalty_owed(r["penalty_due"], r["penalty_paid"], (business_date - r["due_date"]).days,
                                                  product.grace_days), r["charges"]) for r in rows]  # fmt: skip
    shares = repayment.allocate(owed, cmd.amount)
    if isinstance(shares, tuple):
        code, message, details = shares
        return Reply.refusal(code, message, details)
    by_number = {r["number"]: r for r in rows}
    receipts = {s.number: accrual.receipt(s.interest, by_number[s.number]["receivable"], by_number[s.number]["suspended"])
                for s in shares}  # fmt: skip
    kept = [{"number": s.number, "interest": s.interest, "principal": s.principal, "penalty": s.penalty, "charges": s.charges,
             "released": receipts[s.number].released, "waive": waived[s.number], "before": by_number[s.number]["status"]}
            for s in shares]  # fmt: skip
    await store.insert_payment(ctx.conn, cmd.payment_id, loan.loan_id, cmd.amount, kept, ctx.now)
    interest = accrual.Receipt(*(sum(getattr(r, f) for r in receipts.values()) for f in ("to_receivable", "to_income", "released")))
    chain = repayment.payment_transfers(loan.loan_id, cmd.payment_id, loan.linked_account_id, loan.currency, loan.number, shares,
                                        interest)  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_PAY,
                             state={"loan_id": str(loan.loan_id), "payment_id": str(cmd.payment_id)})  # fmt: skip


async def payment_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    made = await store.payment(ctx.conn, UUID(state["payment_id"]))
    assert loan is not None and made is not None, "loans and payments are never deleted"
    if made["status"] == "asked":
        cause = chain_refusal(reply)
        await store.finish_payment(ctx.conn, made["payment_id"], loan.loan_id, made["shares"], refusal=cause)
        made = await store.payment(ctx.conn, made["payment_id"])
        assert made is not None
        if cause is None:
            await _received(ctx, loan, c.LoanPaymentKind.payment, made)
    return _answer(made) or Reply.success(await with_instalments(ctx, loan))


async def _received(ctx: Context, loan: c.LoanView, kind: c.LoanPaymentKind, made: Any) -> None:
    business_date = await store.business_date(ctx.conn)
    assert business_date is not None
    await receipts.received(ctx, [receipts.Receipt(loan.loan_id, loan.customer_id, loan.number, kind, made["amount"], business_date,
                                                   payment_id=made["payment_id"])])  # fmt: skip


# --- foreclosure (§5: full prepayment only) --------------------------------------------------------------

STEP_FORECLOSE = "loan_foreclosure"  # the ledger's answer: the foreclosure's chain
STEP_CLOSE_ACCOUNT = "loan_account_close"  # the ledger's answer: the loan's account closed


async def _quote(ctx: Context, loan: c.LoanView) -> tuple[foreclosure.Quote, Any, list[foreclosure.Line]]:
    product = await store.product(ctx.conn, loan.product_code, loan.product_version)
    business_date = await store.business_date(ctx.conn)
    assert product is not None and business_date is not None and loan.disbursed_on is not None
    lines = await store.lines(ctx.conn, loan.loan_id, for_update=True)
    q = foreclosure.quote(lines, business_date, loan.schedule.disbursed_on, loan.rate_bps, product.prepayment_charge_bps, product.grace_days)
    return q, (business_date, product.grace_days), lines


def _quote_view(loan: c.LoanView, business_date: Any, q: foreclosure.Quote) -> c.ForeclosureQuoteView:
    return c.ForeclosureQuoteView(loan_id=loan.loan_id, business_date=business_date, outstanding_principal=q.outstanding_principal,
                                  interest=q.interest, arrears=q.arrears_interest + q.arrears_principal,
                                  arrears_interest=q.arrears_interest, arrears_principal=q.arrears_principal,
                                  penalties=q.penalties, charges=q.charges, prepayment_charge=q.prepayment_charge, total=q.total)  # fmt: skip


async def get_foreclosure_quote(ctx: Context, cmd: c.GetForeclosureQuote) -> Reply:
    loan = await readable(ctx, cmd.loan_id)
    if isinstance(loan, Reply):
        return loan
    if loan.status not in RUNNING:
        return Reply.refusal(c.LoanError.loan_not_active, f"loan {loan.number} is {loan.status}")
    q, (business_date, _), _ = await _quote(ctx, loan)
    return Reply.success(_quote_view(loan, business_date, q))


async def foreclose(ctx: Context, cmd: c.ForecloseLoan) -> Reply | Deferred:
    loan = await _payable(ctx, cmd)
    if isinstance(loan, Reply):
        return loan
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
    chain = foreclosure.transfers(loan.loan_id, cmd.payment_id, loan.linked_account_id, loan.currency, loan.number, q, lines)
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_FORECLOSE,
                             state={"loan_id": str(loan.loan_id), "payment_id": str(cmd.payment_id)})  # fmt: skip


async def foreclosure_paid(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    made = await store.payment(ctx.conn, UUID(state["payment_id"]))
    assert loan is not None and made is not None, "loans and payments are never deleted"
    if made["status"] == "asked":
        cause = chain_refusal(reply)
        kept = made["shares"]
        await store.finish_foreclosure(ctx.conn, made["payment_id"], loan.loan_id, date.fromisoformat(kept["business_date"]),
                                       kept["grace_days"], kept["before"], refusal=cause)  # fmt: skip
        if cause is not None:
            return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {cause}", {"ledger_result": cause})
        await _received(ctx, loan, c.LoanPaymentKind.foreclosure, made)
        loan = loan.model_copy(update={"status": c.LoanStatus.closing, "days_past_due": 0, "bucket": c.Bucket.current,
                                       "updated_at": ctx.now})  # fmt: skip
        await store.save_loan(ctx.conn, loan)
    elif refused := _answer(made):
        return refused
    if loan.status != c.LoanStatus.closing:
        return Reply.success(await with_instalments(ctx, loan))
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
    return Reply.success(await with_instalments(ctx, loan))
