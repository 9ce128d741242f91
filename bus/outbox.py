"""The transactional outbox (DESIGN §4.3): events commit with the state change, then leave.

Fast path: the process that committed the rows publishes them itself right after the commit
(`OutboxRelay.publish_committed`) and marks them sent; no notification and no polling stand
between a handler and the message it sent. Safety net: the relay polls for rows that are still
unsent some time after they were written (the committing process died, or the broker refused),
so nothing is stranded. Several replicas may relay at once: `FOR UPDATE SKIP LOCKED` splits the
rows. Publishing is at-least-once; consumers drop a repeat by its message_id.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from bus import db, observability, tracing
from bus.topology import COMMANDS, EVENTS
from contracts.common import Command, Event
from contracts.wire import sorted_json

RELAY_BATCH = 200  # rows per relay transaction
PUBLISH_TIMEOUT_S = 10.0
# How long the committing process has to publish its own rows before the relay takes them over.
DEFAULT_GRACE = timedelta(seconds=2)
MAX_DIRECT_IN_FLIGHT = 2_000  # messages published on the fast path and not yet confirmed
MARK_BATCH = 500  # message ids marked sent per UPDATE
# Confirms gathered this long before they are marked sent: one UPDATE (one commit) serves every
# message confirmed meanwhile instead of one a message (issue 10's payment profile: about two
# commits a payment). At 0.05 s a payment still cost about 0.9 mark transactions (BEGIN, SET,
# UPDATE, COMMIT: 3.5 statements) across the payment and notification workers at 50 payments a
# second. Far below DEFAULT_GRACE, so the relay does not take a confirmed row over.
MARK_GATHER_S = 0.25

log = logging.getLogger("cbs.outbox")
UNROUTED = object()

# One statement for a transaction's rows, however many: `executemany` would execute it once a row.
_INSERT = (
    "INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload, headers, correlation_id, "
    "reply_to) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], "
    "$7::text[], $8::text[])"
)


async def _insert(conn: asyncpg.Connection, messages: list[Outgoing]) -> None:
    await conn.execute(_INSERT, *db.columns([m.row() for m in messages], 8))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One outbox row as written: what the fast path publishes after the commit."""

    message_id: str
    exchange: str
    routing_key: str
    message_type: str
    payload: dict[str, Any]
    headers: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    reply_to: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (self.message_id, self.exchange, self.routing_key, self.message_type, self.payload, self.headers,
                self.correlation_id, self.reply_to)  # fmt: skip


@dataclass
class Written:
    """The rows one transaction writes: inserted together by `flush` before its commit, then
    published by the fast path after it."""

    messages: list[Outgoing] = field(default_factory=list)
    unsaved: list[Outgoing] = field(default_factory=list)


_written: ContextVar[Written | None] = ContextVar("cbs_outbox_written", default=None)


@contextmanager
def collecting() -> Iterator[Written]:
    """Inside this block (one transaction), `add`, `add_many` and `add_command` only queue their
    rows; `flush` inserts them in one round trip and must run before the commit."""
    written = Written()
    token = _written.set(written)
    try:
        yield written
    finally:
        _written.reset(token)


async def flush(conn: asyncpg.Connection) -> None:
    written = _written.get()
    if written is not None and written.unsaved:
        await _insert(conn, written.unsaved)
        written.unsaved.clear()


async def _save(conn: asyncpg.Connection, messages: list[Outgoing]) -> None:
    """Queue the rows when a transaction collects them; else insert them now."""
    written = _written.get()
    if written is None:
        if messages:
            await _insert(conn, messages)
        return
    written.messages.extend(messages)
    written.unsaved.extend(messages)


def _headers(causation_id: str | None, trace: dict[str, Any] | None = None) -> dict[str, Any]:
    """A row's headers. The trace context the row is written in is stored with it (`traceparent`):
    whoever publishes it, the committing process or the relay after a crash, continues that trace."""
    headers: dict[str, Any] = dict(trace) if trace is not None else tracing.inject({})
    if causation_id:
        headers["x-causation-id"] = causation_id
    return headers


async def add(
    conn: asyncpg.Connection, event: Event, *, correlation_id: str | None, causation_id: str | None
) -> Outgoing:
    """Queue an event in the caller's database transaction."""
    assert event.routing_key and event.message_type, f"{type(event).__name__} lacks routing metadata"
    message = Outgoing(str(uuid.uuid4()), EVENTS.name, event.routing_key, event.message_type,
                       event.model_dump(mode="json"), _headers(causation_id), correlation_id)  # fmt: skip
    await _save(conn, [message])
    return message


async def add_many(conn: asyncpg.Connection, events: list[tuple[Event, str | None, str | None]]) -> list[Outgoing]:
    """Queue many events (event, correlation_id, causation_id) in one round trip: group commit's path."""
    if not events:
        return []
    trace = tracing.inject({})
    messages = []
    for event, correlation_id, causation_id in events:
        assert event.routing_key and event.message_type, f"{type(event).__name__} lacks routing metadata"
        messages.append(Outgoing(str(uuid.uuid4()), EVENTS.name, event.routing_key, event.message_type,
                                 event.model_dump(mode="json"), _headers(causation_id, trace), correlation_id))  # fmt: skip
    await _save(conn, messages)
    return messages


async def add_command(
    conn: asyncpg.Connection,
    command: Command,
    *,
    message_id: str,
    correlation_id: str,
    reply_to: str,
    causation_id: str | None,
) -> Outgoing:
    """Queue a command to another worker; its message_id is chosen so a resend is idempotent."""
    assert command.routing_key and command.message_type, f"{type(command).__name__} lacks routing metadata"
    message = Outgoing(message_id, COMMANDS.name, command.routing_key, command.message_type,
                       command.model_dump(mode="json"), _headers(causation_id), correlation_id, reply_to)  # fmt: skip
    await _save(conn, [message])
    return message


class OutboxRelay:
    """Publishes over its own connection and channel, straight through aio-pika: the rows
    already carry their trace headers, and the framework's per-message middlewares would
    cost more CPU than the publish itself at ledger rates. Each publish is a `publish <key>` span,
    the child of the context stored with the row, on the fast path and the relay's alike."""

    def __init__(
        self, pool: asyncpg.Pool, amqp_url: str, *, poll_interval_s: float, grace: timedelta = DEFAULT_GRACE
    ) -> None:
        self._pool = pool
        self._amqp_url = amqp_url
        # Every message says who sent it (the broker checks it): the worker's own broker user.
        self._user_id = unquote(urlsplit(amqp_url).username or "") or None
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._poll_interval_s = poll_interval_s
        self._grace = grace
        self._task: asyncio.Task[None] | None = None
        self._marker: asyncio.Task[None] | None = None
        self._confirmed: list[str] = []  # fast-path message ids confirmed, not yet marked sent
        self._marked = asyncio.Event()
        self._in_flight = asyncio.Semaphore(MAX_DIRECT_IN_FLIGHT)
        self._direct: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._amqp_url, client_properties={"connection_name": "outbox"})
        channel = await self._connection.channel(publisher_confirms=True)
        for exchange in (COMMANDS, EVENTS):
            self._exchanges[exchange.name] = await channel.get_exchange(exchange.name, ensure=False)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._marker = asyncio.create_task(self._mark_forever(), name="outbox-marker")

    async def stop(self) -> None:
        if self._direct:
            await asyncio.wait(self._direct, timeout=PUBLISH_TIMEOUT_S)
        for task in (self._task, self._marker):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._mark_confirmed()  # what was confirmed is not published twice after a clean stop
        if self._connection:
            await self._connection.close()

    # -- fast path ---------------------------------------------------------------------------

    async def publish_committed(self, messages: Iterable[Outgoing]) -> None:
        """Publish rows whose transaction has committed, without waiting for the confirms.

        Bounded: past MAX_DIRECT_IN_FLIGHT unconfirmed messages the caller waits here (back
        pressure). A message that is not confirmed stays unsent and the relay takes it over.
        """
        for message in messages:
            await self._in_flight.acquire()
            task = asyncio.create_task(self._publish_direct(message))
            self._direct.add(task)
            task.add_done_callback(self._direct.discard)

    async def _publish_direct(self, message: Outgoing) -> None:
        try:
            await self._publish(message)
            self._confirmed.append(message.message_id)
            self._marked.set()
        except Exception as exc:  # the relay's safety net publishes it later
            log.warning("direct publish of %s failed, the relay will retry: %r", message.message_id, exc)
        finally:
            self._in_flight.release()

    async def _mark_forever(self) -> None:
        while True:
            await self._marked.wait()
            await asyncio.sleep(MARK_GATHER_S)
            self._marked.clear()
            try:
                await self._mark_confirmed()
            except Exception as exc:  # e.g. the database out of reach: the ids stay queued
                log.warning("marking published outbox rows failed, will retry: %r", exc)
                self._marked.set()
                await asyncio.sleep(self._poll_interval_s)

    async def _mark_confirmed(self) -> None:
        """One UPDATE for every confirmed id gathered meanwhile (ids stay queued if it fails)."""
        while self._confirmed:
            ids = self._confirmed[:MARK_BATCH]
            async with self._pool.acquire() as conn, conn.transaction():
                # Not waiting for this commit's fsync: a mark lost in a crash only makes the relay
                # publish the message again, under the same message_id, which every consumer's
                # inbox (and audit's record key) takes once.
                await conn.execute("SET LOCAL synchronous_commit = off")
                await conn.execute(
                    "UPDATE outbox SET published_at = clock_timestamp() WHERE message_id = ANY($1::text[]) "
                    "AND published_at IS NULL",
                    ids,
                )
            del self._confirmed[: len(ids)]

    # -- safety net --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.relay_once()
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                log.warning("outbox relay failed, will retry: %r", exc)
                sent = 0
            except Exception:  # the safety net must outlive what nobody foresaw; only cancel ends it
                log.exception("outbox relay failed unexpectedly, will retry")
                sent = 0
            if sent < RELAY_BATCH:  # a full batch means more may be waiting
                await asyncio.sleep(self._poll_interval_s)

    async def relay_once(self, grace: timedelta | None = None) -> int:
        """Publish one batch of rows still unsent after the grace period; returns how many were confirmed."""
        grace = self._grace if grace is None else grace
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, message_id, exchange, routing_key, message_type, payload, headers, correlation_id, reply_to, "
                "extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_s "
                "FROM outbox WHERE published_at IS NULL AND created_at <= clock_timestamp() - $2::interval "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                RELAY_BATCH,
                grace,
            )
            # The lag as this poll found it, at no extra query (rows another replica holds locked
            # are that replica's to report).
            observability.OUTBOX_LAG_SECONDS.set(max((r["age_s"] for r in rows), default=0.0))
            if not rows:
                return 0
            # Confirms dominate the latency, so the batch is published concurrently.
            outcomes = await asyncio.gather(*(self._publish(_outgoing(r)) for r in rows), return_exceptions=True)
            sent = [r["id"] for r, outcome in zip(rows, outcomes) if outcome is None or outcome is UNROUTED]
            failed = [(r["id"], repr(o)) for r, o in zip(rows, outcomes) if isinstance(o, BaseException)]
            if sent:
                await conn.execute("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])", sent)
                observability.OUTBOX_RELAYED.inc(len(sent))
            for row_id, error in failed:
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1", row_id, error
                )
            if failed:
                log.warning("outbox: %d events not confirmed, retrying later: %s", len(failed), failed[0][1])
            return len(sent)

    async def _publish(self, row: Outgoing) -> object | None:
        with tracing.publishing(row.routing_key, exchange=row.exchange, message_id=row.message_id,
                                correlation_id=row.correlation_id, parent=tracing.extract(row.headers)):  # fmt: skip
            message = aio_pika.Message(
                body=body_of(row.payload),
                content_type="application/json",
                headers=tracing.inject(dict(row.headers)),  # the consumer's span: a child of this publish
                message_id=row.message_id,
                correlation_id=row.correlation_id,
                reply_to=row.reply_to,
                type=row.message_type,
                user_id=self._user_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            confirm = await self._exchanges[row.exchange].publish(
                message, routing_key=row.routing_key, mandatory=True, timeout=PUBLISH_TIMEOUT_S
            )
        if isinstance(confirm, DeliveredMessage):
            if row.exchange == COMMANDS.name:
                raise RuntimeError(f"no queue for command {row.routing_key}")  # retried: a command must arrive
            # basic.return: no queue is bound for this key. An event is a broadcast fact; with
            # no subscriber there is nobody to tell, so it counts as sent (audit, which binds
            # `#`, makes every event routable once it runs).
            log.debug("event %s had no subscriber", row.routing_key)
            return UNROUTED
        if not isinstance(confirm, Basic.Ack):
            raise RuntimeError(f"broker did not confirm {row.message_id}: {confirm!r}")
        return None


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes a stored message travels as, the same on every publish of it. The fast path
    publishes the dict it wrote, the relay the dict PostgreSQL gives back, and jsonb orders keys its
    own way: a command published by both (its sender died before marking it sent) must hash the
    same in the receiver's inbox, or the second is refused as `idempotency_key_reused`."""
    return sorted_json(payload, ascii_only=True)


def _outgoing(row: asyncpg.Record) -> Outgoing:
    return Outgoing(row["message_id"], row["exchange"], row["routing_key"], row["message_type"], row["payload"],
                    dict(row["headers"]), row["correlation_id"], row["reply_to"])  # fmt: skip
