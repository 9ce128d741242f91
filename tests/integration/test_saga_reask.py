"""A saga step whose answer the broker lost is asked again (bus/saga.py, `reask_unanswered`).

The loss is made for real: a consumer of the test's own, at a higher priority than the worker's
(RabbitMQ gives a message to the highest-priority consumer that has room), takes the message the
worker should have had, the ledger's command or its reply to the payment worker, and acks it: as
if the broker had lost it. The order then waits forever, unless the payment worker asks the
ledger again: it completes, the ledger moved the money once, and its inbox holds the command once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import aio_pika
import asyncpg
import pytest

from bus import saga, topology
from contracts import payment as p
from tests.integration.conftest import BusClient
from tests.integration.test_payment_bus import TELLER, balance, deposit, open_account

LEDGER_QUEUE = topology.command_queue("ledger.create_transfers").name
REPLIES_QUEUE = topology.replies_queue_name("payment")


async def _take_one(channel: aio_pika.abc.AbstractChannel, queue: str) -> asyncio.Future[aio_pika.abc.AbstractIncomingMessage]:
    """The next message of `queue`, taken before its worker sees it and acked: lost to the worker."""
    await channel.set_qos(prefetch_count=1)
    declared = await channel.declare_queue(queue, passive=True)
    taken: asyncio.Future[aio_pika.abc.AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if taken.done():
            await message.nack(requeue=True)  # one is enough: the rest go to the worker
            return
        await message.ack()
        taken.set_result(message)

    await declared.consume(on_message, arguments={"x-priority": 100})  # until the connection closes
    return taken


@pytest.mark.parametrize("lost", ["command", "reply"])
async def test_a_step_whose_answer_was_lost_is_asked_again_and_completes_once(
    lost: str, bus: BusClient, admin_db: Any, infra: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The payment worker's own duty asks again, 3 s after the publish here (30 s in the bank).
    monkeypatch.setattr(saga, "REASK_AFTER", timedelta(seconds=3))
    alice, bob = await open_account(bus, admin_db, "current"), await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    connection = await aio_pika.connect(infra["amqp_url"])
    try:
        taken = await _take_one(await connection.channel(), LEDGER_QUEUE if lost == "command" else REPLIES_QUEUE)
        payment_id = uuid.uuid4()
        order = p.InitiatePayment(payment_id=payment_id, kind=p.PaymentKind.internal, channel=p.Channel.branch,
                                  payer_account_id=alice, payee=p.Payee(account_id=bob), amount=12_345, currency="INR",
                                  actor=TELLER)  # fmt: skip
        answer = asyncio.create_task(bus.send(order, timeout_s=90))
        message = await asyncio.wait_for(taken, timeout=30)
    finally:
        await connection.close()
    step_id = await admin_db.fetchval(
        "SELECT step_id FROM payment.saga_step WHERE state->>'payment_id' = $1 AND completed_at IS NULL", str(payment_id)
    )
    assert step_id is not None, "the order is not waiting for the ledger"
    # What was lost is this order's: its command, or the ledger's reply to it.
    assert (message.message_id if lost == "command" else message.correlation_id) == step_id
    await asyncio.sleep(1)  # time for an answer that should not come
    assert not answer.done() and await status(admin_db, payment_id) == "initiated"

    reply = await answer  # once the duty has asked the ledger again (it looks every 5 s)
    assert await admin_db.fetchval("SELECT reasked FROM payment.saga_step WHERE step_id = $1", step_id) == 1
    assert reply.ok and reply.result["status"] == "completed", reply.error
    assert await balance(bus, bob) == (12_345, 0)
    assert await balance(bus, alice) == (1_000_000 - 12_345, 0)
    ledger_rows = await admin_db.fetchval(
        "SELECT count(*) FROM ledger.inbox WHERE consumer = 'ledger.create_transfers' AND message_id = $1", step_id
    )
    assert ledger_rows == 1
    # Answered: never asked again, however long ago it was.
    assert [a for a in await reask(infra, after=timedelta(0)) if a.step_id == step_id] == []


async def test_an_unanswered_step_is_asked_again_later_each_time(admin_db: Any, infra: dict[str, str]) -> None:
    """The waits double: a step asked once is not asked again until twice the wait has passed.
    With a 10 s wait here, under the worker's own 30 s: its duty, running meanwhile, leaves it be."""
    after = timedelta(seconds=10)
    step_id = f"payment:test_reask:{uuid.uuid4().hex}"
    await admin_db.execute(
        "INSERT INTO payment.saga_step (step_id, kind, state, origin_consumer, origin_message_id) "
        "VALUES ($1, 'ledger_post', '{}'::jsonb, 'test', $1)", step_id)  # fmt: skip
    # Written "in the future", so the worker's relay never publishes it; published 15 s ago: past
    # the first wait (10 s), short of the second (20 s).
    await admin_db.execute(
        "INSERT INTO payment.outbox (message_id, exchange, routing_key, message_type, payload, created_at, "
        "published_at) VALUES ($1, 'cbs.nowhere', 'ledger.create_transfers', 'test', '{}'::jsonb, "
        "now() + interval '1 hour', now() - interval '15 seconds')", step_id)  # fmt: skip

    async def published_ago(seconds: int) -> None:  # as the relay would mark it
        await admin_db.execute(
            "UPDATE payment.outbox SET published_at = now() - $2::interval WHERE message_id = $1",
            step_id, timedelta(seconds=seconds))  # fmt: skip

    async def mine() -> list[saga.Reasked]:
        return [a for a in await reask(infra, after=after) if a.step_id == step_id]

    try:
        first = await mine()
        assert [(a.times, a.routing_key, a.waited_s >= 15) for a in first] == [(1, "ledger.create_transfers", True)]
        assert await admin_db.fetchval("SELECT published_at FROM payment.outbox WHERE message_id = $1", step_id) is None
        await published_ago(15)
        assert await mine() == []  # the second wait is 20 s
        await published_ago(21)
        assert [a.times for a in await mine()] == [2]
        # Answered: never asked again.
        await admin_db.execute("UPDATE payment.saga_step SET completed_at = now() WHERE step_id = $1", step_id)
        await published_ago(3600)
        assert await mine() == []
    finally:
        await admin_db.execute("DELETE FROM payment.outbox WHERE message_id = $1", step_id)
        await admin_db.execute("DELETE FROM payment.saga_step WHERE step_id = $1", step_id)


async def reask(infra: dict[str, str], *, after: timedelta | None = None) -> list[saga.Reasked]:
    conn = await asyncpg.connect(infra["database_url"], server_settings={"search_path": "payment"})
    try:
        async with conn.transaction():
            return await saga.reask_unanswered(conn, after=after)
    finally:
        await conn.close()


async def status(admin_db: Any, payment_id: UUID) -> str:
    return str(await admin_db.fetchval("SELECT status FROM payment.payment WHERE payment_id = $1", payment_id))
