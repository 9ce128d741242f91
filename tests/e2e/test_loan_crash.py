"""A SIGKILL of the loan worker during a close of business with loans due: each instalment debited once.

The `loan.repayments` step asks the ledger for rounds of `ROUND` instalments (500), each round one
ledger batch and one transaction that settles it and asks the next. 200 loans would be one round,
settled in one transaction: nothing to be caught halfway. So 200 more than a full round fall due
together, and the worker is killed as soon as the first round is settled, while the second is
with the ledger; restarted, it takes the ledger's answer from its replies queue and finishes.
Every tenth account keeps only 500.00 above its floor, so its instalment is partly paid.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from bus.settings import load
from contracts import ledger as c
from ops.bench import loans as bench
from ops.bench import transfers as bt
from tests.e2e.conftest import Cluster
from workers.loan.domain.repayment import interest_transfer_id, principal_transfer_id
from workers.loan.handlers.repayments import ROUND

pytestmark = pytest.mark.e2e

LOANS = ROUND + 200
SHORT_EVERY = 10  # every tenth account is short of its instalment
ABOVE_FLOOR = 50_000  # what a short account keeps above its floor: 500.00 (and the interest posted before it falls due)
FLOOR = 10_000  # the savings product's minimum balance, 100.00
LAST_DAY = 24  # disbursed by the 24th: the due date's close is never a month's end (no charges, no interest posted)
POLL_S = 0.005


def _expected(loan: bench.Loan, balance: int) -> tuple[int, int]:
    """(interest, principal) the balancing debits take from `balance`: what is above the floor, interest first."""
    interest = min(balance - FLOOR, loan.interest)
    return interest, min(balance - FLOOR - interest, loan.principal)


async def _shorten(sender: bt.Sender, accounts: list[uuid.UUID]) -> None:
    """Cash withdrawn from each of `accounts`, down to `ABOVE_FLOOR` over its floor."""
    found = await _balances(sender, accounts)
    withdrawals = [c.NewTransfer(id=uuid.uuid4(), debit_account_id=a, credit_account_id=bt.vault_id(bt.CURRENCY),
                                 amount=found[a] - FLOOR - ABOVE_FLOOR, currency=bt.CURRENCY, code="withdrawal",
                                 narration="Cash withdrawal") for a in accounts]  # fmt: skip
    for start in range(0, len(withdrawals), c.MAX_BATCH):
        answer = await bench.ok(sender, c.CreateTransfers(transfers=withdrawals[start : start + c.MAX_BATCH]))
        assert {r["result"] for r in answer["results"]} == {"ok"}, answer


async def _accounts(sender: bt.Sender, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    found: dict[uuid.UUID, dict] = {}
    for start in range(0, len(ids), c.MAX_BATCH):
        answer = await bench.ok(sender, c.LookupAccounts(ids=ids[start : start + c.MAX_BATCH]))
        found |= {uuid.UUID(a["id"]): a for a in answer["accounts"]}
    assert len(found) == len(ids)
    return found


async def _balances(sender: bt.Sender, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    return {i: a["balance"] for i, a in (await _accounts(sender, ids)).items()}


async def _settled(db: asyncpg.Connection, loan_ids: list[uuid.UUID]) -> int:
    return await db.fetchval("SELECT count(*) FROM loan.instalment WHERE loan_id = ANY($1::uuid[]) AND number = 1 "
                             "AND status IN ('paid', 'partially_paid')", loan_ids)  # fmt: skip


async def _kill_mid_step(cluster: Cluster, db: asyncpg.Connection, loan_ids: list[uuid.UUID]) -> int:
    """SIGKILL the loan worker once a first round is settled; restart it. How many were settled then."""
    deadline = time.monotonic() + 120
    while (settled := await _settled(db, loan_ids)) == 0:
        assert time.monotonic() < deadline, "the close never settled an instalment"
        await asyncio.sleep(POLL_S)
    cluster.kill("loan")
    at_kill = await _settled(db, loan_ids)  # what the worker had committed when it died
    cluster.start("loan")
    assert settled <= at_kill < len(loan_ids), f"the kill came too late: {at_kill} of {len(loan_ids)} settled"
    return at_kill


async def test_a_sigkilled_loan_worker_mid_close_debits_each_instalment_once(cluster: Cluster, infra: dict[str, str]) -> None:
    async with bt.Sender(bt.Options(via="bus"), load().process_amqp_url("ops")) as sender:
        while (await bench.open_day(sender, timeout_s=120)).business_date.day > LAST_DAY:
            await bench.close(sender)
        made = await bench.set_up(sender, LOANS)
        [due] = {loan.due_date for loan in made}
        short = {loan.loan_id for loan in made[::SHORT_EVERY]}
        await _shorten(sender, [loan.account_id for loan in made if loan.loan_id in short])
        await bench.close_before(sender, due)
        accounts = [loan.account_id for loan in made]
        before = await _balances(sender, accounts)
        loan_ids = [loan.loan_id for loan in made]

        db = await asyncpg.connect(infra["database_url"])
        try:
            collected_on = await bench.start_close(sender)
            at_kill = await _kill_mid_step(cluster, db, loan_ids)
            await bench.open_day(sender, timeout_s=120)
            rows = {r["loan_id"]: r for r in await db.fetch(
                "SELECT loan_id, status, paid_interest, paid_principal FROM loan.instalment "
                "WHERE loan_id = ANY($1::uuid[]) AND number = 1", loan_ids)}  # fmt: skip
            outstanding = dict(await db.fetch(
                "SELECT i.loan_id, (l.view->>'principal')::bigint - sum(i.paid_principal) FROM loan.instalment i "
                "JOIN loan.loan l USING (loan_id) WHERE loan_id = ANY($1::uuid[]) GROUP BY 1, l.view->>'principal'", loan_ids))  # fmt: skip
            posted = await db.fetch(
                "SELECT id, debit_account_id, credit_account_id, amount FROM ledger.transfer "
                "WHERE debit_account_id = ANY($1::uuid[]) AND code IN ('loan_interest', 'loan_repayment')", accounts)  # fmt: skip
            closes = await db.fetchval("SELECT count(*) FROM day.closed_day WHERE business_date = $1", collected_on)
        finally:
            await db.close()
        after = await _balances(sender, accounts)
        owed = await _accounts(sender, loan_ids)
        verify = await sender.bus(c.Verify(), timeout_s=300)

    assert 0 < at_kill < LOANS and collected_on >= due and closes == 1
    assert sum(_expected(loan, before[loan.account_id]) != (loan.interest, loan.principal) for loan in made) == len(short)
    by_account: dict[uuid.UUID, dict[uuid.UUID, tuple[uuid.UUID, int]]] = {}
    for t in posted:
        by_account.setdefault(t["debit_account_id"], {})[t["id"]] = (t["credit_account_id"], t["amount"])
    receivable = c.bank_account_id("loan_interest_receivable", bt.CURRENCY)  # accrued by the due date's close
    for loan in made:
        interest, principal = _expected(loan, before[loan.account_id])
        row = rows[loan.loan_id]
        status = "paid" if (interest, principal) == (loan.interest, loan.principal) else "partially_paid"
        assert (row["status"], row["paid_interest"], row["paid_principal"]) == (status, interest, principal), loan
        # One posted transfer per part, under the ids the domain derives, and no other.
        assert by_account[loan.account_id] == {interest_transfer_id(loan.loan_id, 1): (receivable, interest),
                                               principal_transfer_id(loan.loan_id, 1): (loan.loan_id, principal)}, loan  # fmt: skip
        assert before[loan.account_id] - after[loan.account_id] == interest + principal, loan
        balance = owed[loan.loan_id]["debits_posted"] - owed[loan.loan_id]["credits_posted"]
        assert balance == outstanding[loan.loan_id] == bench.PRINCIPAL - principal, loan
    assert verify.ok and verify.result["ok"], verify  # type: ignore[index]
    cluster.wait_ready()
