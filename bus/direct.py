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

# How long finished deliveries wait for the ones before them, so one basic.ack (multiple) settles
# them all: a batch's deliveries finish within a few loop turns of each other. Far below any
# timeout, and a delivery finished behind one still running is acked alone, never held up.
ACK_GATHER_S = 0.002


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


class GatheredAcks:
    """Acks of one consumer's channel, sent as few frames as the order of completion allows.

    A quorum queue writes each ack (a settle) to its log, and each is a frame and a socket write
    on both sides (issue 10: 11% of the ledger's CPU at one transfer a command was writing frames).
    Delivery tags count 1, 2, 3… on a channel. `floor` is the lowest tag not yet settled with the
    broker; a finished delivery is `done`. `flush` acks the run of done tags from `floor` with one
    ack (`multiple`) on the last, which the broker applies to every unsettled tag up to it: all of
    them done, by construction. A done delivery behind one still running is acked alone; a nack
    or reject is `settled` once its frame is written, so the floor can pass it.
    """

    def __init__(self) -> None:
        self._channel: object | None = None
        self._floor = 1
        self._done: dict[int, AbstractIncomingMessage] = {}
        self._settled: set[int] = set()  # settled alone, above the floor
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Future[None]] = set()

    def received(self, message: AbstractIncomingMessage) -> None:
        if message.channel is not self._channel:
            # The first delivery, or a new channel (the robust connection came back): tags start
            # at 1 again, and the old channel's unsettled deliveries are the broker's to redeliver.
            self._channel, self._floor = message.channel, 1
            self._done.clear()
            self._settled.clear()

    def settled(self, message: AbstractIncomingMessage) -> None:
        if message.channel is self._channel and message.delivery_tag is not None:
            self._settled.add(message.delivery_tag)

    def done(self, message: AbstractIncomingMessage) -> None:
        if message.channel is not self._channel or message.delivery_tag is None:
            return
        self._done[message.delivery_tag] = message
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(ACK_GATHER_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        last: AbstractIncomingMessage | None = None
        run = 0
        while True:
            if self._floor in self._settled:
                self._settled.discard(self._floor)
            elif self._floor in self._done:
                last, run = self._done.pop(self._floor), run + 1
            else:
                break
            self._floor += 1
        if last is not None:
            self._send(last, multiple=run > 1)
        for tag, message in sorted(self._done.items()):  # behind a delivery still running
            self._settled.add(tag)
            self._send(message, multiple=False)
        self._done.clear()

    async def drain(self) -> None:
        """Send what is gathered and wait for it to be written (before the connection closes)."""
        self.flush()
        if self._sending:
            await asyncio.wait(self._sending)

    def _send(self, message: AbstractIncomingMessage, *, multiple: bool) -> None:
        future = asyncio.ensure_future(self._ack(message, multiple=multiple))
        self._sending.add(future)
        future.add_done_callback(self._sending.discard)

    @staticmethod
    async def _ack(message: AbstractIncomingMessage, *, multiple: bool) -> None:
        try:
            await message.ack(multiple=multiple)
        except Exception:  # the channel closed meanwhile: the broker redelivers, the inbox answers
            log.warning("could not ack %s", message.message_id, exc_info=True)


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
        self._acks = GatheredAcks()

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
        await self._acks.drain()
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Concurrently, as FastStream's subscriber ran them: the committer gathers them into batches.
        self._acks.received(message)
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
            self._acks.settled(message)  # after its frame: an ack (multiple) sent later passes it
            return
        except asyncio.CancelledError:
            raise  # shutting down: left unacked (the floor stays below it), the broker redelivers it
        except Exception:
            log.exception("%s failed on %s; returned to its queue", self.queue_name, message.message_id)
            await message.nack(requeue=True)
            self._acks.settled(message)
            return
        self._acks.done(message)
