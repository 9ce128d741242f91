"""`cbs bench --baseline`: the bare peer CBS is measured against, on the same broker and database.

The peer does the ledger's job with nothing of what CBS pays for (no inbox, outbox, audit, auth,
contracts): one FastStream subscriber on a durable queue, persistent messages, an asyncpg pool,
one PostgreSQL transaction per command (lock the accounts it names in id order, check each
transfer against the payer's balance, update the balances, insert the transfers), the reply published to the client's own
queue and correlated by id. It runs as its own process (`python -m ops.bench.baseline`), like a
worker, under the same load driver as `cbs bench` (ops/bench/transfers.py: `drive`). Its tables
live in the schema `bench_peer` and its queue is `bench.peer.transfers`, both made for the run and
removed after it; CBS's data is never touched.

A ratio from one run on one machine is the figure that counts (the machine is shared and noisy):
`cbs bench --baseline` prints the peer's table, then CBS's, then CBS ÷ peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
import asyncpg
from faststream import FastStream
from faststream.rabbit import RabbitBroker, RabbitQueue

from ops.bench import cpu
from ops.bench import transfers as bt

QUEUE = "bench.peer.transfers"
# The peer's queue type: classic (the yardstick) or quorum, the type CBS's command queues
# are (replicated in a cluster, Raft-logged on one node), to see what durability alone costs.
QUEUE_TYPE_ENV = "CBS_BENCH_PEER_QUEUE"


def _queue_arguments() -> dict[str, Any]:
    kind = os.environ.get(QUEUE_TYPE_ENV, "classic")
    if kind not in ("classic", "quorum"):
        raise ValueError(f"{QUEUE_TYPE_ENV} must be classic or quorum, not {kind!r}")
    return {"x-queue-type": kind}
SCHEMA = "bench_peer"
log = logging.getLogger("cbs.bench.peer")
READY_TIMEOUT_S = 30
REPLY_TIMEOUT_S = 30
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.account (id uuid PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.transfer (
    id uuid PRIMARY KEY, debit_account_id uuid NOT NULL, credit_account_id uuid NOT NULL,
    amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
"""

# --- the peer -----------------------------------------------------------------------------------


async def apply(conn: asyncpg.Connection, transfers: list[dict[str, Any]]) -> list[str]:
    """The peer's whole ledger, in the caller's transaction: lock every account the command names,
    in id order (so concurrent commands never deadlock), check and move each transfer in turn,
    then write the balances and the transfers. One result code per transfer."""
    parsed = [(uuid.UUID(t["id"]), uuid.UUID(t["debit_account_id"]), uuid.UUID(t["credit_account_id"]),
               int(t["amount"])) for t in transfers]  # fmt: skip
    ids = sorted({a for _, debit, credit, _ in parsed for a in (debit, credit)})
    rows = await conn.fetch(f"SELECT id, balance FROM {SCHEMA}.account WHERE id = ANY($1::uuid[]) "
                            "ORDER BY id FOR UPDATE", ids)  # fmt: skip
    balances = {r["id"]: r["balance"] for r in rows}
    results, posted = [], []
    for transfer_id, debit, credit, amount in parsed:
        if debit == credit or debit not in balances or credit not in balances:
            results.append("account_not_found")
        elif balances[debit] < amount:
            results.append("exceeds_credits")
        else:
            balances[debit] -= amount
            balances[credit] += amount
            posted.append((transfer_id, debit, credit, amount))
            results.append("ok")
    if posted:
        moved = sorted({a for _, debit, credit, _ in posted for a in (debit, credit)})
        await conn.execute(f"UPDATE {SCHEMA}.account AS a SET balance = n.balance FROM unnest($1::uuid[], "
                           "$2::bigint[]) AS n(id, balance) WHERE a.id = n.id", moved, [balances[a] for a in moved])  # fmt: skip
        await conn.executemany(f"INSERT INTO {SCHEMA}.transfer (id, debit_account_id, credit_account_id, amount) "
                               "VALUES ($1, $2, $3, $4)", posted)  # fmt: skip
    return results


def peer_app(amqp_url: str, database_url: str, pool_size: int = 10) -> FastStream:
    # Per-message logs at DEBUG (filtered out, cheaply); a failing message is still logged.
    broker = RabbitBroker(amqp_url, logger=log, log_level=logging.DEBUG)
    pools: list[asyncpg.Pool] = []

    @broker.subscriber(RabbitQueue(QUEUE, durable=True, arguments=_queue_arguments()))
    async def create_transfers(body: dict[str, Any]) -> dict[str, Any]:
        # FastStream acks after the handler returns (after the commit) and publishes the returned
        # reply to the message's reply_to with its correlation_id.
        async with pools[0].acquire() as conn, conn.transaction():
            return {"results": await apply(conn, body["transfers"])}

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(database_url, min_size=2, max_size=pool_size))
        try:
            yield
        finally:
            await pools[0].close()

    return FastStream(broker, lifespan=lifespan, logger=log)


def main() -> None:
    """The peer's process: the broker and database of `cbs migrate` (the administrator's URLs)."""
    from bus.settings import load

    logging.basicConfig(level=logging.WARNING, format="bench peer: %(levelname)s %(message)s")
    settings = load()
    asyncio.run(peer_app(settings.amqp_url, settings.database_url, settings.db_pool_max).run())


# --- the client: the same load as `cbs bench`, sent to the peer -----------------------------------


@dataclass
class PeerClient:
    amqp_url: str
    connection: aio_pika.abc.AbstractRobustConnection | None = None
    channel: aio_pika.abc.AbstractChannel | None = None
    replies: aio_pika.abc.AbstractQueue | None = None
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    async def __aenter__(self) -> PeerClient:
        self.connection = await aio_pika.connect_robust(self.amqp_url)
        self.channel = await self.connection.channel()
        await self.channel.declare_queue(QUEUE, durable=True, arguments=_queue_arguments())
        self.replies = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await self.replies.consume(self._on_reply, no_ack=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.connection is not None:
            if self.channel is not None:
                await self.channel.queue_delete(QUEUE)  # the peer is gone: nothing of it stays on the broker
            await self.connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self.waiting.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(json.loads(message.body))

    async def consumers(self) -> int:
        assert self.channel is not None
        queue = await self.channel.declare_queue(QUEUE, durable=True, arguments=_queue_arguments())
        return int(queue.declaration_result.consumer_count or 0)

    async def transfers(self, command: bt.c.CreateTransfers) -> list[str]:
        assert self.channel is not None and self.replies is not None
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[correlation_id] = future
        body = {"transfers": [t.model_dump(mode="json", include={"id", "debit_account_id", "credit_account_id",
                                                                   "amount"}) for t in command.transfers]}  # fmt: skip
        message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json",
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT, correlation_id=correlation_id,
                                   reply_to=self.replies.name, message_id=uuid.uuid4().hex)  # fmt: skip
        try:
            await self.channel.default_exchange.publish(message, routing_key=QUEUE)
            return list((await asyncio.wait_for(future, REPLY_TIMEOUT_S))["results"])
        finally:
            self.waiting.pop(correlation_id, None)


async def _set_up(database_url: str, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(DDL)
        await conn.execute(f"TRUNCATE {SCHEMA}.account, {SCHEMA}.transfer")
        await conn.copy_records_to_table("account", schema_name=SCHEMA, columns=["id", "balance"],
                                         records=[(i, bt.OPENING_BALANCE) for i in ids])  # fmt: skip
    finally:
        await conn.close()
    return ids


async def _verify(database_url: str, count: int, ok: int) -> dict[str, Any]:
    """Money is conserved and every `ok` is one stored transfer."""
    conn = await asyncpg.connect(database_url)
    try:
        total = await conn.fetchval(f"SELECT sum(balance) FROM {SCHEMA}.account")
        stored = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.transfer")
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")  # nor in the database
    finally:
        await conn.close()
    mismatches = [] if total == count * bt.OPENING_BALANCE and stored == ok else [{"balance_total": total, "stored": stored}]
    return {"ok": not mismatches, "mismatches": mismatches, "accounts_checked": count, "transfers_checked": stored}


@asynccontextmanager
async def running_peer(client: PeerClient) -> AsyncIterator[None]:
    """The peer as its own process, ready when its subscriber is on the queue; stopped after."""
    process = subprocess.Popen([sys.executable, "-m", "ops.bench.baseline"], env=os.environ.copy())
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while await client.consumers() == 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bench peer did not start (exit code {process.poll()})")
            await asyncio.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def run_peer(options: bt.Options, amqp_url: str, database_url: str, queue_type: str = "classic") -> bt.Outcome:
    """The peer under `options`' load: the same driver, account picker and table as `cbs bench`."""
    os.environ[QUEUE_TYPE_ENV] = queue_type  # read by this client and the peer's process alike
    options = replace(options, via=f"peer ({queue_type} queue)")
    accounts = await _set_up(database_url, options.accounts)
    async with PeerClient(amqp_url) as client, running_peer(client):
        rng = random.Random(7)
        picker = bt.Picker(options, accounts, rng)
        before = cpu.snapshot(database_url)
        tally, elapsed = await bt.drive(options, lambda: client.transfers(bt.command(picker, options.batch, rng)))
        split = cpu.per_transfer_ms(before, cpu.snapshot(database_url), sum(tally.results.values()))
    result = await _verify(database_url, options.accounts, tally.results["ok"])
    done = sum(tally.results.values())
    text = bt.table(options, tally, elapsed, result, checked_by="peer check", after=cpu.rows(split))
    return bt.Outcome(text, bool(result["ok"]) and not tally.errors, done / elapsed)


def ratio_line(cbs: bt.Outcome, peer: bt.Outcome, via: str) -> str:
    return f"CBS transfers/s ({via}) per peer transfers/s (bus), same load: {cbs.per_second / peer.per_second:.2f}"


def rounds_line(ratios: list[float]) -> str:
    """The ratios of `--rounds` (peer then CBS, again and again): each, their median and their
    lowest. Interleaved rounds see the same drift of a shared machine; one pair of runs 20 s apart
    gave 0.60 and the next 0.85 on 2026-12-07."""
    shown = ", ".join(f"{r:.2f}" for r in ratios)
    return f"ratios by round: {shown}; median {statistics.median(ratios):.2f}, lowest {min(ratios):.2f}"


if __name__ == "__main__":
    main()
