"""A worker's events are group-committed (bus/worker.py): many events, one transaction, each handled
once, a repeat handled not at all, every inbox row holding its reply. On the real broker and
database, through the account worker's events queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import aio_pika

from bus import observability, topology
from bus.settings import broker_user, load
from tests.integration.conftest import BusClient, eventually
from tests.integration.test_account_bus import registered

EVENTS = 40


def _sample(metric: object, name: str, label: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name == name and sample.labels.get("command") == label and sample.labels.get("outcome", "committed") == "committed":
                return float(sample.value)
    return 0.0


async def test_events_arriving_together_commit_together_and_each_is_handled_once(bus: BusClient, admin_db) -> None:
    consumer = "account.events"
    batches_before = _sample(observability.GROUP_COMMIT_SECONDS, "cbs_group_commit_duration_seconds_count", consumer)
    committed_before = _sample(observability.GROUP_COMMIT_MESSAGES, "cbs_group_commit_messages_total", consumer)
    customers = [uuid.uuid4() for _ in range(EVENTS)]
    message_ids = [uuid.uuid4().hex for _ in customers]
    now = datetime.now(UTC)
    bodies = [registered(c, now).model_dump_json().encode() for c in customers]
    # All at once, as the customer worker's outbox publishes a busy moment's facts; the first
    # published twice under its message_id, as the relay does after a lost confirm.
    connection = await aio_pika.connect(load().process_amqp_url("customer"))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name, ensure=False)
        for message_id, body in [*zip(message_ids, bodies), (message_ids[0], bodies[0])]:
            await exchange.publish(aio_pika.Message(body, content_type="application/json", user_id=broker_user("customer"),
                                                    message_id=message_id, type="customer.registered.v1",
                                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                   routing_key="customer.registered")  # fmt: skip

    async def all_learnt() -> bool:
        n = await admin_db.fetchval("SELECT count(*) FROM account.customer_standing WHERE customer_id = ANY($1::uuid[])",
                                    customers)  # fmt: skip
        return n == EVENTS

    await eventually(all_learnt)

    async def all_answered() -> bool:  # the repeat may still be on its way when the others are in
        return _sample(observability.GROUP_COMMIT_MESSAGES, "cbs_group_commit_messages_total", consumer) - committed_before >= EVENTS + 1

    await eventually(all_answered)
    rows = await admin_db.fetch("SELECT message_id, reply FROM account.inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
                                consumer, message_ids)  # fmt: skip
    assert len(rows) == EVENTS, "one inbox row an event, the repeat's included"
    assert all(r["reply"] is not None for r in rows), "each row holds its reply, stored with its claim"
    batches = _sample(observability.GROUP_COMMIT_SECONDS, "cbs_group_commit_duration_seconds_count", consumer) - batches_before
    assert 1 <= batches < EVENTS, f"{EVENTS + 1} events took {batches} commits: they were not gathered"
