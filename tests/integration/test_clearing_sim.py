"""The clearing partner simulator on the real broker, as its own partner user (ops/sim/clearing.py).

The operator (guest) publishes `payment.submitted` on `cbs.events` and watches what the simulator
sends through a tap on `cbs.commands` (an exclusive queue bound to the same key as the command
queue), so the payment worker may or may not be consuming the command queue meanwhile. The
incoming-credit test runs the workers and takes the payment worker's real answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import pytest
from faststream.rabbit import RabbitBroker

from bus import topology
from ops import partners
from ops.sim import clearing as clearing_sim
from contracts import payment as pay
from contracts.common import Reply
from tests.integration.conftest import BusClient, eventually
from tests.integration.test_partners import PartnerUser, channel_of, cbs, granted, unique_name

SIM_KEYS = (pay.SettlePayment.routing_key, pay.RejectExternalPayment.routing_key, pay.IncomingCredit.routing_key)


@pytest.fixture
async def clearing(infra: dict[str, str]) -> AsyncIterator[PartnerUser]:
    """A partner made by the real CLI with the simulator's grants and `payment.submitted` bound."""
    name = unique_name()
    done = await cbs("partner", "add", name, "--may-send", *SIM_KEYS, "--events", pay.PaymentSubmitted.routing_key)
    assert done.returncode == 0, done.stderr
    try:
        shown = json.loads(done.stdout.strip().splitlines()[-1])
        assert shown["events"] == [pay.PaymentSubmitted.routing_key] and shown["may_send"] == sorted(SIM_KEYS)
        yield PartnerUser(name, shown["password"])
    finally:
        assert (await cbs("partner", "remove", name)).returncode == 0


@pytest.fixture(scope="module")
async def command_queues(infra: dict[str, str]) -> None:
    """The payment worker's command queues for the simulator's keys, declared as `cbs migrate` does."""
    broker = RabbitBroker(infra["amqp_url"], logger=None)
    await broker.connect()
    try:
        commands = await broker.declare_exchange(topology.COMMANDS)
        for key in SIM_KEYS:
            queue = await broker.declare_queue(topology.command_queue(key))
            await queue.bind(commands, routing_key=key)
    finally:
        await broker.stop()


async def tap(channel: aio_pika.abc.AbstractChannel, routing_key: str) -> aio_pika.abc.AbstractQueue:
    """A copy of every command published with this key, whoever consumes the real queue."""
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(topology.COMMANDS.name, routing_key=routing_key)
    return queue


def submitted(payment_id: uuid.UUID) -> pay.PaymentSubmitted:
    return pay.PaymentSubmitted(
        payment_id=payment_id, reference="NEFT20250101120000ABCDEFGH", kind=pay.PaymentKind.neft,
        payer_account_id=uuid.uuid4(), amount=150_000, currency="INR", status=pay.PaymentStatus.processing,
        occurred_at=datetime.now(UTC), fee=500,
        payee=pay.Payee(name="Asha Rao", account_number="123456789012", ifsc="ABCD0123456"),
    )  # fmt: skip


async def publish_event(channel: aio_pika.abc.AbstractChannel, event: pay.PaymentSubmitted, message_id: str) -> None:
    exchange = await channel.get_exchange(topology.EVENTS.name)
    message = aio_pika.Message(event.model_dump_json().encode(), content_type="application/json",
                               message_id=message_id, type=event.message_type,
                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT)  # fmt: skip
    await exchange.publish(message, routing_key=event.routing_key)


async def next_for(queue: aio_pika.abc.AbstractQueue, payment_id: uuid.UUID) -> aio_pika.abc.AbstractIncomingMessage:
    """The next command on the tap about this payment."""

    async def found() -> aio_pika.abc.AbstractIncomingMessage | None:
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            if json.loads(message.body).get("payment_id") == str(payment_id):
                return message
        return None

    return await eventually(found, timeout_s=5)


@contextlib.asynccontextmanager
async def simulator(p: PartnerUser, **options: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    url = partners.partner_url(os.environ["CBS_AMQP_URL"], p.name, p.password)
    task = asyncio.create_task(clearing_sim.run(url, p.name, settle_delay_s=0, seed=1, stop_event=stop, **options))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)  # a clean stop, and any failure of the run surfaces here


@pytest.mark.parametrize(
    ("reject_rate", "command"),
    [(0.0, pay.SettlePayment), (1.0, pay.RejectExternalPayment)],
    ids=["settles", "rejects"],
)
async def test_submitted_payment_gets_one_command_from_the_partner(
    clearing: PartnerUser, command_queues: None, reject_rate: float, command: Any
) -> None:
    payment_id, event_id = uuid.uuid4(), uuid.uuid4().hex
    async with channel_of(os.environ["CBS_AMQP_URL"]) as admin, simulator(clearing, reject_rate=reject_rate):
        queue = await tap(admin, command.routing_key)
        await publish_event(admin, submitted(payment_id), event_id)
        first = await next_for(queue, payment_id)
        await publish_event(admin, submitted(payment_id), event_id)  # the same event, delivered again
        again = await next_for(queue, payment_id)

    assert first.user_id == clearing.user  # validated by the broker: it is the partner's publish
    assert first.type == command.message_type and first.reply_to == clearing.replies
    assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    sent = command.model_validate_json(first.body)
    assert sent.payment_id == payment_id and sent.partner_reference == f"CLR{payment_id.hex.upper()}"
    if command is pay.RejectExternalPayment:
        assert "simulated" in sent.reason
    else:
        assert abs((datetime.now(UTC) - sent.settled_at).total_seconds()) < 60
    assert again.message_id == first.message_id  # so the payment worker's inbox takes it once
    assert first.message_id == clearing_sim.message_id_for(clearing.name, command.routing_key, str(payment_id))
    async with channel_of(os.environ["CBS_AMQP_URL"]) as admin:  # both events acked, none left behind
        events = await admin.declare_queue(clearing.events, passive=True)
        assert events.declaration_result.message_count == 0


async def test_replies_to_the_partner_are_drained(clearing: PartnerUser) -> None:
    async with channel_of(os.environ["CBS_AMQP_URL"]) as admin, simulator(clearing, reject_rate=0.0):
        reply = aio_pika.Message(Reply.success({"status": "completed"}).model_dump_json().encode(),
                                 correlation_id=uuid.uuid4().hex)  # fmt: skip
        await admin.default_exchange.publish(reply, routing_key=clearing.replies)

        async def drained() -> bool:
            queue = await admin.declare_queue(clearing.replies, passive=True)
            return queue.declaration_result.message_count == 0

        await eventually(drained, timeout_s=5)


async def test_incoming_credit_is_sent_and_the_workers_reply_returned(
    bus: BusClient, clearing: PartnerUser, admin_db: asyncpg.Pool
) -> None:
    await granted(admin_db, "payment", clearing.user, SIM_KEYS)  # the worker learns the grant from an event
    reference = f"UTR{uuid.uuid4().hex[:12].upper()}"
    url = partners.partner_url(os.environ["CBS_AMQP_URL"], clearing.name, clearing.password)

    async def credit() -> dict[str, Any]:
        return await clearing_sim.send_incoming_credit(
            url, clearing.name, partner_reference=reference, rail="neft", payee_account_number="999999999999",
            payer_name="Ravi Kumar", amount=25_000, timeout_s=5,
        )  # fmt: skip

    async with channel_of(os.environ["CBS_AMQP_URL"]) as admin:
        queue = await tap(admin, pay.IncomingCredit.routing_key)
        reply = await credit()
        again = await credit()  # the same reference: the same message_id, the stored answer
        seen = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            seen.append(message)
    # No such account number in this run's database: the payment worker's refusal, returned as is.
    assert reply["ok"] is False and reply["error"]["code"] == pay.PaymentError.account_not_found
    assert again == reply
    assert len(seen) == 2 and seen[0].message_id == seen[1].message_id
    message = seen[0]
    credit_sent = pay.IncomingCredit.model_validate_json(message.body)
    assert credit_sent.partner_reference == reference and credit_sent.amount == 25_000
    assert credit_sent.currency == "INR" and credit_sent.rail == pay.PaymentKind.neft
    assert message.user_id == clearing.user and message.type == pay.IncomingCredit.message_type
    assert message.reply_to == clearing.replies
    assert message.message_id == clearing_sim.message_id_for(clearing.name, pay.IncomingCredit.routing_key, reference)


async def test_list_shows_event_bindings_and_add_refuses_unknown_events(clearing: PartnerUser) -> None:
    done = await cbs("partner", "list")
    assert done.returncode == 0, done.stderr
    listed = {row["name"]: row for row in map(json.loads, done.stdout.strip().splitlines())}
    assert listed[clearing.name]["events"] == [pay.PaymentSubmitted.routing_key]
    name = unique_name()
    for bad in ("payment.no_such_event", "payment.*"):
        refused = await cbs("partner", "add", name, "--may-send", pay.SettlePayment.routing_key, "--events", bad)
        assert refused.returncode == 2 and bad in refused.stderr, refused.stderr
    assert partners.user_of(name) not in await asyncio.to_thread(partners.partner_users)


def test_decisions_are_fixed_by_seed_and_payment() -> None:
    ids = [uuid.UUID(int=i) for i in range(2000)]
    share = sum(clearing_sim.rejects(i, seed=1, reject_rate=0.1) for i in ids) / len(ids)
    assert 0.07 < share < 0.13
    assert [clearing_sim.rejects(i, seed=1, reject_rate=0.1) for i in ids] == [
        clearing_sim.rejects(i, seed=1, reject_rate=0.1) for i in ids
    ]
    assert not any(clearing_sim.rejects(i, seed=7, reject_rate=0.0) for i in ids)
    assert all(clearing_sim.rejects(i, seed=7, reject_rate=1.0) for i in ids)
