"""The outbox on the real broker and database: rows leave right after their commit (fast path),
and the relay publishes whatever the committing process did not (safety net)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, ClassVar

import aio_pika
import pytest
from pydantic import Field

from bus import outbox, topology
from contracts.common import Event
from tests.integration.conftest import eventually


class Probe(Event):
    # A key of the customer worker's, whose outbox publishes it: workers publish only their own.
    routing_key: ClassVar[str] = "customer.outbox_probe"
    message_type: ClassVar[str] = "customer.outbox_probe.v1"

    marker: str = Field(description="what the test looks for")


async def _listen(amqp_url: str) -> tuple[aio_pika.abc.AbstractConnection, asyncio.Queue[dict[str, Any]]]:
    """An exclusive queue bound to the probe's key: what arrives, with its arrival time."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(topology.EVENTS.name, Probe.routing_key)
    arrived: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            await arrived.put({"message_id": message.message_id, "at": time.monotonic(), "body": message.body})

    await queue.consume(on_message)
    return connection, arrived


async def test_a_committed_event_leaves_at_once_and_is_marked_sent(
    workers: dict[str, Any], infra, admin_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = workers["customer"].runtime
    # Not one of customer's declared events (the runtime would refuse to commit it): allowed here.
    monkeypatch.setattr(runtime, "publishes", runtime.publishes | {Probe.routing_key})
    connection, arrived = await _listen(infra["amqp_url"])
    try:
        marker = uuid.uuid4().hex
        started = time.monotonic()
        written = await runtime.in_transaction(
            lambda conn: outbox.add(conn, Probe(marker=marker), correlation_id=None, causation_id=None)
        )
        got = await asyncio.wait_for(arrived.get(), timeout=5)
        assert got["message_id"] == written.message_id and marker.encode() in got["body"]
        # Well inside the relay's grace: it came by the fast path, not by polling.
        assert got["at"] - started < outbox.DEFAULT_GRACE.total_seconds()

        async def marked() -> bool:
            return bool(await admin_db.fetchval(
                "SELECT published_at IS NOT NULL FROM customer.outbox WHERE message_id = $1", written.message_id
            ))  # fmt: skip

        await eventually(marked)
    finally:
        await connection.close()


async def test_a_row_its_writer_never_published_is_relayed_after_the_grace(workers: dict[str, Any], infra) -> None:
    """As if the process died between commit and publish: the row was written outside the runtime."""
    runtime = workers["customer"].runtime
    connection, arrived = await _listen(infra["amqp_url"])
    try:
        async with runtime.pool.acquire() as conn:
            written = await outbox.add(conn, Probe(marker="stranded"), correlation_id=None, causation_id=None)
        written_at = time.monotonic()
        got = await asyncio.wait_for(arrived.get(), timeout=10)
        assert got["message_id"] == written.message_id
        assert got["at"] - written_at >= outbox.DEFAULT_GRACE.total_seconds() - 0.5
        await asyncio.sleep(1)
        assert arrived.empty(), "relayed once"
    finally:
        await connection.close()
