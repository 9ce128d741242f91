"""bus/streams.py on the real broker and database: each message of a stream applied once, across a
failing batch, a stopped reader and a second replica; a gap left by retention is reported."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from bus.streams import Gap, StreamBatch, StreamLimits, StreamReader, offset_of
from tests.integration.conftest import eventually

ROOT = Path(__file__).parents[2]
SCHEMA = "stream_test"


@pytest.fixture
async def scratch(admin_db: asyncpg.Pool, infra: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A schema with the runtime's stream_offset table and a table the batches write to."""
    async with admin_db.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(f"SET search_path = {SCHEMA}; " + (ROOT / "bus/sql/0005_stream_offsets.sql").read_text())
        await conn.execute(f"CREATE TABLE {SCHEMA}.applied (body text NOT NULL, stream_offset bigint NOT NULL)")
    pool = await asyncpg.create_pool(infra["database_url"], min_size=1, max_size=4,
                                     server_settings={"search_path": SCHEMA})  # fmt: skip
    assert pool is not None
    yield pool
    await pool.close()


async def _declare_stream(amqp_url: str, name: str, arguments: dict[str, int] | None = None) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "stream", **(arguments or {})})


async def _publish(amqp_url: str, stream: str, bodies: list[str]) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body.encode(), message_id=body), routing_key=stream)


class Applier:
    """Writes each message's body; fails once, after writing, when told to (a worker dying mid-batch)."""

    def __init__(self, fail_once_at: int | None = None) -> None:
        self.fail_once_at = fail_once_at
        self.gaps: list[Gap] = []
        self.calls = 0

    async def __call__(self, conn: asyncpg.Connection, batch: StreamBatch) -> None:
        self.calls += 1
        await conn.executemany("INSERT INTO applied (body, stream_offset) VALUES ($1, $2)",
                               [(m.body.decode(), offset_of(m)) for m in batch.messages])  # fmt: skip
        if batch.gap is not None:
            self.gaps.append(batch.gap)
        if self.fail_once_at is not None and self.calls == self.fail_once_at:
            self.fail_once_at = None
            raise RuntimeError("died halfway through the batch")


def _reader(stream: str, apply: Applier, pool: asyncpg.Pool, infra: dict[str, str], max_batch: int = 50) -> StreamReader:
    return StreamReader(stream, apply, pool=pool, dsn=infra["database_url"], schema=SCHEMA, amqp_url=infra["amqp_url"],
                        limits=StreamLimits(max_batch=max_batch, prefetch=100), max_body_bytes=1_000_000)  # fmt: skip


def _holds(reader: StreamReader):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return reader.holds_lease

    return check


async def _applied(pool: asyncpg.Pool) -> list[str]:
    return [r["body"] for r in await pool.fetch("SELECT body FROM applied ORDER BY stream_offset")]


async def test_each_message_is_applied_once_through_a_failed_batch_a_stop_and_a_second_replica(
    scratch: asyncpg.Pool, infra: dict[str, str],
) -> None:  # fmt: skip
    stream = f"test.stream.{uuid.uuid4().hex[:8]}"
    await _declare_stream(infra["amqp_url"], stream)
    first = [f"m{i:04d}" for i in range(300)]
    await _publish(infra["amqp_url"], stream, first)
    a, b = _reader(stream, Applier(fail_once_at=2), scratch, infra), _reader(stream, Applier(), scratch, infra)
    await a.start()
    await eventually(_holds(a), timeout_s=10)
    await b.start()
    await eventually(lambda: _applied_count(scratch, 300), timeout_s=20)
    assert a.holds_lease and not b.holds_lease, "one reader per stream"
    await a.stop()  # the standby takes over from the committed offset
    second = [f"n{i:04d}" for i in range(200)]
    await _publish(infra["amqp_url"], stream, second)
    await eventually(lambda: _applied_count(scratch, 500), timeout_s=30)
    await asyncio.sleep(0.5)  # anything applied twice would have landed by now
    assert b.holds_lease
    await b.stop()
    assert await _applied(scratch) == first + second
    row = await scratch.fetchrow("SELECT next_offset, messages_applied, gaps FROM stream_offset WHERE stream = $1", stream)
    assert (row["next_offset"], row["messages_applied"], row["gaps"]) == (500, 500, 0)


async def _applied_count(pool: asyncpg.Pool, expected: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM applied") >= expected


async def test_a_gap_left_by_retention_is_handed_to_apply_and_counted(scratch: asyncpg.Pool, infra: dict[str, str]) -> None:
    stream = f"test.stream.{uuid.uuid4().hex[:8]}"
    # Tiny segments and retention: while no one reads, the oldest messages are removed.
    await _declare_stream(infra["amqp_url"], stream, {"x-max-length-bytes": 20_000, "x-stream-max-segment-size-bytes": 2_000})
    await _publish(infra["amqp_url"], stream, [f"g{i:04d}-" + "x" * 200 for i in range(400)])
    apply = Applier()
    reader = _reader(stream, apply, scratch, infra)
    await reader.start()
    try:
        await eventually(lambda: _has_last(scratch, "g0399"), timeout_s=20)
    finally:
        await reader.stop()
    assert len(apply.gaps) == 1 and apply.gaps[0].first == 0
    kept = await _applied(scratch)
    assert kept == [f"g{i:04d}-" + "x" * 200 for i in range(400 - len(kept), 400)], "what is kept is read in order"
    lost = 400 - len(kept)
    assert 0 < lost <= apply.gaps[0].at_most_messages, "the gap's bound covers what was lost"
    offsets = [r["stream_offset"] for r in await scratch.fetch("SELECT stream_offset FROM applied ORDER BY 1")]
    assert offsets[0] == apply.gaps[0].last + 1
    # Past the gap, the stream's own entry at each segment start skips one offset: not a gap.
    assert {b - a for a, b in zip(offsets, offsets[1:], strict=False)} == {1, 2}
    row = await scratch.fetchrow("SELECT next_offset, gaps FROM stream_offset WHERE stream = $1", stream)
    assert (row["next_offset"], row["gaps"]) == (offsets[-1] + 1, 1)


async def _has_last(pool: asyncpg.Pool, prefix: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM applied WHERE body LIKE $1", prefix + "%"))
