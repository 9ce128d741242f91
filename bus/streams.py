"""Reading a RabbitMQ stream in batches, each message applied to PostgreSQL exactly once.

Why a stream: a stream (`x-queue-type: stream`) is an append-only log. A reader that is away or
slow holds no publisher back, where a bounded queue with `reject-publish` refuses every publisher
once it is full — for audit's taps, that stopped the whole bank when audit paused (issue 10).
The log keeps what retention allows (`x-max-length-bytes`, bus/topology.py) and the reader takes
up from where it left off.

The offset: AMQP 0.9.1 keeps none for a consumer, so the reader keeps it in the worker's
database (`stream_offset`, bus/sql/0005) and moves it in the same transaction as what the
batch wrote, by compare-and-set. A crash anywhere re-reads from the last committed offset; a
batch is never applied twice, not even by two readers at once.

One reader per stream across every replica: a reader holds a session advisory lock on a
connection of its own (never a pooled one) while it reads; a standby replica waits for it and
takes over when that connection ends. A process that already reads one stream asks for the next
lease only after a poll interval, so replicas started together share the streams (each reader is
one process's event loop: two streams in two processes use two cores).

Retention: if the reader was away longer than the stream keeps messages, the first offset
delivered lies past the committed one. That gap is handed to `apply` with the batch, so the
worker can record that it happened (audit chains a record of it), and counted in the row.
Offsets are not one per message: each segment of the log starts with one entry of the stream's
own (seen on RabbitMQ 3.10: 4 messages to a segment took offsets 465-468, then 470-473), so a
skip of one offset is that entry, never a loss; a skip of two or more is a loss, since retention
removes whole segments and each holds a message at least.

Bounds: `StreamLimits` (messages and bytes per batch, the prefetch that bounds memory).

Traces: a batch is one `apply <stream>` span, and each message that carries a `traceparent` its
own `process <stream>` span, the child of its publish (bus/tracing.py).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bus import tracing

log = logging.getLogger("cbs.streams")

OFFSET_HEADER = "x-stream-offset"  # RabbitMQ puts each message's offset in this header
LEASE_POLL_S = 2.0  # how often a standby asks for the lease
LEASE_CHECK_S = 5.0  # how often the holder makes sure its lease connection is alive
RETRY_MAX_S = 5.0  # backoff ceiling after a failure (database or broker away)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_batch: int = 1_000  # messages per transaction
    max_batch_bytes: int = 16 * 1024 * 1024  # bodies per transaction
    prefetch: int = 2_000  # messages the broker may push ahead of the commits (memory bound)
    # How long a batch waits for company after its first message. A stream's reader is on no one's
    # path (nothing waits for it), so it trades a little delay for far fewer transactions: under
    # live load a batch would otherwise be the few messages that arrived during the last commit.
    linger_s: float = 0.1

    def __post_init__(self) -> None:
        assert 0 < self.max_batch <= self.prefetch, "a batch can only gather what the prefetch lets in"


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets [first, last] that retention removed before they were read."""

    first: int
    last: int

    @property
    def at_most_messages(self) -> int:
        """Lost messages, at most: the offsets less the one that starts the first kept segment."""
        return self.last - self.first


def gap_between(next_offset: int, first_delivered: int) -> Gap | None:
    """What was lost between the committed offset and the first one delivered (module docstring)."""
    return Gap(next_offset, first_delivered - 1) if first_delivered - next_offset >= 2 else None


@dataclass(frozen=True, slots=True)
class StreamBatch:
    stream: str
    messages: Sequence[AbstractIncomingMessage]  # in offset order, none applied before
    gap: Gap | None  # lost before the first of them, if any
    max_body_bytes: int  # the cluster's bound on a body, as every consumer applies it


# What a worker does with a batch, in the transaction that also moves the offset. It must not
# raise for bad data (store it, or a note of it): whatever it raises is retried, forever.
ApplyBatch = Callable[[asyncpg.Connection, StreamBatch], Awaitable[None]]


def offset_of(message: AbstractIncomingMessage) -> int:
    return int((message.headers or {})[OFFSET_HEADER])  # type: ignore[call-overload]


def lease_key(stream: str) -> int:
    """The advisory lock of one stream's reader: a stable 32-bit number of its name."""
    return zlib.crc32(f"cbs.stream:{stream}".encode())


class LeaseLost(Exception):
    """The offset moved under this reader (another reader applied the batch): re-read from it."""


class StreamReader:
    """Reads one stream from its committed offset, in batches, while it holds the stream's lease."""

    leases_held_here = 0  # by every reader of this process

    def __init__(
        self, stream: str, apply: ApplyBatch, *, pool: asyncpg.Pool, dsn: str, schema: str, amqp_url: str,
        limits: StreamLimits, max_body_bytes: int,
    ) -> None:  # fmt: skip
        self.stream = stream
        self._apply = apply
        self._pool = pool
        self._dsn = dsn
        self._schema = schema
        self._amqp_url = amqp_url
        self._limits = limits
        self._max_body_bytes = max_body_bytes
        self._task: asyncio.Task[None] | None = None
        self.holds_lease = False
        self.batches_applied = 0
        self.messages_applied = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name=f"stream {self.stream}")

    async def stop(self) -> None:
        """Whatever is not committed stays in the stream for the next reader."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._lease_and_read()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream %s: reading stopped (%r); again in %.1f s", self.stream, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _lease_and_read(self) -> None:
        lease = await asyncpg.connect(self._dsn, server_settings={"search_path": self._schema,
                                                                  "application_name": f"lease {self.stream}"})  # fmt: skip
        try:
            if StreamReader.leases_held_here:
                await asyncio.sleep(LEASE_POLL_S)  # another replica may want this one
            while not await lease.fetchval("SELECT pg_try_advisory_lock($1)", lease_key(self.stream)):
                await asyncio.sleep(LEASE_POLL_S)
            self.holds_lease = True
            StreamReader.leases_held_here += 1
            log.info("stream %s: this replica reads it", self.stream)
            await self._read(lease)
        finally:
            if self.holds_lease:
                StreamReader.leases_held_here -= 1
            self.holds_lease = False
            await lease.close()  # the session ends: its advisory lock goes with it

    async def _next_offset(self) -> int:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO stream_offset (stream, next_offset) VALUES ($1, 0) ON CONFLICT (stream) DO NOTHING",
                self.stream,
            )
            return int(await conn.fetchval("SELECT next_offset FROM stream_offset WHERE stream = $1", self.stream))

    async def _read(self, lease: asyncpg.Connection) -> None:
        next_offset = await self._next_offset()
        arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()  # bounded by the prefetch
        connection = await aio_pika.connect(self._amqp_url, client_properties={"connection_name": f"stream {self.stream}"})
        try:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self._limits.prefetch)  # a stream consumer must set one
            queue = await channel.get_queue(self.stream, ensure=False)
            # Should the broker cancel this consumer (its stream's member moved or went away),
            # nothing would arrive again on this connection, which may itself still be open.
            cancelled = asyncio.Event()
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(lambda _frame: cancelled.set())
            await queue.consume(arrived.put, no_ack=False, arguments={OFFSET_HEADER: next_offset})
            checked = asyncio.get_running_loop().time()
            while True:
                try:
                    first = await asyncio.wait_for(arrived.get(), timeout=LEASE_CHECK_S)
                except asyncio.TimeoutError:
                    first = None
                if first is None and (connection.is_closed or channel.is_closed or cancelled.is_set()):
                    # A plain (not robust) connection: a node lost ends this read, and
                    # `_run_forever` reads again, from the committed offset, over a new connection.
                    raise ConnectionError(f"stream {self.stream}: the broker connection or consumer was lost")
                if asyncio.get_running_loop().time() - checked >= LEASE_CHECK_S:
                    await lease.fetchval("SELECT 1")  # a dead lease connection ends the read here
                    checked = asyncio.get_running_loop().time()
                if first is None:
                    continue
                batch = await self._take(first, arrived)
                next_offset = await self._commit(batch, next_offset)
        finally:
            await connection.close()

    async def _take(
        self, first: AbstractIncomingMessage, arrived: asyncio.Queue[AbstractIncomingMessage]
    ) -> list[AbstractIncomingMessage]:
        """`first` and what follows within the linger, up to the batch's bounds."""
        loop = asyncio.get_running_loop()
        batch, size, deadline = [first], len(first.body), loop.time() + self._limits.linger_s
        while len(batch) < self._limits.max_batch and size < self._limits.max_batch_bytes:
            if arrived.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    message = await asyncio.wait_for(arrived.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                message = arrived.get_nowait()
            batch.append(message)
            size += len(message.body)
        return batch

    async def _commit(self, batch: list[AbstractIncomingMessage], next_offset: int) -> int:
        """Apply the batch's new messages and move the offset past them; ack (which only gives
        the broker credit: a stream removes nothing) once committed. Returns the next offset."""
        fresh = [m for m in batch if offset_of(m) >= next_offset]  # below it: applied already
        if fresh:
            first, last = offset_of(fresh[0]), offset_of(fresh[-1])
            gap = gap_between(next_offset, first)
            if gap is not None:
                log.error("stream %s: offsets %d..%d (up to %d messages) were removed by retention before they "
                          "were read", self.stream, gap.first, gap.last, gap.at_most_messages)  # fmt: skip
            work = StreamBatch(self.stream, fresh, gap, self._max_body_bytes)
            # Each message's `process <stream>` span continues the trace of its publish (its
            # `traceparent` header, which the stream keeps), open until the batch commits.
            with tracing.stream_batch(self.stream, fresh):
                await self._apply_until_committed(work, next_offset, last + 1)
            next_offset = last + 1
            self.batches_applied += 1
            self.messages_applied += len(fresh)
        await batch[-1].ack(multiple=True)
        return next_offset

    async def _apply_until_committed(self, work: StreamBatch, expected: int, new: int) -> None:
        """The database may be away: the batch waits (the bank does not, the stream keeps
        filling). Only LeaseLost gives up on it."""
        delay = 0.1
        while True:
            try:
                async with self._pool.acquire(timeout=10) as conn, conn.transaction():
                    moved = await conn.fetchval(
                        "UPDATE stream_offset SET next_offset = $3, messages_applied = messages_applied + $4, "
                        "gaps = gaps + $5, updated_at = clock_timestamp() "
                        "WHERE stream = $1 AND next_offset = $2 RETURNING 1",
                        self.stream, expected, new, len(work.messages), 1 if work.gap else 0,
                    )  # fmt: skip
                    if moved is None:
                        raise LeaseLost(f"stream {self.stream}: the offset is no longer {expected}")
                    await self._apply(conn, work)
                return
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as exc:
                log.warning("stream %s: batch of %d not applied (%r); again in %.1f s", self.stream,
                            len(work.messages), exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
