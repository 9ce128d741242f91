"""`cbs bench --kind payment`: internal payment orders through the edge, as a client places them.

Set-up, all through the edge as the first admin: customers (registered, KYC completed), each with
`ACCOUNTS_PER_CUSTOMER` `current` accounts opened by the account worker (the payment worker learns
them from `account.opened`), each funded by a teller's cash deposit. Load: `POST /v1/payments`
(kind `internal`, channel `api`, 1.00–10.00 between a random distinct payer and payee), with the
load shapes of the transfers bench (ops/bench/transfers.py: closed or open loop, uniform, Zipf or
hot). Counted: 201s whose payment is `completed`; every other answer by its refusal code. Then
`ledger.verify`. Small amounts from well-funded `current` accounts stay under the daily and
monthly limits and the approval and large-amount thresholds; the velocity rule (> 5 payments an
hour from one account) only makes the fraud level medium.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from datetime import date
from typing import Any

from ops.bench import cpu, quiet
from ops.bench import transfers as bt
from ops.bench.register import registration

ACCOUNTS_PER_CUSTOMER = 10
PRODUCT = "current"
FUNDING = 10_000_000  # 100,000.00 an account: a run's payments are 1.00–10.00
AMOUNTS = (100, 1_000)  # minor units
KYC_DOCUMENTS = ("national_id", "utility_bill", "photo")
SETTLE_S = 30  # how long set-up waits for one worker to learn what another did
NOT_YET = {
    "/v1/accounts": {"customer_unknown", "customer_not_eligible"},  # KYC not yet seen by accounts
    "/v1/payments": {"account_not_found", "account_not_active"},  # account not yet seen by payments
}


async def _created(sender: bt.Sender, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST until 201, while the refusal only says the other worker has not caught up yet (a new key
    each time: a refusal is the stored answer of its key). A 202 (no reply within the edge's wait,
    on a loaded machine) is asked again under the same key: the stored reply comes back."""
    deadline = time.monotonic() + SETTLE_S
    key = uuid.uuid4().hex
    while True:
        status, answer = await sender.post(path, body, key=key)
        if status == 201:
            return dict(answer)
        if status == 202 and time.monotonic() < deadline:
            continue
        key = uuid.uuid4().hex
        code = answer.get("code") if isinstance(answer, dict) else None
        if code not in NOT_YET.get(path, ()) or time.monotonic() > deadline:
            raise RuntimeError(f"set-up: POST {path} answered {status}: {answer}")
        await asyncio.sleep(0.2)


async def _customer(sender: bt.Sender, run: str, i: int) -> str:
    body = registration(run, i)
    await _created(sender, "/v1/customers", body)
    customer = body["customer_id"]
    for document_type in KYC_DOCUMENTS:
        document_id = str(uuid.uuid4())
        await _created(sender, f"/v1/customers/{customer}/kyc/documents", {
            "document_id": document_id, "document_type": document_type, "number": f"{document_type}-{run}-{i}",
            "issuer": "Bench", "issue_date": date.today().isoformat(),
        })  # fmt: skip
        status, answer = await sender.post(f"/v1/customers/{customer}/kyc/verify", {"document_id": document_id})
        if status != 200:
            raise RuntimeError(f"set-up: KYC verify answered {status}: {answer}")
    return str(customer)


async def _account(sender: bt.Sender, customer: str) -> uuid.UUID:
    account = uuid.uuid4()
    opening = {"account_id": str(account), "customer_id": customer, "product_code": PRODUCT}
    await _created(sender, "/v1/accounts", opening)
    deposit = await _created(sender, "/v1/payments", {
        "payment_id": str(uuid.uuid4()), "kind": "cash_deposit", "channel": "branch",
        "payee": {"account_id": str(account)}, "amount": FUNDING, "currency": bt.CURRENCY,
    })  # fmt: skip
    if deposit["status"] != "completed":
        raise RuntimeError(f"set-up: the funding deposit is {deposit['status']}")
    return account


async def set_up(sender: bt.Sender, count: int, parallel: int) -> list[uuid.UUID]:
    """`count` funded current accounts, `ACCOUNTS_PER_CUSTOMER` a customer, `parallel` request chains at a time."""
    run = uuid.uuid4().hex[:8]
    # One gate for every request chain, customers' and accounts' alike: a burst of a thousand
    # openings at once would outwait the edge's reply timeout on a small machine.
    gate = asyncio.Semaphore(parallel)

    async def gated(work: Any) -> Any:
        async with gate:
            return await work

    async def one(i: int, accounts: int) -> list[uuid.UUID]:
        customer = await gated(_customer(sender, run, i))
        return list(await asyncio.gather(*(gated(_account(sender, customer)) for _ in range(accounts))))

    sizes = [min(ACCOUNTS_PER_CUSTOMER, count - start) for start in range(0, count, ACCOUNTS_PER_CUSTOMER)]
    return [a for chunk in await asyncio.gather(*(one(i, n) for i, n in enumerate(sizes))) for a in chunk]


def _order(picker: bt.Picker, rng: random.Random) -> dict[str, Any]:
    payer, payee = picker.pair()
    return {"payment_id": str(uuid.uuid4()), "kind": "internal", "channel": "api", "payer_account_id": str(payer),
            "payee": {"account_id": str(payee)}, "amount": rng.randint(*AMOUNTS), "currency": bt.CURRENCY}  # fmt: skip


async def pay(sender: bt.Sender, order: dict[str, Any]) -> list[str]:
    """The payment's status on a 201, `202_no_reply_in_time`, or the refusal code."""
    status, answer = await sender.post("/v1/payments", order)
    if status == 201:
        return [str(answer["status"])]
    if status == 202:
        return ["202_no_reply_in_time"]
    code = answer.get("code") if isinstance(answer, dict) else None
    return [f"{code} ({status})" if code else f"http_{status}"]


async def run(options: bt.Options, amqp_url: str, database_url: str = "") -> bt.Outcome:
    assert options.via == "edge", "payments are benched through the edge"
    async with bt.Sender(options, amqp_url) as sender:
        t0 = time.perf_counter()
        accounts = await set_up(sender, options.accounts, parallel=options.concurrency)
        opened_s = time.perf_counter() - t0
        quiet_s = await quiet.wait_until_quiet(amqp_url)  # notifications and audit of the set-up are not the load's
        setup = (f"{math.ceil(options.accounts / ACCOUNTS_PER_CUSTOMER)} customers, {len(accounts)} {PRODUCT} "
                 f"accounts opened and funded in {opened_s:.1f} s, the cluster quiet {quiet_s:.1f} s later")  # fmt: skip
        rng = random.Random(7)
        picker = bt.Picker(options, accounts, rng)
        before = cpu.snapshot(database_url)
        tally, elapsed = await bt.drive(options, lambda: pay(sender, _order(picker, rng)))
        split = cpu.per_transfer_ms(before, cpu.snapshot(database_url), sum(tally.results.values()))
        result = await bt.verify_ledger(sender)
    completed = tally.results["completed"]
    text = bt.table(options, tally, elapsed, result, per_command="1 internal payment/order",
                    counted=("payments completed", completed), before=(("set-up", setup),),
                    after=cpu.rows(split, per="payment"))  # fmt: skip
    return bt.Outcome(text, bool(result.get("ok")) and not tally.errors and completed > 0, completed / elapsed)
