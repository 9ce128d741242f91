"""The transactional outbox (DESIGN §4.3): events commit with the state change, a relay sends them.

The relay wakes on NOTIFY and also polls, so an event is never stranded by a missed
notification. Several replicas may relay at once: `FOR UPDATE SKIP LOCKED` splits the rows.
Publishing is at-least-once; consumers drop a repeat by its message_id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import asyncpg
from aiormq.abc import DeliveredMessage
import aio_pika
from opentelemetry.propagate import inject
from pamqp.commands import Basic

from bus.topology import COMMANDS, EVENTS
from contracts.common import Command, Event

NOTIFY_CHANNEL = "cbs_outbox"
RELAY_BATCH = 200  # rows per relay transaction
PUBLISH_TIMEOUT_S = 10.0

log = logging.getLogger("cbs.outbox")
UNROUTED = object()


async def add(
    conn: asyncpg.Connection, event: Event, *, correlation_id: str | None, causation_id: str | None
) -> str:
    """Queue an event in the caller's database transaction; returns its message_id."""
    assert event.routing_key and event.message_type, f"{type(event).__name__} lacks routing metadata"
    message_id = str(uuid.uuid4())
    await _insert(conn, EVENTS.name, event, message_id, correlation_id, causation_id, reply_to=None)
    return message_id


async def add_many(
    conn: asyncpg.Connection, events: list[tuple[Event, str | None, str | None]]
) -> None:
    """Queue many events (event, correlation_id, causation_id) in one round trip: group commit's path."""
    if not events:
        return
    trace_headers: dict[str, Any] = {}
    inject(trace_headers)
    rows = []
    for event, correlation_id, causation_id in events:
        assert event.routing_key and event.message_type, f"{type(event).__name__} lacks routing metadata"
        headers = {**trace_headers, **({"x-causation-id": causation_id} if causation_id else {})}
        rows.append(
            (str(uuid.uuid4()), EVENTS.name, event.routing_key, event.message_type, event.model_dump(mode="json"),
             headers, correlation_id, None)
        )  # fmt: skip
    await conn.executemany(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload, headers, correlation_id, "
        "reply_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        rows,
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def add_command(
    conn: asyncpg.Connection,
    command: Command,
    *,
    message_id: str,
    correlation_id: str,
    reply_to: str,
    causation_id: str | None,
) -> None:
    """Queue a command to another worker; its message_id is chosen so a resend is idempotent."""
    assert command.routing_key and command.message_type, f"{type(command).__name__} lacks routing metadata"
    await _insert(conn, COMMANDS.name, command, message_id, correlation_id, causation_id, reply_to=reply_to)


async def _insert(
    conn: asyncpg.Connection,
    exchange: str,
    message: Event | Command,
    message_id: str,
    correlation_id: str | None,
    causation_id: str | None,
    *,
    reply_to: str | None,
) -> None:
    headers: dict[str, Any] = {}
    inject(headers)  # the trace continues when the relay publishes
    if causation_id:
        headers["x-causation-id"] = causation_id
    await conn.execute(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload, headers, correlation_id, "
        "reply_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        message_id,
        exchange,
        message.routing_key,
        message.message_type,
        message.model_dump(mode="json"),
        headers,
        correlation_id,
        reply_to,
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


class OutboxRelay:
    """Publishes over its own connection and channel, straight through aio-pika: the rows
    already carry their trace headers, and the framework's per-message middlewares would
    cost more CPU than the publish itself at ledger rates."""

    def __init__(self, pool: asyncpg.Pool, amqp_url: str, *, poll_interval_s: float) -> None:
        self._pool = pool
        self._amqp_url = amqp_url
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._amqp_url, client_properties={"connection_name": "outbox"})
        channel = await self._connection.channel(publisher_confirms=True)
        for exchange in (COMMANDS, EVENTS):
            self._exchanges[exchange.name] = await channel.get_exchange(exchange.name, ensure=False)
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener:
            await self._listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self._pool.release(self._listener)
        if self._connection:
            await self._connection.close()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.relay_once()
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                log.warning("outbox relay failed, will retry: %r", exc)
                sent = 0
            if sent < RELAY_BATCH:  # a full batch means more may be waiting
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
                except asyncio.TimeoutError:
                    pass

    async def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were confirmed."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, message_id, exchange, routing_key, message_type, payload, headers, correlation_id, reply_to "
                "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                RELAY_BATCH,
            )
            if not rows:
                return 0
            # Confirms dominate the latency, so the batch is published concurrently.
            outcomes = await asyncio.gather(*(self._publish(r) for r in rows), return_exceptions=True)
            sent = [r["id"] for r, outcome in zip(rows, outcomes) if outcome is None or outcome is UNROUTED]
            failed = [(r["id"], repr(o)) for r, o in zip(rows, outcomes) if isinstance(o, BaseException)]
            if sent:
                await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", sent)
            for row_id, error in failed:
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1", row_id, error
                )
            if failed:
                log.warning("outbox: %d events not confirmed, retrying later: %s", len(failed), failed[0][1])
            return len(sent)

    async def _publish(self, row: asyncpg.Record) -> object | None:
        message = aio_pika.Message(
            body=json.dumps(row["payload"]).encode(),
            content_type="application/json",
            headers=dict(row["headers"]),
            message_id=row["message_id"],
            correlation_id=row["correlation_id"],
            reply_to=row["reply_to"],
            type=row["message_type"],
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        confirm = await self._exchanges[row["exchange"]].publish(
            message, routing_key=row["routing_key"], mandatory=True, timeout=PUBLISH_TIMEOUT_S
        )
        if isinstance(confirm, DeliveredMessage):
            if row["exchange"] == COMMANDS.name:
                raise RuntimeError(f"no queue for command {row['routing_key']}")  # retried: a command must arrive
            # basic.return: no queue is bound for this key. An event is a broadcast fact; with
            # no subscriber there is nobody to tell, so it counts as sent (audit, which binds
            # `#`, makes every event routable once it runs).
            log.debug("event %s had no subscriber", row["routing_key"])
            return UNROUTED
        if not isinstance(confirm, Basic.Ack):
            raise RuntimeError(f"broker did not confirm {row['message_id']}: {confirm!r}")
        return None
