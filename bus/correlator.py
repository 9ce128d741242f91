"""Request/reply for the edge: one exclusive reply queue per instance, `correlation_id → future`.

Not `broker.request`: that allows one request in flight per process and waits forever by
default. Here any number are in flight, each bounded by its own timeout, and a late or
unknown reply is dropped (the worker's inbox still has it for the status route).

On aio-pika directly, with a connection of its own (issue 10): every HTTP request and every bench
command crosses this twice, and FastStream's publish and subscriber pipelines (context, dependency
injection, middlewares, an ack per reply) cost the edge and the bench client more CPU than the
message itself. Replies are consumed without acks: the reply queue is exclusive and dies with the
connection anyway, and a reply lost with it is a timeout, which the caller already handles
(202 and an operation id). The trace context travels: each command is published in a
`publish <command>` span (bus/tracing.py), whose `traceparent` the worker's span continues.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError
from faststream.rabbit import RabbitQueue

from bus import topology, tracing
from bus.settings import broker_user
from contracts.common import Command, Reply

log = logging.getLogger("cbs.correlator")

MAX_IN_FLIGHT = 10_000  # past this the edge answers 503 instead of growing without bound


class Backpressure(RuntimeError):
    """Too many requests in flight; the caller should answer 503."""


class Unroutable(RuntimeError):
    """No queue is bound for the routing key: the topology was not declared (run `cbs migrate`)."""


class BrokerUnavailable(RuntimeError):
    """The broker did not confirm the command: the connection was lost under the publish (its node
    died) or no confirm came in time. It may or may not have arrived, so it is not "accepted"
    (a 202 promises it was): the caller answers 503 and the client retries with the same key,
    which the worker's inbox makes safe either way."""


class ReplyTimeout(TimeoutError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id


def encode(command: Command) -> bytes:
    """The body a command travels as: what the worker's inbox hashes (`request_hash`)."""
    return command.model_dump_json().encode()


def request_hash(body: bytes) -> str:
    """The same hash the worker's inbox keeps (bus/inbox.py), so the sender can name its request."""
    return hashlib.sha256(body).hexdigest()


class Correlator:
    """`start()` before the first request, `stop()` at the end."""

    def __init__(self, amqp_url: str, instance: str | None = None, user_id: str | None = None,
                 reply_queue: RabbitQueue | None = None) -> None:  # fmt: skip
        self.amqp_url = amqp_url
        # Sent as the AMQP user_id, which the broker checks against the connection's user: every
        # command must carry it, and it is what lets workers trust the edge's `x-actor` header.
        self.user_id = user_id
        self.instance = instance or uuid.uuid4().hex[:12]
        self.reply_queue = reply_queue or topology.edge_reply_queue(self.instance)
        # correlation_id -> (the reply's future, the broker user that alone may answer it)
        self._pending: dict[str, tuple[asyncio.Future[bytes], str]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._commands: aio_pika.abc.AbstractExchange | None = None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.amqp_url, client_properties={"connection_name": f"replies {self.reply_queue.name}"})  # fmt: skip
        # on_return_raises: a command no queue is bound for comes back as an error, not silence.
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._commands = await channel.get_exchange(topology.COMMANDS.name, ensure=False)
        queue = await channel.declare_queue(self.reply_queue.name, durable=False, exclusive=True, auto_delete=True)
        await queue.consume(self._on_reply, no_ack=True)

    async def stop(self) -> None:
        for future, _ in self._pending.values():
            if not future.done():
                future.cancel()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        waiting = self._pending.get(message.correlation_id or "")
        if waiting is None:
            return
        future, answerer = waiting
        if message.user_id != answerer:
            # Any worker may write to the default exchange: only the worker asked may answer.
            log.warning("reply %s from %r dropped: %s was asked", message.correlation_id, message.user_id, answerer)
            return
        self._pending.pop(message.correlation_id or "", None)
        if not future.done():
            future.set_result(message.body)

    async def send(
        self,
        command: Command,
        *,
        message_id: str,
        timeout_s: float,
        headers: dict[str, Any] | None = None,
    ) -> Reply:
        """Publish a command and wait for its reply; ReplyTimeout when none comes in time."""
        return await self.request(
            command.routing_key, encode(command), command.message_type,
            message_id=message_id, timeout_s=timeout_s, headers=headers,
        )

    async def request(
        self,
        routing_key: str,
        payload: dict[str, Any] | bytes,
        message_type: str,
        *,
        message_id: str,
        timeout_s: float,
        headers: dict[str, Any] | None = None,
    ) -> Reply:
        if self._commands is None:
            raise RuntimeError("Correlator.start() was not called")
        if len(self._pending) >= MAX_IN_FLIGHT:
            raise Backpressure(f"{MAX_IN_FLIGHT} requests in flight")
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (future, broker_user(routing_key.split(".", 1)[0]))
        headers = dict(headers or {})
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            with tracing.publishing(routing_key, exchange=topology.COMMANDS.name, message_id=message_id,
                                    correlation_id=correlation_id):  # fmt: skip
                message = aio_pika.Message(
                    body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message_id, correlation_id=correlation_id, type=message_type,
                    reply_to=self.reply_queue.name, headers=tracing.inject(headers), user_id=self.user_id,
                )  # fmt: skip
                try:
                    await self._commands.publish(message, routing_key, mandatory=True, timeout=timeout_s)
                except PublishError as exc:  # basic.return
                    raise Unroutable(f"no queue for {routing_key}") from exc
                except DeliveryError as exc:  # basic.nack: the queue is full (reject-publish)
                    raise Backpressure(f"the broker refused {routing_key}: its queue is full") from exc
                except (TimeoutError, ConnectionError, ChannelInvalidStateError) as exc:
                    raise BrokerUnavailable(f"the broker did not confirm {routing_key}: {exc!r}") from exc
            answer = await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise ReplyTimeout(message_id) from exc
        finally:
            self._pending.pop(correlation_id, None)
        return Reply.model_validate_json(answer)
