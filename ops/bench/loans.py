"""`cbs bench --kind loan-repayment`: close of business's `loan.repayments` step with N instalments due.

Set-up, on the bus as the operator's tools (a service of the bank, naming who acts): customers
(registered, KYC verified by a reviewer), each with `LOANS_PER_CUSTOMER` savings accounts; on each
account a personal loan applied for, submitted by one officer, approved by another (maker-checker)
and disbursed. The disbursement funds the account: 10,000.00 at 12% for 6 months credits 9,900.00
net of its 1% fee, and its first instalment is 1,725.48 (banking-rules §9). Every loan is
disbursed on the open business date, so every first instalment falls due on one date, a month on.

Measured: the business days before that date are closed (not timed), then the close of the due
date, whose `loan.repayments` step debits every instalment. The step's seconds are the day
worker's own record of it (`day.cob_step`: asked → reported, read with the operator's DSN as the
baseline bench reads its database); its result is the loan worker's report (paid, partly paid,
collected). Each of the bench's loans is then checked in the ledger (its own account's credits
are its first instalment's principal), and `ledger.verify` recomputes every balance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from contracts import account as a
from contracts import customer as cu
from contracts import day as d
from contracts import ledger as c
from contracts import loan as ln
from contracts.common import Command
from ops.bench import transfers as bt
from ops.bench.register import registration

STEP = "loan.repayments"
LOANS_PER_CUSTOMER = 10
PRINCIPAL = 1_000_000  # 10,000.00
RATE_BPS = 1_200
MONTHS = 6
MAKER, CHECKER, REVIEWER = "bench-officer-1", "bench-officer-2", "bench-kyc-reviewer"
KYC_DOCUMENTS = (cu.DocumentType.national_id, cu.DocumentType.utility_bill, cu.DocumentType.photo)
SETTLE_S = 60  # how long set-up waits for one worker to learn what another did
NOT_YET = {"customer_unknown", "customer_not_eligible", "not_eligible"}  # the other worker has not caught up
CLOSE_TIMEOUT_S = 600
T = TypeVar("T")


@dataclass(frozen=True)
class Loan:
    """A disbursed loan and its first instalment."""

    loan_id: uuid.UUID
    account_id: uuid.UUID
    due_date: dt.date
    principal: int  # of the first instalment
    interest: int

    @property
    def amount(self) -> int:
        return self.principal + self.interest


async def ok(sender: bt.Sender, command: Command, *, patient: bool = False) -> dict[str, Any]:
    """The command's result; `patient`: asked again (a new message) while the refusal only says
    that a worker has not learnt yet what another did."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        reply = await sender.bus(command, timeout_s=60)
        if reply.ok:
            return dict(reply.result or {})
        code = reply.error.code if reply.error else None
        if not (patient and code in NOT_YET and time.monotonic() < deadline):
            raise RuntimeError(f"set-up: {command.routing_key} answered {reply.error}")
        await asyncio.sleep(0.2)


async def _customer(sender: bt.Sender, run: str, i: int) -> uuid.UUID:
    body = registration(run, i)
    customer_id = uuid.UUID(str(body["customer_id"]))
    await ok(sender, cu.RegisterCustomer.model_validate(body))
    for document_type in KYC_DOCUMENTS:
        document_id = uuid.uuid4()
        await ok(sender, cu.AddKycDocument(customer_id=customer_id, document_id=document_id, document_type=document_type,
                                           number=f"{document_type}-{run}-{i}", issuer="Bench",
                                           issue_date=dt.date.today()))  # fmt: skip
        await ok(sender, cu.VerifyKycDocument(customer_id=customer_id, document_id=document_id, reviewer=REVIEWER))
    return customer_id


async def _loan(sender: bt.Sender, customer_id: uuid.UUID) -> Loan:
    """An account, and a loan on it applied for, submitted, approved by another officer and disbursed."""
    account_id, application_id, loan_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await ok(sender, a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="savings"), patient=True)
    await ok(sender, ln.CreateLoanApplication(
        application_id=application_id, customer_id=customer_id, product_code="personal", linked_account_id=account_id,
        purpose="bench", principal=PRINCIPAL, currency=bt.CURRENCY, months=MONTHS, monthly_income=8_000_000,
        credit_score=780, employment_months=84, actor=f"customer-{customer_id}",
    ))  # fmt: skip
    await ok(sender, ln.SubmitLoanApplication(application_id=application_id, actor=MAKER), patient=True)
    await ok(sender, ln.ApproveLoanApplication(application_id=application_id, principal=PRINCIPAL, rate_bps=RATE_BPS,
                                               permissions=["loans:approve"], actor=CHECKER))  # fmt: skip
    loan = await ok(sender, ln.DisburseLoan(application_id=application_id, loan_id=loan_id, actor=MAKER))
    if loan["status"] != ln.LoanStatus.active:
        raise RuntimeError(f"set-up: the loan is {loan['status']}: {loan.get('refusal')}")
    first = loan["schedule"]["instalments"][0]
    return Loan(loan_id, account_id, dt.date.fromisoformat(first["due_date"]), first["principal"], first["interest"])


async def set_up(sender: bt.Sender, count: int, parallel: int = 32) -> list[Loan]:
    """`count` disbursed loans, `LOANS_PER_CUSTOMER` a customer, `parallel` request chains at a time."""
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(parallel)

    async def gated(work: Awaitable[T]) -> T:
        async with gate:
            return await work

    async def one(i: int, loans: int) -> list[Loan]:
        customer_id = await gated(_customer(sender, run, i))
        return list(await asyncio.gather(*(gated(_loan(sender, customer_id)) for _ in range(loans))))

    sizes = [min(LOANS_PER_CUSTOMER, count - start) for start in range(0, count, LOANS_PER_CUSTOMER)]
    return [loan for chunk in await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes))) for loan in chunk]


# --- closing days --------------------------------------------------------------------------------


async def business_day(sender: bt.Sender) -> d.BusinessDayView:
    return d.BusinessDayView.model_validate(await ok(sender, d.GetBusinessDay()))


async def open_day(sender: bt.Sender, timeout_s: float = CLOSE_TIMEOUT_S) -> d.BusinessDayView:
    """The business day once no close is running (someone else's may be)."""
    deadline = time.monotonic() + timeout_s
    while (view := await business_day(sender)).status != d.DayStatus.open:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the close of {view.business_date} did not finish in {timeout_s} s: {view.steps}")
        await asyncio.sleep(0.1)
    return view


async def start_close(sender: bt.Sender) -> dt.date:
    """Close the open business date (without waiting for it): the date being closed."""
    business_date = (await open_day(sender)).business_date
    await ok(sender, d.CloseDay(business_date=business_date))
    return business_date


async def close(sender: bt.Sender) -> dt.date:
    """Close the open business date and wait for it: the date closed."""
    business_date = await start_close(sender)
    await open_day(sender)
    return business_date


async def close_before(sender: bt.Sender, due: dt.date) -> int:
    """Close every business date before `due`: the next close is the one that collects what falls
    due then (a weekend's at Monday's). How many were closed."""
    closed = 0
    while (await open_day(sender)).business_date < due:
        await close(sender)
        closed += 1
    return closed


# --- the figures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """The day worker's record of one close's step."""

    seconds: float
    attempts: int
    result: dict[str, Any]


async def step_record(database_url: str, business_date: dt.date, step: str = STEP) -> StepRecord:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT asked_at, reported_at, attempts, status, result FROM day.cob_step "
                                  "WHERE business_date = $1 AND step = $2", business_date, step)  # fmt: skip
    finally:
        await conn.close()
    if row is None or row["status"] != d.StepStatus.done:
        raise RuntimeError(f"{step} of {business_date} is not done: {dict(row) if row else None}")
    result = json.loads(row["result"]) if isinstance(row["result"], str) else dict(row["result"] or {})
    return StepRecord((row["reported_at"] - row["asked_at"]).total_seconds(), row["attempts"], result)


async def paid_in_ledger(sender: bt.Sender, loans: list[Loan]) -> int:
    """How many of `loans` the ledger shows repaid by exactly their first instalment's principal."""
    expected = {loan.loan_id: loan.principal for loan in loans}
    paid = 0
    for start in range(0, len(loans), c.MAX_BATCH):
        ids = [loan.loan_id for loan in loans[start : start + c.MAX_BATCH]]
        for found in (await ok(sender, c.LookupAccounts(ids=ids)))["accounts"]:
            paid += found["credits_posted"] == expected[uuid.UUID(found["id"])]
    return paid


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


async def run(count: int, amqp_url: str, database_url: str, parallel: int = 32) -> bt.Outcome:
    async with bt.Sender(bt.Options(via="bus"), amqp_url) as sender:
        t0 = time.perf_counter()
        loans = await set_up(sender, count, parallel)
        setup_s = time.perf_counter() - t0
        dues = {loan.due_date for loan in loans}
        if len(dues) != 1:  # a close ran during set-up (CBS_DAY_CLOSE_AT?): the loans are not due together
            raise RuntimeError(f"the loans fall due on {sorted(dues)}: run the bench while no day closes")
        t0 = time.perf_counter()
        before = await close_before(sender, loans[0].due_date)
        closes_s = time.perf_counter() - t0
        collected_on = await close(sender)
        step = await step_record(database_url, collected_on)
        paid = await paid_in_ledger(sender, loans)
        verify = await bt.verify_ledger(sender)
    done = step.result.get("paid", 0) + step.result.get("partially_paid", 0)
    customers = -(-count // LOANS_PER_CUSTOMER)
    rows = [
        ("kind", "loan-repayment (close of business's loan.repayments step)"),
        ("set-up", f"{count} loans disbursed ({customers} customers, {count} savings accounts) in {setup_s:.1f} s"),
        ("days closed before", f"{before} in {closes_s:.1f} s"),
        ("due date", f"{loans[0].due_date}, collected at the close of {collected_on}"),
        ("instalments collected", f"{done} (paid {step.result.get('paid')}, partly paid {step.result.get('partially_paid')})"),
        ("amount collected", f"{step.result.get('collected')} minor units"),
        ("step seconds", f"{step.seconds:.2f} (asked {step.attempts} time(s))"),
        ("instalments/s", f"{done / step.seconds:.0f}" if step.seconds > 0 else "-"),
        ("bench loans paid", f"{paid} of {count} (the ledger: each loan's account credited its first principal)"),
        ("ledger.verify", "ok" if verify.get("ok") else f"FAILED: {verify.get('mismatches')}"),
        ("verified", f"{verify.get('accounts_checked')} accounts, {verify.get('transfers_checked')} transfers"),
    ]  # fmt: skip
    return bt.Outcome(table(rows), bool(verify.get("ok")) and paid == count, done / step.seconds if step.seconds else 0.0)
