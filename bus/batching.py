"""Group commit (DESIGN §7): the gathering half. Deliveries of a batched command wait in memory
(bounded by the channel's prefetch) for at most `window_ms`, then go to `commit` together, which
answers each (the runtime's one commit recipe: one transaction for the batch). Only after that
commit does each delivery get its answer, so its reply and ack; a crash anywhere loses nothing:
uncommitted deliveries are redelivered, committed ones find their inbox rows.

This module knows nothing of messages, databases or replies: it gathers, bounds and answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bus import observability

log = logging.getLogger("cbs.batching")

P = TypeVar("P")  # what is gathered (a parsed delivery)
R = TypeVar("R")  # its answer


@dataclass(frozen=True)
class BatchLimits:
    window_ms: float = 2.0  # how long the first message of a batch may wait for company
    max_messages: int = 64
    max_units: int = 8_000  # e.g. transfers: a batch never holds more than this many
    # Batches in flight per process. One is fastest here: a second batch mostly waits on the
    # first one's row locks and adds an fsync, while its messages could have joined a batch.
    concurrent_batches: int = 1


@dataclass
class _Waiting(Generic[P, R]):
    item: P
    answer: asyncio.Future[R] = field(repr=False)


class GroupCommitter(Generic[P, R]):
    """Gathers items into batches within `limits` and hands each batch to `commit`, which answers
    every item in order (or raises: the batch is then committed one by one, so one bad item
    cannot fail its neighbours on every redelivery)."""

    def __init__(
        self,
        name: str,
        commit: Callable[[Sequence[P]], Awaitable[Sequence[R]]],
        limits: BatchLimits,
        units: Callable[[P], int] = lambda _: 1,
    ) -> None:
        self.name = name
        self.commit = commit
        self.limits = limits
        self.units = units
        self._queue: asyncio.Queue[_Waiting[P, R]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(limits.concurrent_batches)
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._carry: _Waiting[P, R] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._collect(), name=f"group-commit-{self.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, *self._in_flight, return_exceptions=True)
        # A worker started again (the same app, as tests do) gathers anew: its first submit starts
        # a new collector, with every slot free (the cancelled collector held one while it waited
        # for a first item). What waited here is unacked, and its delivery comes back.
        self._task, self._carry = None, None
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.limits.concurrent_batches)

    async def submit(self, item: P) -> R:
        """`item`'s answer, once its batch has committed."""
        if self._task is None:
            self.start()
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Waiting(item, answer))
        return await answer

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            first, self._carry = (self._carry, None) if self._carry else (await self._queue.get(), None)
            batch = [first]
            units = self.units(first.item)
            deadline = loop.time() + self.limits.window_ms / 1000
            while len(batch) < self.limits.max_messages and units < self.limits.max_units:
                if self._queue.empty():
                    # Wait for company only while the window is open; what has already
                    # arrived is taken at once (a busy loop must not shrink the batches).
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        waiting = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    waiting = self._queue.get_nowait()
                if units + self.units(waiting.item) > self.limits.max_units:
                    self._carry = waiting  # it opens the next batch, so arrival order is kept
                    break
                batch.append(waiting)
                units += self.units(waiting.item)
            task = asyncio.create_task(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run(self, batch: list[_Waiting[P, R]]) -> None:
        try:
            await self._commit_and_answer(batch)
        finally:
            self._slots.release()  # taken by `_collect` for this batch

    async def _commit_and_answer(self, batch: list[_Waiting[P, R]]) -> None:
        started = time.perf_counter()
        try:
            answers = await self.commit([w.item for w in batch])
        except Exception as exc:
            observability.GROUP_COMMIT_MESSAGES.labels(self.name, "failed").inc(len(batch))
            if len(batch) == 1:
                batch[0].answer.set_exception(exc)  # its delivery is nacked and comes back
                return
            # A bug in one message must not fail its neighbours on every redelivery.
            log.warning("batch of %d failed (%r); committing its messages one by one", len(batch), exc)
            for waiting in batch:
                await self._commit_and_answer([waiting])
            return
        assert len(answers) == len(batch), "commit answers every item"
        observability.GROUP_COMMIT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        observability.GROUP_COMMIT_MESSAGES.labels(self.name, "committed").inc(len(batch))
        for waiting, answer in zip(batch, answers):
            if not waiting.answer.done():
                waiting.answer.set_result(answer)
