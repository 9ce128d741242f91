"""Crash anywhere, lose nothing: SIGKILL a worker while commands are in flight."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import aio_pika
import asyncpg
import pytest

from bus.settings import broker_user, load
from contracts import account as a
from contracts import payment as p
from contracts.common import Command, Reply
from tests.e2e.conftest import Cluster
from tests.e2e.test_flows import open_account_when_eligible, verified_customer
from tests.e2e.test_payments import balance, deposit, payable_account

pytestmark = pytest.mark.e2e

COMMANDS_IN_FLIGHT = 400
PAYMENTS_IN_FLIGHT = 300
KILL_AFTER_REPLIES = 60


async def _kill_while_in_flight(cluster: Cluster, infra: dict[str, str], worker: str, commands: list[Command],
                                message_id: Callable[[Command], str]) -> dict[str, list[Reply]]:  # fmt: skip
    """Publish every command (each confirmed by the broker), SIGKILL `worker` once KILL_AFTER_REPLIES
    are answered, restart it, and return every answer by correlation id (the message_id)."""
    replies: dict[str, list[Reply]] = {}
    enough = asyncio.Event()
    all_answered = asyncio.Event()

    # As the operator's tools (a service of the bank): its own broker user, user_id on every command.
    connection = await aio_pika.connect_robust(load().process_amqp_url("ops"))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        reply_queue = await channel.declare_queue(f"ops.replies.{uuid.uuid4().hex[:12]}", exclusive=True, auto_delete=True)

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                replies.setdefault(message.correlation_id or "", []).append(Reply.model_validate_json(message.body))
                if len(replies) >= KILL_AFTER_REPLIES:
                    enough.set()
                if len(replies) == len(commands):
                    all_answered.set()

        await reply_queue.consume(on_reply)
        exchange = await channel.get_exchange("cbs.commands", ensure=False)
        await asyncio.gather(*(
            exchange.publish(
                aio_pika.Message(
                    body=cmd.model_dump_json().encode(), content_type="application/json",
                    message_id=message_id(cmd), correlation_id=message_id(cmd),
                    reply_to=reply_queue.name, type=cmd.message_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    user_id=broker_user("ops"),
                ),
                routing_key=cmd.routing_key,
            )
            for cmd in commands
        ))  # fmt: skip
        await asyncio.wait_for(enough.wait(), 60)
        cluster.kill(worker)
        answered_before_restart = len(replies)
        cluster.start(worker)
        try:
            await asyncio.wait_for(all_answered.wait(), 120)
        except TimeoutError:
            raise AssertionError(f"{len(replies)} of {len(commands)} answered; {await _diagnose(infra)}") from None

    assert answered_before_restart < len(commands), "the kill came too late to test anything"
    for correlation_id, answers in replies.items():
        # A redelivered command may be answered twice, always with the same stored reply.
        assert all(r.ok for r in answers), answers
        distinct = {json.dumps(r.model_dump(mode="json"), sort_keys=True) for r in answers}
        assert len(distinct) == 1, f"{correlation_id}: different answers {answers}"
    return replies


async def test_sigkilled_worker_loses_nothing_and_repeats_nothing(cluster: Cluster, infra: dict[str, str]) -> None:
    with cluster.client(timeout=10) as client:
        customer_id = verified_customer(client)
        open_account_when_eligible(client, customer_id)  # the account worker knows the customer now

    commands: list[Command] = [
        a.OpenAccount(account_id=uuid.uuid4(), customer_id=uuid.UUID(customer_id), product_code="savings")
        for _ in range(COMMANDS_IN_FLIGHT)
    ]
    await _kill_while_in_flight(cluster, infra, "account", commands, lambda cmd: f"crash-{cmd.account_id}")  # type: ignore[attr-defined]

    conn = await asyncpg.connect(infra["database_url"])
    try:
        ids = [cmd.account_id for cmd in commands]  # type: ignore[attr-defined]
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


async def test_sigkilled_payment_worker_completes_every_joined_order_once(cluster: Cluster, infra: dict[str, str]) -> None:
    """Orders placed together share one ledger command (bus/joint.py): killed anywhere in that, each
    order still completes once, and the ledger moves exactly the sum of them."""
    with cluster.client(timeout=10) as client:
        customer_id = verified_customer(client)
        payer, payee = payable_account(client, customer_id), payable_account(client, customer_id)
        deposit(client, payer, 5_000_000)
        before = balance(client, payer), balance(client, payee)

    orders: list[Command] = [
        p.InitiatePayment(payment_id=uuid.uuid4(), kind=p.PaymentKind.internal, channel=p.Channel.api,
                          payer_account_id=uuid.UUID(payer), payee=p.Payee(account_id=uuid.UUID(payee)),
                          amount=100 + n, currency="INR", actor="crash-test")  # fmt: skip
        for n in range(PAYMENTS_IN_FLIGHT)
    ]
    replies = await _kill_while_in_flight(cluster, infra, "payment", orders, lambda cmd: f"crash-{cmd.payment_id}")  # type: ignore[attr-defined]
    assert all(answers[0].result["status"] == "completed" for answers in replies.values())  # type: ignore[index]

    moved = sum(100 + n for n in range(PAYMENTS_IN_FLIGHT))
    with cluster.client(timeout=10) as client:
        assert (balance(client, payer), balance(client, payee)) == (before[0] - moved, before[1] + moved)
    conn = await asyncpg.connect(infra["database_url"])
    try:
        ids = [cmd.payment_id for cmd in orders]  # type: ignore[attr-defined]
        completed = await conn.fetchval(
            "SELECT count(*) FROM payment.payment WHERE payment_id = ANY($1::uuid[]) AND status = 'completed'", ids
        )
        joints = await conn.fetchval("SELECT count(*) FROM payment.saga_step WHERE kind = 'joint'")
    finally:
        await conn.close()
    assert completed == PAYMENTS_IN_FLIGHT
    assert joints > 0, "no order was joined: the test did not exercise joint ledger commands"


async def _diagnose(infra: dict[str, str]) -> dict[str, object]:
    conn = await asyncpg.connect(infra["database_url"])
    try:
        return {
            "account_status": dict(await conn.fetch("SELECT status, count(*) FROM account.account GROUP BY 1")),
            "open_steps": await conn.fetchval("SELECT count(*) FROM account.saga_step WHERE completed_at IS NULL"),
            "unsent_outbox": await conn.fetchval("SELECT count(*) FROM account.outbox WHERE published_at IS NULL"),
            "pending_inbox": await conn.fetchval("SELECT count(*) FROM account.inbox WHERE reply IS NULL"),
            "ledger_accounts": await conn.fetchval("SELECT count(*) FROM ledger.ledger_account WHERE code = 'customer_deposit'"),
            "payment_status": dict(await conn.fetch("SELECT status, count(*) FROM payment.payment GROUP BY 1")),
            "payment_open_steps": await conn.fetchval("SELECT count(*) FROM payment.saga_step WHERE completed_at IS NULL"),
        }
    finally:
        await conn.close()
