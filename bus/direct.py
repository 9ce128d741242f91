"""Group-committed deliveries consumed on aio-pika directly, without FastStream's per-message
pipeline (issue 10: py-spy put that pipeline at a fifth of the ledger's CPU under load: context
resolution, dependency injection, logging and metrics middlewares for every delivery). Two kinds
go this way: a batched command (`batched_command`) and a worker's events (`batched_events`).

What a FastStream subscriber gave, kept: each delivery is validated by the runtime (an invalid
one is answered `invalid_message` where it has an asker, and rejected to the dead-letter
exchange), handed to its group committer, and acked only after its batch committed (and, for a
command, after its batch's reply copy for audit was confirmed); an unexpected error nacks it back
to its quorum queue (whose delivery limit dead-letters a message that keeps failing). Bounded by
the channel's prefetch. On shutdown the consumer is cancelled first, and what was delivered is
finished (or, past the graceful timeout, left unacked: the broker redelivers it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from faststream.exceptions import RejectMessage

from bus import tracing
from bus.runtime import Answered, Delivered, DeliveredEvent, Runtime

log = logging.getLogger("cbs.direct")


@dataclass(frozen=True, slots=True)
class RawDelivery:
    """What the runtime reads of a delivery: its AMQP message (as FastStream's `raw_message`)."""

    raw_message: AbstractIncomingMessage


# A delivery's work, from its parse to its answer; it returns once the delivery may be acked, or
# raises RejectMessage (answered already: dead-letter it).
Process = Callable[[RawDelivery], Awaitable[None]]


def batched_command(runtime: Runtime, contract: Any, submit: Callable[[Delivered], Awaitable[Answered]]) -> Process:
    async def process(delivery: RawDelivery) -> None:
        message = delivery.raw_message
        command = await runtime.parse(contract, message.body, delivery)  # type: ignore[arg-type]
        answered = await submit(Delivered(command, delivery, message.body, tracing.current()))  # type: ignore[arg-type]
        if answered.reply is not None:
            await runtime.reply_to_sender(delivery, answered.reply, copy=False)  # type: ignore[arg-type]
        await answered.copied  # audit has the reply (its batch's copy) before the command is acked

    return process


def batched_events(runtime: Runtime, submit: Callable[[DeliveredEvent], Awaitable[None]]) -> Process:
    async def process(delivery: RawDelivery) -> None:
        await runtime.take_event(delivery.raw_message.body, delivery, submit)  # type: ignore[arg-type]

    return process


class DirectConsumer:
    def __init__(self, queue: str, process: Process, *, amqp_url: str, prefetch: int, graceful_timeout_s: float) -> None:
        self.queue_name = queue
        self.process = process
        self.amqp_url = amqp_url
        self.prefetch = prefetch
        self.graceful_timeout_s = graceful_timeout_s
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_url, client_properties={"connection_name": self.queue_name})
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.prefetch)  # a batch can only gather what this lets in
        # A passive declare, not `get_queue(ensure=False)`: only a queue the robust channel
        # declared is restored with its consumer when the connection comes back (aio-pika keeps
        # no other), and a broker node lost took this consumer with it (tests/cluster).
        self._queue = await channel.declare_queue(self.queue_name, passive=True)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)  # nothing new arrives
            except Exception:  # the connection may be gone already: the broker requeues then
                log.warning("could not cancel the %s consumer", self.queue_name, exc_info=True)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self.graceful_timeout_s)
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Concurrently, as FastStream's subscriber ran them: the committer gathers them into batches.
        task = asyncio.create_task(self._handle(message))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            # One span per message, from its delivery to its answer; its batch's commit links to it.
            with tracing.consuming(message):
                await self.process(RawDelivery(message))
        except RejectMessage:
            await message.reject(requeue=False)  # answered already; to the dead-letter exchange
            return
        except asyncio.CancelledError:
            raise  # shutting down: left unacked, the broker redelivers it
        except Exception:
            log.exception("%s failed on %s; returned to its queue", self.queue_name, message.message_id)
            await message.nack(requeue=True)
            return
        await message.ack()
