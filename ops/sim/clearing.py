"""A clearing house simulator: an external partner on the bus, built only from `contracts.payment`.

It connects as its own partner user (`partner.<name>`, made by `cbs partner add`), so it may do
exactly what a real clearing house may: read `partner.<name>.events` (bound by the operator to
`payment.submitted`) and `partner.<name>.replies`, and publish its granted commands to
`cbs.commands`. It declares nothing (a partner may configure nothing).

For each `payment.submitted` it waits `settle_delay_s`, then settles the payment or, with
probability `reject_rate`, rejects it. The choice, the partner reference and the message_id are
functions of the payment id (and the seed), so a redelivered event produces the very same command
and the payment worker's inbox absorbs it. The event is acked only after the broker confirmed the
command (at-least-once). In-flight settlements are bounded by the prefetch: each is an unacked event.

Replies to its commands are polled (basic.get) and logged; an interactive `send_incoming_credit`
consumes the same queue, and a consumer is served before a poller, so it gets its own reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from pydantic import ValidationError

from bus import topology
from contracts.common import Command
from contracts.payment import IncomingCredit, PaymentKind, PaymentSubmitted, RejectExternalPayment, SettlePayment

log = logging.getLogger("cbs.clearing_sim")

MAX_IN_FLIGHT = 1000  # unacked events (each one a settlement waiting or being sent)
REPLY_POLL_S = 1.0
REPLIES_PER_POLL = 1000
PUBLISH_TIMEOUT_S = 10.0
RETRY_MAX_S = 5.0  # publish/reconnect backoff cap
STOP_GRACE_S = 5.0  # on stop, settlements in flight get this long to finish; the rest are redelivered later
REJECT_REASON = "beneficiary account closed (simulated)"
APP_ID = "cbs-clearing-sim"
_NAMESPACE = uuid.UUID("6f1c1b1e-3f57-4f0e-9c39-2a8c0c1c5a11")  # the simulator's message ids


# -- pure decisions -----------------------------------------------------------------------------


def partner_reference(payment_id: uuid.UUID) -> str:
    return f"CLR{payment_id.hex.upper()}"


def rejects(payment_id: uuid.UUID, *, seed: int, reject_rate: float) -> bool:
    """A fixed draw in [0, 1) per (seed, payment): the same answer on every redelivery."""
    digest = hashlib.sha256(f"{seed}:{payment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < reject_rate


def message_id_for(name: str, routing_key: str, key: str) -> str:
    """The command's idempotency key: one per partner, command and business key."""
    return str(uuid.uuid5(_NAMESPACE, f"{topology.partner_user(name)}/{routing_key}/{key}"))


def decide(event: PaymentSubmitted, *, seed: int, reject_rate: float) -> SettlePayment | RejectExternalPayment:
    reference = partner_reference(event.payment_id)
    if rejects(event.payment_id, seed=seed, reject_rate=reject_rate):
        return RejectExternalPayment(payment_id=event.payment_id, partner_reference=reference, reason=REJECT_REASON)
    # The settlement time follows from the instruction, not the clock: a redelivered event gives
    # the same body under the same message_id, which the worker's inbox answers as a repeat.
    return SettlePayment(payment_id=event.payment_id, partner_reference=reference, settled_at=event.occurred_at)


def command_message(command: Command, *, name: str, message_id: str, correlation_id: str,
                    headers: dict[str, Any] | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        command.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        correlation_id=correlation_id,
        reply_to=topology.partner_replies_queue_name(name),
        type=command.message_type,
        user_id=topology.partner_user(name),  # the broker checks it is this connection's user
        app_id=APP_ID,
        timestamp=datetime.now(UTC),
        headers=headers or {},
    )  # fmt: skip


# -- publishing ---------------------------------------------------------------------------------


async def publish_confirmed(channel: aio_pika.abc.AbstractChannel, command: Command, message: aio_pika.Message,
                            stop_event: asyncio.Event | None = None) -> None:
    """Publish until the broker confirms it; a nack, a return or a timeout is "not sent" and retried.

    A closed channel (connection lost, permission refused) raises: the caller's delivery stays
    unacked and comes back.
    """
    exchange = await channel.get_exchange(topology.COMMANDS.name, ensure=False)
    delay_s = 0.1
    while True:
        try:
            await exchange.publish(message, routing_key=command.routing_key, mandatory=True, timeout=PUBLISH_TIMEOUT_S)
            return
        except (aio_pika.exceptions.DeliveryError, aio_pika.exceptions.PublishError, asyncio.TimeoutError) as exc:
            if stop_event is not None and stop_event.is_set():
                raise
            log.warning("%s %s not sent (%r); retrying in %.1f s",
                        command.routing_key, message.message_id, exc, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)


# -- the simulator ------------------------------------------------------------------------------


class _Session:
    """One connection's worth of work; `run` makes a new one after a connection is lost."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, name: str, *, settle_delay_s: float,
                 reject_rate: float, seed: int, stop_event: asyncio.Event) -> None:
        self.connection, self.name, self.stop_event = connection, name, stop_event
        self.settle_delay_s, self.reject_rate, self.seed = settle_delay_s, reject_rate, seed
        self.tasks: set[asyncio.Task[None]] = set()
        self.publish: aio_pika.abc.AbstractChannel | None = None
        self.broken = asyncio.Event()
        self.failure: BaseException | None = None

    def _on_close(self, _sender: Any, exc: BaseException | None = None) -> None:
        if not self.stop_event.is_set():
            self.failure = self.failure or exc
            self.broken.set()

    async def run(self, max_in_flight: int) -> None:
        self.connection.close_callbacks.add(self._on_close)
        consume = await self.connection.channel()
        await consume.set_qos(prefetch_count=max_in_flight)
        self.publish = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        for channel in (consume, self.publish):
            channel.close_callbacks.add(self._on_close)
        events = await consume.get_queue(topology.partner_events_queue_name(self.name))  # passive: must exist
        replies = await consume.get_queue(topology.partner_replies_queue_name(self.name))
        tag = await events.consume(self._on_event)
        poller = asyncio.create_task(self._drain_replies(replies))
        log.info("clearing-sim %s: consuming %s", self.name, events.name)
        try:
            await _first(self.stop_event.wait(), self.broken.wait())
        finally:
            poller.cancel()
            if not self.broken.is_set():
                with contextlib.suppress(aiormq.exceptions.AMQPError, RuntimeError):
                    await events.cancel(tag)
                if self.tasks:
                    await asyncio.wait(self.tasks, timeout=STOP_GRACE_S)
            for task in self.tasks:
                task.cancel()  # unacked: the broker redelivers, and the same message_id is deduplicated
            await asyncio.gather(poller, *self.tasks, return_exceptions=True)
        if self.broken.is_set():
            raise self.failure or ConnectionError("connection or channel closed")

    async def _on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._handle(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            await self._settle(message)
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            # Left unacked: the broker redelivers it, and the same message_id is deduplicated.
            log.warning("event %s not done (%r); it will come back", message.message_id, exc)
        except Exception:
            log.exception("event %s: unexpected failure; left unacked", message.message_id)

    async def _settle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert self.publish is not None
        if message.type != PaymentSubmitted.message_type:
            log.debug("ignoring %s (%s)", message.type, message.routing_key)
            await message.ack()
            return
        try:
            event = PaymentSubmitted.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("malformed %s %s, dead-lettered: %s", message.type, message.message_id, exc)
            await message.reject(requeue=False)
            return
        if self.settle_delay_s > 0:
            await asyncio.sleep(self.settle_delay_s)
        command = decide(event, seed=self.seed, reject_rate=self.reject_rate)
        message_id = message_id_for(self.name, command.routing_key, str(event.payment_id))
        headers = {"x-causation-id": message.message_id or ""}
        if message.headers and "traceparent" in message.headers:
            headers["traceparent"] = message.headers["traceparent"]
        out = command_message(command, name=self.name, message_id=message_id, correlation_id=message_id,
                              headers=headers)  # fmt: skip
        await publish_confirmed(self.publish, command, out, self.stop_event)
        await message.ack()  # only now: a crash before this resends the same message_id
        log.info("payment %s: sent %s (%s)", event.payment_id, command.routing_key, command.partner_reference)

    async def _drain_replies(self, replies: aio_pika.abc.AbstractQueue) -> None:
        while True:
            for _ in range(REPLIES_PER_POLL):
                reply = await replies.get(no_ack=False, fail=False)
                if reply is None:
                    break
                log_reply(reply)
                await reply.ack()
            await asyncio.sleep(REPLY_POLL_S)


def log_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    try:
        body = json.loads(message.body)
    except ValueError:
        log.warning("reply %s is not JSON", message.correlation_id)
        return
    if body.get("ok"):
        log.info("reply %s: ok", message.correlation_id)
    else:
        log.warning("reply %s: refused %s", message.correlation_id, (body.get("error") or {}).get("code"))


async def _first(*awaitables: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(amqp_url: str, name: str, *, settle_delay_s: float = 2.0, reject_rate: float = 0.1, seed: int = 1,
              stop_event: asyncio.Event, max_in_flight: int = MAX_IN_FLIGHT) -> None:
    """Settle or reject every submitted payment until `stop_event` is set; reconnect when the link drops.

    `amqp_url` is the partner's own URL (its user and password). A refused permission or a missing
    queue is the operator's to fix: it raises rather than retrying forever.
    """
    if not 0.0 <= reject_rate <= 1.0:
        raise ValueError("reject_rate must be within [0, 1]")
    delay_s = 0.5
    while not stop_event.is_set():
        try:
            connection = await aio_pika.connect(amqp_url)
        except (aiormq.exceptions.AMQPConnectionError, ConnectionError, OSError) as exc:
            if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
                raise
            log.warning("clearing-sim %s: cannot connect (%r); retrying in %.1f s", name, exc, delay_s)
        else:
            async with connection:
                session = _Session(connection, name, settle_delay_s=settle_delay_s, reject_rate=reject_rate,
                                   seed=seed, stop_event=stop_event)  # fmt: skip
                try:
                    await session.run(max_in_flight)
                    return
                except (aiormq.exceptions.ChannelAccessRefused, aiormq.exceptions.ChannelNotFoundEntity):
                    raise
                except (aiormq.exceptions.AMQPError, ConnectionError, OSError) as exc:
                    log.warning("clearing-sim %s: connection lost (%r); reconnecting in %.1f s", name, exc, delay_s)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_event.wait(), delay_s)
        delay_s = min(delay_s * 2, RETRY_MAX_S)


# -- money arriving -----------------------------------------------------------------------------


async def send_incoming_credit(
    amqp_url: str, name: str, *, partner_reference: str, rail: PaymentKind | str, payee_account_number: str,
    payer_name: str, amount: int, currency: str = "INR", payer_account_number: str | None = None,
    payer_ifsc: str | None = None, payer_vpa: str | None = None, description: str | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Send one `payment.incoming_credit` and return its reply (`{"ok": ..., ...}`).

    The message_id is derived from `partner_reference`, so sending the same credit again (after a
    timeout, say) credits once and answers the stored reply. Raises TimeoutError with no reply.
    """
    command = IncomingCredit(
        partner_reference=partner_reference, rail=PaymentKind(rail), payee_account_number=payee_account_number,
        payer_name=payer_name, payer_account_number=payer_account_number, payer_ifsc=payer_ifsc,
        payer_vpa=payer_vpa, amount=amount, currency=currency, description=description,
    )  # fmt: skip
    correlation_id = uuid.uuid4().hex
    message = command_message(command, name=name, correlation_id=correlation_id,
                              message_id=message_id_for(name, command.routing_key, partner_reference))  # fmt: skip
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=100)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def on_reply(reply: aio_pika.abc.AbstractIncomingMessage) -> None:
            if reply.correlation_id == correlation_id and not answer.done():
                answer.set_result(json.loads(reply.body))
            else:
                log_reply(reply)  # a reply to the simulator's commands: it would only log it too
            await reply.ack()

        replies = await channel.get_queue(topology.partner_replies_queue_name(name))
        await replies.consume(on_reply)  # before publishing, so the reply cannot slip past
        try:
            async with asyncio.timeout(timeout_s):
                await publish_confirmed(channel, command, message)
        except TimeoutError:
            raise TimeoutError(
                f"incoming credit {partner_reference!r} not accepted by the broker within {timeout_s} s "
                f"(is the {command.routing_key} queue declared?)"
            ) from None
        try:
            return await asyncio.wait_for(answer, timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no reply to incoming credit {partner_reference!r} within {timeout_s} s; "
                "sending it again with the same reference is safe"
            ) from None
