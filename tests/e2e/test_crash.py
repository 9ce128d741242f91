"""Crash anywhere, lose nothing: SIGKILL a worker while commands are in flight."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import asyncpg
import httpx
import pytest

from contracts import account as a
from contracts.common import Reply
from tests.e2e.conftest import Cluster
from tests.e2e.test_flows import open_account_when_eligible, verified_customer

pytestmark = pytest.mark.e2e

COMMANDS_IN_FLIGHT = 400
KILL_AFTER_REPLIES = 60


async def test_sigkilled_worker_loses_nothing_and_repeats_nothing(cluster: Cluster, infra: dict[str, str]) -> None:
    with cluster.client(timeout=10) as client:
        customer_id = verified_customer(client)
        open_account_when_eligible(client, customer_id)  # the account worker knows the customer now

    commands = [
        a.OpenAccount(account_id=uuid.uuid4(), customer_id=uuid.UUID(customer_id), product_code="savings")
        for _ in range(COMMANDS_IN_FLIGHT)
    ]
    replies: dict[str, list[Reply]] = {}
    enough = asyncio.Event()
    all_answered = asyncio.Event()

    connection = await aio_pika.connect_robust(infra["amqp_url"])
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        reply_queue = await channel.declare_queue(exclusive=True, auto_delete=True)

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                replies.setdefault(message.correlation_id or "", []).append(Reply.model_validate_json(message.body))
                if len(replies) >= KILL_AFTER_REPLIES:
                    enough.set()
                if len(replies) == COMMANDS_IN_FLIGHT:
                    all_answered.set()

        await reply_queue.consume(on_reply)
        exchange = await channel.get_exchange("cbs.commands")
        # Every publish is confirmed by the broker: each of these commands was accepted.
        await asyncio.gather(*(
            exchange.publish(
                aio_pika.Message(
                    body=cmd.model_dump_json().encode(), content_type="application/json",
                    message_id=f"crash-{cmd.account_id}", correlation_id=str(cmd.account_id),
                    reply_to=reply_queue.name, type=cmd.message_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=cmd.routing_key,
            )
            for cmd in commands
        ))  # fmt: skip
        await asyncio.wait_for(enough.wait(), 60)
        cluster.kill("account")
        answered_before_restart = len(replies)
        cluster.start("account")
        try:
            await asyncio.wait_for(all_answered.wait(), 120)
        except TimeoutError:
            raise AssertionError(f"{len(replies)} of {COMMANDS_IN_FLIGHT} answered; {await _diagnose(infra)}") from None

    assert answered_before_restart < COMMANDS_IN_FLIGHT, "the kill came too late to test anything"
    for correlation_id, answers in replies.items():
        # A redelivered command may be answered twice, always with the same stored reply.
        assert all(r.ok for r in answers), answers
        distinct = {json.dumps(r.model_dump(mode="json"), sort_keys=True) for r in answers}
        assert len(distinct) == 1, f"{correlation_id}: different answers {answers}"

    conn = await asyncpg.connect(infra["database_url"])
    try:
        ids = [cmd.account_id for cmd in commands]
        accounts = await conn.fetchval("SELECT count(*) FROM account.account WHERE account_id = ANY($1::uuid[])", ids)
        numbers = await conn.fetchval(
            "SELECT count(DISTINCT number) FROM account.account WHERE account_id = ANY($1::uuid[])", ids
        )
        opened = await conn.fetchval(
            "SELECT count(*) FROM account.outbox WHERE routing_key = 'account.opened' "
            "AND (payload->>'account_id')::uuid = ANY($1::uuid[])",
            ids,
        )
    finally:
        await conn.close()
    assert (accounts, numbers, opened) == (COMMANDS_IN_FLIGHT, COMMANDS_IN_FLIGHT, COMMANDS_IN_FLIGHT)


async def _diagnose(infra: dict[str, str]) -> dict[str, object]:
    conn = await asyncpg.connect(infra["database_url"])
    try:
        return {
            "account_status": dict(await conn.fetch("SELECT status, count(*) FROM account.account GROUP BY 1")),
            "open_steps": await conn.fetchval("SELECT count(*) FROM account.saga_step WHERE completed_at IS NULL"),
            "unsent_outbox": await conn.fetchval("SELECT count(*) FROM account.outbox WHERE published_at IS NULL"),
            "pending_inbox": await conn.fetchval("SELECT count(*) FROM account.inbox WHERE reply IS NULL"),
            "ledger_accounts": await conn.fetchval("SELECT count(*) FROM ledger.ledger_account WHERE code = 'customer_deposit'"),
        }
    finally:
        await conn.close()
