"""Many concurrent senders moving money among a few accounts, hot ones included."""

from __future__ import annotations

import asyncio
import random
import uuid

from contracts import ledger as c
from tests.integration.conftest import BusClient

SENDERS = 24
COMMANDS_PER_SENDER = 25
TRANSFERS_PER_COMMAND = 4
OPENING = 50_000  # minor units: small on purpose, so many transfers are refused for funds


async def test_concurrent_transfers_conserve_money_and_respect_every_limit(bus: BusClient) -> None:
    funding = uuid.uuid4()
    guarded = [uuid.uuid4() for _ in range(6)]  # debits_must_not_exceed_credits, one with an overdraft
    await bus.ok(c.CreateAccounts(accounts=[
        c.NewAccount(id=funding, currency="INR", code="suspense"),
        *[c.NewAccount(id=a, currency="INR", code="customer_deposit", overdraft_limit=10_000 if i == 0 else 0,
                       flags=c.AccountFlags(debits_must_not_exceed_credits=True, history=True))
          for i, a in enumerate(guarded)],
    ]))  # fmt: skip
    await bus.ok(c.CreateTransfers(transfers=[
        c.NewTransfer(id=uuid.uuid4(), debit_account_id=funding, credit_account_id=a, amount=OPENING,
                      currency="INR", code="deposit") for a in guarded
    ]))  # fmt: skip
    hot = guarded[0]
    results: list[str] = []

    async def sender(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(COMMANDS_PER_SENDER):
            transfers = []
            for _ in range(TRANSFERS_PER_COMMAND):
                debit = hot if rng.random() < 0.4 else rng.choice(guarded)
                credit = rng.choice([a for a in guarded if a != debit])
                pending = rng.random() < 0.2
                transfers.append(c.NewTransfer(
                    id=uuid.uuid4(), debit_account_id=debit, credit_account_id=credit, amount=rng.randint(1, 9_000),
                    currency="INR", code="internal_transfer", flags=c.TransferFlags(pending=pending),
                ))  # fmt: skip
            reply = await bus.ok(c.CreateTransfers(transfers=transfers), timeout_s=60)
            results.extend(r["result"] for r in reply["results"])

    await asyncio.gather(*(sender(i) for i in range(SENDERS)))

    assert len(results) == SENDERS * COMMANDS_PER_SENDER * TRANSFERS_PER_COMMAND
    assert set(results) <= {"ok", "exceeds_credits"}, set(results)
    assert results.count("ok") > 100 and results.count("exceeds_credits") > 0  # the race was real

    verify = await bus.ok(c.Verify(), timeout_s=60)
    assert verify["ok"], verify["mismatches"]
    found = (await bus.ok(c.LookupAccounts(ids=guarded)))["accounts"]
    assert sum(a["credits_posted"] - a["debits_posted"] for a in found) == OPENING * len(guarded)  # conserved
    for a in found:
        limit = 10_000 if a["id"] == str(hot) else 0
        assert a["debits_posted"] + a["debits_pending"] <= a["credits_posted"] + limit, a
