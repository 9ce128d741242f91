"""Group commit (DESIGN §7): many messages, one database transaction, one fsync.

Deliveries of a batched command wait in memory (bounded by the channel's prefetch) for at
most `window_ms`; the batch is then committed in one transaction: the inbox rows, the
handler's effects and outbox rows, the stored replies. Only after the commit does each
delivery get its reply and its ack, so a crash anywhere loses nothing: uncommitted
deliveries are redelivered, committed ones find their inbox rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from faststream.rabbit import RabbitMessage

from bus import grants, inbox, joint
from bus.actor import believed, unauthenticated
from bus.handling import BatchHandler, CommandHandler, Context, Deferred
from bus.inbox import Seen
from contracts.common import Command, Reply

if TYPE_CHECKING:
    from bus.runtime import Runtime  # above this module: the runtime hands its batches here

log = logging.getLogger("cbs.batching")


@dataclass
class Item:
    command: Command
    msg: RabbitMessage
    body_hash: str
    future: asyncio.Future[Reply | None] = field(repr=False)  # None: a saga step owes the reply

    @property
    def message_id(self) -> str:
        return str(self.msg.raw_message.message_id)


def each(handler: CommandHandler) -> BatchHandler:
    """A plain handler run for each message of a batch in turn, in the batch's one transaction:
    the batch shares the commit, and its requests of other workers may leave as one (bus/joint.py)."""

    async def run(items: Sequence[tuple[Context, Any]]) -> list[Reply | Deferred]:
        return [await handler(ctx, command) for ctx, command in items]

    return run


@dataclass(frozen=True)
class BatchLimits:
    window_ms: float = 2.0  # how long the first message of a batch may wait for company
    max_messages: int = 64
    max_units: int = 8_000  # e.g. transfers: a batch never holds more than this many
    # Batches in flight per process. One is fastest here: a second batch mostly waits on the
    # first one's row locks and adds an fsync, while its messages could have joined a batch.
    concurrent_batches: int = 1


class GroupCommitter:
    def __init__(
        self,
        runtime: "Runtime",
        contract: type[Command],
        handler: BatchHandler,
        limits: BatchLimits,
        units: Callable[[Command], int] = lambda _: 1,
    ) -> None:
        self.runtime = runtime
        self.contract = contract
        self.handler = handler
        self.limits = limits
        self.units = units
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._slots = asyncio.Semaphore(limits.concurrent_batches)
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._carry: Item | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._collect(), name=f"group-commit-{self.contract.routing_key}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, *self._in_flight, return_exceptions=True)

    async def submit(self, command: Command, msg: RabbitMessage, body: bytes) -> Reply | None:
        """The reply to send now, or None while a saga step still owes it."""
        if self._task is None:
            self.start()
        future: asyncio.Future[Reply | None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Item(command, msg, inbox.request_hash(body), future))
        return await future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            first, self._carry = (self._carry, None) if self._carry else (await self._queue.get(), None)
            batch = [first]
            units = self.units(batch[0].command)
            deadline = loop.time() + self.limits.window_ms / 1000
            while len(batch) < self.limits.max_messages and units < self.limits.max_units:
                if self._queue.empty():
                    # Wait for company only while the window is open; what has already
                    # arrived is taken at once (a busy loop must not shrink the batches).
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    item = self._queue.get_nowait()
                if units + self.units(item.command) > self.limits.max_units:
                    self._carry = item  # it opens the next batch, so arrival order is kept
                    break
                batch.append(item)
                units += self.units(item.command)
            task = asyncio.create_task(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run(self, batch: list[Item]) -> None:
        try:
            await self._commit_and_answer(batch)
        finally:
            self._slots.release()  # taken by `_collect` for this batch

    async def _commit_and_answer(self, batch: list[Item]) -> None:
        try:
            replies = await self.runtime.in_transaction(lambda conn: self._commit(conn, batch))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)  # its delivery is nacked and comes back
                return
            # A bug in one message must not fail its neighbours on every redelivery.
            log.warning("batch of %d failed (%r); committing its messages one by one", len(batch), exc)
            for item in batch:
                await self._commit_and_answer([item])
            return
        for item, reply in zip(batch, replies):
            if not item.future.done():
                item.future.set_result(reply)

    async def _access_refusals(self, conn: asyncpg.Connection, batch: list[Item]) -> dict[int, Reply]:
        """Index -> refusal of each message from nobody we know, or from a partner outside its
        grant (one query for the batch)."""
        consumer = self.contract.routing_key
        contexts = {n: self.runtime.context_for(conn, i.msg, consumer) for n, i in enumerate(batch)}
        refusals: dict[int, Reply] = {n: unauthenticated(c.broker_user) for n, c in contexts.items() if c.actor is None}
        users = {n: c.actor.subject for n, c in contexts.items() if c.actor is not None and c.actor.via == "partner"}
        if users:
            known = await grants.load(conn, set(users.values()))
            refusals |= {n: r for n, user in users.items() if (r := grants.refuse(user, consumer, known)) is not None}
        return refusals

    def _request(self, conn: asyncpg.Connection, item: Item) -> inbox.Request:
        ctx = self.runtime.context_for(conn, item.msg, self.contract.routing_key)
        return inbox.Request(item.body_hash, ctx.actor.subject if ctx.actor else (ctx.broker_user or ""))

    async def _commit(self, conn: asyncpg.Connection, batch: list[Item]) -> list[Reply | None]:
        consumer = self.contract.routing_key
        replies: dict[int, Reply | None] = {}
        first_of: dict[str, int] = {}  # message_id -> index of its first delivery in this batch
        copies: dict[int, int] = {}  # index of a repeat of the same request -> index of its first
        fresh: list[int] = []
        refused = await self._access_refusals(conn, batch)
        requests = {n: self._request(conn, item) for n, item in enumerate(batch) if n not in refused}
        claimed = await inbox.claim_many(conn, consumer, [(batch[n].message_id, r) for n, r in requests.items()])
        replies.update(refused)  # each its own refusal, not stored: once granted, it is acted on
        for index, request in requests.items():
            item = batch[index]
            if (first := first_of.get(item.message_id)) is not None:
                # The same key twice in one batch: the same request is answered like its first
                # copy; another body (or asker) under it is refused, never given the first's reply.
                earlier = Seen(requests[first].body_hash, None, requests[first].requester)
                if earlier.same_request(request):
                    copies[index] = first
                else:
                    replies[index] = self.runtime.stored_answer(earlier, item.message_id, request)
                continue
            first_of[item.message_id] = index
            seen = claimed.get(item.message_id)
            if seen is None:
                fresh.append(index)
            else:
                replies[index] = self.runtime.stored_answer(seen, item.message_id, request)
        if fresh:
            collector = joint.Collector(dict(self.runtime.routes.joint))
            contexts = []
            for i in fresh:
                ctx = self.runtime.context_for(conn, batch[i].msg, consumer)
                ctx.joint = collector
                contexts.append((ctx, believed(batch[i].command, ctx.actor)))
            answers = await self.handler(contexts)
            assert len(answers) == len(fresh), "a batch handler answers every message"
            await collector.send(conn, self.runtime.routes.worker, consumer)
            replies.update((i, a if isinstance(a, Reply) else None) for i, a in zip(fresh, answers))
            # A deferred message's reply is stored by the saga step that answers it.
            await inbox.store_replies(conn, consumer, [
                (batch[i].message_id, reply.model_dump(mode="json")) for i in fresh if (reply := replies[i]) is not None
            ])  # fmt: skip
        for index in [*refused, *fresh]:
            reply = replies[index]
            if reply is not None and not reply.ok:
                await self.runtime.record_refusal(self.runtime.context_for(conn, batch[index].msg, consumer), reply)
        return [replies[copies.get(n, n)] for n in range(len(batch))]
