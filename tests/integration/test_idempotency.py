"""An idempotency key belongs to one request of one asker (issue: two requests under one key crossed).

Back to back on the bus, in one group-committed batch or the next, another body (or another
asker) under a used message_id is answered `idempotency_key_reused`, never acked without a reply
and never given the first request's result; the same request gets the same answer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from contracts import payment as p
from contracts.common import Reply
from tests.integration.conftest import BusClient
from tests.integration.test_payment_bus import TELLER, balance, deposit, open_account

ROUNDS = 8  # pairs sent at once: several share a batch (2 ms window), some may not; all must hold


def _deposit(to: uuid.UUID, amount: int) -> p.InitiatePayment:
    return p.InitiatePayment(payment_id=uuid.uuid4(), kind=p.PaymentKind.cash_deposit, channel=p.Channel.branch,
                             payee=p.Payee(account_id=to), amount=amount, currency="INR", actor=TELLER)  # fmt: skip


def _code(reply: Reply) -> str | None:
    return reply.error.code if reply.error is not None else None


async def test_two_bodies_under_one_key_each_get_their_own_answer(bus: BusClient, admin_db: Any) -> None:
    account = await open_account(bus, admin_db)
    accepted = 0
    for _ in range(ROUNDS):
        key = uuid.uuid4().hex
        first, second = _deposit(account, 1_000), _deposit(account, 2_000)
        replies = await asyncio.gather(bus.send(first, message_id=key), bus.send(second, message_id=key))
        # Both answered (a timeout raises here); one placed, the other refused, never crossed.
        won = [(cmd, r) for cmd, r in zip((first, second), replies, strict=True) if r.ok]
        lost = [r for r in replies if not r.ok]
        assert len(won) == 1 and [_code(r) for r in lost] == ["idempotency_key_reused"], replies
        [(command, reply)] = won
        assert reply.result["payment_id"] == str(command.payment_id)  # type: ignore[index]
        accepted += command.amount
        # The winner, sent again, gets its own answer again.
        again = await bus.send(command, message_id=key)
        assert again.ok and again.result == reply.result
    assert await balance(bus, account) == (accepted, 0)


async def test_another_asker_under_a_used_key_gets_no_other_askers_result(edge_bus: BusClient, bus: BusClient,
                                                                         admin_db: Any) -> None:  # fmt: skip
    """The same body under the same key from another person (x-actor from the edge) is refused,
    and the operation's reply is readable by its own asker only."""
    account = await open_account(bus, admin_db)
    await deposit(bus, account, 5_000)
    key, command = uuid.uuid4().hex, _deposit(account, 3_000)

    def teller(name: str) -> dict[str, Any]:
        return {"x-actor": json.dumps({"sub": name, "roles": ["teller"]})}

    first = await edge_bus.correlator.send(command, message_id=key, timeout_s=10, headers=teller("teller-a"))
    other = await edge_bus.correlator.send(command, message_id=key, timeout_s=10, headers=teller("teller-b"))
    assert first.ok and _code(other) == "idempotency_key_reused", other
    same = await edge_bus.correlator.send(command, message_id=key, timeout_s=10, headers=teller("teller-a"))
    assert same.ok and same.result == first.result
    assert await balance(bus, account) == (8_000, 0)

    async def operation(asker: str) -> dict[str, Any]:
        reply = await edge_bus.correlator.request("payment.get_operation", {"operation_id": key},
                                                  "common.get_operation.v1", message_id=uuid.uuid4().hex,
                                                  timeout_s=10, headers=teller(asker))  # fmt: skip
        assert reply.ok, reply
        return reply.result  # type: ignore[return-value]

    mine, theirs = await operation("teller-a"), await operation("teller-b")
    assert mine["status"] == "done" and mine["reply"]["result"]["payment_id"] == str(command.payment_id)
    assert theirs["status"] == "unknown" and theirs.get("reply") is None
