"""The ledger SIGKILLed under load: nothing acknowledged is lost, nothing is posted twice."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import aio_pika
import asyncpg
import pytest

from bus.settings import broker_user, load
from contracts import ledger as c
from contracts.common import Reply
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

COMMANDS = 600
TRANSFERS_PER_COMMAND = 5
KILL_AFTER_REPLIES = 100
ACCOUNTS = 20


class Client:
    """A partner-style client: publishes with confirms, collects replies by correlation id."""

    def __init__(self, channel: aio_pika.abc.AbstractChannel, reply_queue: aio_pika.abc.AbstractQueue) -> None:
        self.channel = channel
        self.reply_queue = reply_queue
        self.replies: dict[str, list[Reply]] = {}
        self.progress = asyncio.Event()

    async def on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            self.replies.setdefault(message.correlation_id or "", []).append(Reply.model_validate_json(message.body))
            self.progress.set()

    async def publish(self, command: c.Command, message_id: str, correlation_id: str) -> None:
        exchange = await self.channel.get_exchange("cbs.commands", ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body=command.model_dump_json().encode(), content_type="application/json", message_id=message_id,
                correlation_id=correlation_id, reply_to=self.reply_queue.name, type=command.message_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=broker_user("ops"),
            ),
            routing_key=command.routing_key,
        )  # fmt: skip

    async def wait_for(self, count: int, timeout_s: float) -> None:
        async def enough() -> None:
            while len(self.replies) < count:
                self.progress.clear()
                await self.progress.wait()

        await asyncio.wait_for(enough(), timeout_s)


async def test_sigkilled_ledger_loses_no_acknowledged_transfer_and_posts_none_twice(
    cluster: Cluster, infra: dict[str, str]
) -> None:
    rng = random.Random(11)
    funding, accounts = uuid.uuid4(), [uuid.uuid4() for _ in range(ACCOUNTS)]
    commands = [
        c.CreateTransfers(transfers=[
            c.NewTransfer(id=uuid.uuid4(), debit_account_id=d, credit_account_id=cr, amount=rng.randint(1, 5_000),
                          currency="INR", code="internal_transfer")
            for d, cr in (rng.sample(accounts, 2) for _ in range(TRANSFERS_PER_COMMAND))
        ])
        for _ in range(COMMANDS)
    ]  # fmt: skip
    # As the operator's tools (a service of the bank): its own broker user, user_id on every command.
    connection = await aio_pika.connect_robust(load().process_amqp_url("ops"))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        reply_queue = await channel.declare_queue(f"ops.replies.{uuid.uuid4().hex[:12]}", exclusive=True, auto_delete=True)
        client = Client(channel, reply_queue)
        await reply_queue.consume(client.on_reply)

        setup = c.CreateAccounts(accounts=[c.NewAccount(id=funding, currency="INR", code="suspense"), *[
            c.NewAccount(id=a, currency="INR", code="customer_deposit",
                         flags=c.AccountFlags(debits_must_not_exceed_credits=True)) for a in accounts]])  # fmt: skip
        fund = c.CreateTransfers(transfers=[c.NewTransfer(id=uuid.uuid4(), debit_account_id=funding, credit_account_id=a,
                                 amount=200_000, currency="INR", code="deposit") for a in accounts])  # fmt: skip
        for i, command in enumerate((setup, fund)):
            await client.publish(command, f"setup-{i}-{uuid.uuid4()}", f"setup-{i}")
            await client.wait_for(i + 1, 30)
        total_before = 200_000 * ACCOUNTS

        # Every publish is confirmed by the broker: the command was accepted.
        await asyncio.gather(*(client.publish(cmd, f"m-{i}", f"c-{i}") for i, cmd in enumerate(commands)))
        await client.wait_for(2 + KILL_AFTER_REPLIES, 60)
        cluster.kill("ledger")
        answered_at_kill = len(client.replies) - 2
        cluster.start("ledger")
        await client.wait_for(2 + COMMANDS, 180)
        assert answered_at_kill < COMMANDS, "the kill came too late to test anything"

        # A client that lost patience sends the same transfers again under new message ids.
        for i in rng.sample(range(COMMANDS), 50):
            await client.publish(commands[i], f"retry-{i}", f"r-{i}")
        await client.wait_for(2 + COMMANDS + 50, 60)

    by_transfer: dict[uuid.UUID, set[str]] = {}
    for i, command in enumerate(commands):
        answers = client.replies[f"c-{i}"]
        distinct = {json.dumps(a.model_dump(mode="json"), sort_keys=True) for a in answers}
        assert all(a.ok for a in answers) and len(distinct) == 1, answers  # a redelivery answers the same
        for t, r in zip(command.transfers, answers[0].result["results"]):  # type: ignore[index]
            by_transfer.setdefault(t.id, set()).add(r["result"])
        if f"r-{i}" in client.replies:
            for t, r in zip(command.transfers, client.replies[f"r-{i}"][0].result["results"]):  # type: ignore[index]
                first = answers[0].result["results"][command.transfers.index(t)]["result"]  # type: ignore[index]
                # A retry never posts again: ok becomes exists, a refusal stays refused.
                assert r["result"] == ("exists" if first == "ok" else "id_already_failed"), (first, r)

    conn = await asyncpg.connect(infra["database_url"])
    try:
        ok_ids = [t for t, codes in by_transfer.items() if "ok" in codes]
        refused_ids = [t for t, codes in by_transfer.items() if "ok" not in codes]
        stored = await conn.fetchval("SELECT count(*) FROM ledger.transfer WHERE id = ANY($1::uuid[])", ok_ids)
        leaked = await conn.fetchval("SELECT count(*) FROM ledger.transfer WHERE id = ANY($1::uuid[])", refused_ids)
        balance = await conn.fetchval(
            "SELECT sum(credits_posted - debits_posted) FROM ledger.ledger_account WHERE id = ANY($1::uuid[])", accounts
        )
    finally:
        await conn.close()
    assert (stored, leaked) == (len(ok_ids), 0)
    assert balance == total_before  # money only moved between the accounts
    async with cluster_bus(infra) as send:
        verify = await send(c.Verify())
    assert verify.ok and verify.result["ok"], verify  # type: ignore[index]


def cluster_bus(infra: dict[str, str]):  # type: ignore[no-untyped-def]
    from contextlib import asynccontextmanager

    from bus.correlator import Correlator

    @asynccontextmanager
    async def connect():  # type: ignore[no-untyped-def]
        from bus import topology

        correlator = Correlator(load().process_amqp_url("ops"), user_id=broker_user("ops"),
                                reply_queue=topology.ops_reply_queue(uuid.uuid4().hex[:12]))  # fmt: skip
        await correlator.start()
        try:
            yield lambda command: correlator.send(command, message_id=uuid.uuid4().hex, timeout_s=60)
        finally:
            await correlator.stop()

    return connect()
