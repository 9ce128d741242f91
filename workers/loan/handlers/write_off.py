"""Writing a defaulted loan off, and recoveries afterwards (banking-rules §5; the rules in
workers/loan/domain/write_off.py). A write-off is two saga steps, as a foreclosure's end: one
linked chain (the loss, the write-back), then the loan's ledger account closed. While the ledger
is asked the loan is `writing_off`, which close of business and payments leave alone."""

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
from workers.loan.domain import write_off
from workers.loan.handlers import receipts
from workers.loan.handlers.loans import chain_refusal, with_instalments

STEP_BOOK = "loan_write_off"  # the ledger's answer: the write-off's chain
STEP_CLOSE = "loan_write_off_close"  # the ledger's answer: the loan's account closed
STEP_RECOVERY = "loan_recovery"  # the ledger's answer: a recovery's transfer


async def write_off_loan(ctx: Context, cmd: c.WriteOffLoan) -> Reply | Deferred:
    loan = await store.loan(ctx.conn, cmd.loan_id, for_update=True)
    if loan is None:
        return Reply.refusal(c.LoanError.loan_not_found, f"no loan {cmd.loan_id}")
    if loan.status in (c.LoanStatus.writing_off, c.LoanStatus.written_off):
        return Reply.success(await with_instalments(ctx, loan))  # a retry: the loan as it stands
    if Permission.loans_write_off not in believed_permissions(ctx.actor, cmd.permissions):
        return Reply.refusal(c.LoanError.forbidden, "a write-off needs loans:write_off")
    if loan.status != c.LoanStatus.defaulted:
        return Reply.refusal(c.LoanError.invalid_transition, f"only a defaulted loan is written off; {loan.number} is {loan.status}",
                             {"status": loan.status})  # fmt: skip
    lines = await store.lines(ctx.conn, loan.loan_id, for_update=True)
    if any(x.status in ("asked", "paying") for x in lines):
        return Reply.refusal(c.LoanError.invalid_transition, "an instalment is being collected: write off once that is answered")
    business_date = await store.business_date(ctx.conn)
    assert business_date is not None, "a defaulted loan was disbursed on a business date"
    owed = write_off.claim(lines, business_date)
    view = c.WriteOffView(business_date=business_date, actor=cmd.actor, reason=cmd.reason, principal=owed.principal,
                          interest=owed.interest, penalties=owed.penalties, charges=owed.charges, claim=owed.total)  # fmt: skip
    await store.save_loan(ctx.conn, loan.model_copy(update={"status": c.LoanStatus.writing_off, "write_off": view, "updated_at": ctx.now}))
    state = {"loan_id": str(loan.loan_id)}
    if not (chain := write_off.transfers(loan.loan_id, loan.currency, loan.number, owed)):
        return await _close(ctx, loan, state)  # nothing to book (it owed only penalties, never booked)
    return await ctx.request(ledger.CreateTransfers(transfers=chain), step=STEP_BOOK, state=state)


async def booked(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The loss and the write-back are booked: close the loan's account. Refused: defaulted again, with why."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None, "a loan is never deleted"
    if loan.status != c.LoanStatus.writing_off:
        return Reply.success(await with_instalments(ctx, loan))  # a repeated answer
    if cause := chain_refusal(reply):
        await store.save_loan(ctx.conn, loan.model_copy(update={"status": c.LoanStatus.defaulted, "write_off": None, "updated_at": ctx.now}))
        return Reply.refusal(c.LoanError.write_off_refused, f"the ledger would not book it: {cause}", {"ledger_result": cause})
    return await _close(ctx, loan, state)


async def _close(ctx: Context, loan: c.LoanView, state: dict[str, Any]) -> Deferred:
    await store.write_off_instalments(ctx.conn, loan.loan_id)
    close = ledger.SetAccountFlags(account_id=loan.ledger_account_id, action="close", actor="system",
                                   reason=f"loan {loan.number} written off")  # fmt: skip
    return await ctx.request(close, step=STEP_CLOSE, state=state)


async def account_closed(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """Written off and told. A refusal here (a bug: the chain left the account at exactly zero)
    leaves the loan `writing_off` for the operators, with why."""
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    assert loan is not None and loan.write_off is not None
    if loan.status == c.LoanStatus.writing_off and reply.ok:
        loan = loan.model_copy(update={"status": c.LoanStatus.written_off, "updated_at": ctx.now})
        await store.save_loan(ctx.conn, loan)
        await ctx.emit(c.LoanWrittenOff(loan_id=loan.loan_id, customer_id=loan.customer_id, number=loan.number,
                                        days_past_due=loan.days_past_due, bucket=loan.bucket, write_off=loan.write_off,
                                        business_date=loan.write_off.business_date, occurred_at=ctx.now))  # fmt: skip
    elif not reply.ok:
        return Reply.refusal(c.LoanError.write_off_refused, f"booked, but its ledger account would not close: {reply.error}",
                             {"ledger_error": reply.error.model_dump() if reply.error else None})  # fmt: skip
    return Reply.success(await with_instalments(ctx, loan))


# --- recoveries ------------------------------------------------------------------------------------------


async def recover(ctx: Context, cmd: c.PayLoan, loan: c.LoanView) -> Reply | Deferred:
    """A payment into a written-off loan (already checked new and the asker's): any amount up to
    what is left of the claim, one transfer to recoveries income."""
    assert loan.write_off is not None
    if refusal := write_off.recovery_refusal(cmd.amount, loan.write_off.claim, loan.write_off.recovered):
        code, message, details = refusal
        return Reply.refusal(code, message, details)
    await store.insert_recovery(ctx.conn, cmd.payment_id, loan.loan_id, cmd.amount, ctx.now)
    transfer = write_off.recovery_transfer(cmd.payment_id, loan.linked_account_id, loan.currency, loan.number, cmd.amount)
    return await ctx.request(ledger.CreateTransfers(transfers=[transfer]), step=STEP_RECOVERY,
                             state={"loan_id": str(loan.loan_id), "payment_id": str(cmd.payment_id)})  # fmt: skip


async def recovered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    loan = await store.loan(ctx.conn, UUID(state["loan_id"]), for_update=True)
    made = await store.payment(ctx.conn, UUID(state["payment_id"]))
    assert loan is not None and loan.write_off is not None and made is not None, "loans and payments are never deleted"
    if made["status"] == "asked":
        cause = chain_refusal(reply)
        await store.finish_recovery(ctx.conn, made["payment_id"], refusal=cause)
        if cause is not None:
            return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {cause}", {"ledger_result": cause})
        back = loan.write_off.model_copy(update={"recovered": loan.write_off.recovered + made["amount"]})
        loan = loan.model_copy(update={"write_off": back, "updated_at": ctx.now})
        await store.save_loan(ctx.conn, loan)
        business_date = await store.business_date(ctx.conn)
        assert business_date is not None
        await receipts.received(ctx, [receipts.Receipt(loan.loan_id, loan.customer_id, loan.number, c.LoanPaymentKind.recovery,
                                                       made["amount"], business_date, payment_id=made["payment_id"])])  # fmt: skip
    elif made["status"] == "refused":
        return Reply.refusal(c.LoanError.payment_refused, f"the ledger would not take it: {made['refusal']}",
                             {"ledger_result": made["refusal"]})  # fmt: skip
    return Reply.success(await with_instalments(ctx, loan))
