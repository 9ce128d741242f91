"""Request/reply for the edge: one exclusive reply queue per instance, `correlation_id → future`.

Not `broker.request`: that allows one request in flight per process and waits forever by
default. Here any number are in flight, each bounded by its own timeout, and a late or
unknown reply is dropped (the worker's inbox still has it for the status route).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from typing import Any

from aiormq.abc import DeliveredMessage
from faststream.rabbit import RabbitBroker, RabbitQueue

from bus import topology
from bus.settings import broker_user
from bus.broker import Delivery
from contracts.common import Command, Reply

log = logging.getLogger("cbs.correlator")

MAX_IN_FLIGHT = 10_000  # past this the edge answers 503 instead of growing without bound


class Backpressure(RuntimeError):
    """Too many requests in flight; the caller should answer 503."""


class Unroutable(RuntimeError):
    """No queue is bound for the routing key: the topology was not declared (run `cbs migrate`)."""


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
    def __init__(self, broker: RabbitBroker, instance: str | None = None, user_id: str | None = None,
                 reply_queue: RabbitQueue | None = None) -> None:  # fmt: skip
        self.broker = broker
        # Sent as the AMQP user_id, which the broker checks against the connection's user: every
        # command must carry it, and it is what lets workers trust the edge's `x-actor` header.
        self.user_id = user_id
        self.instance = instance or uuid.uuid4().hex[:12]
        self.reply_queue = reply_queue or topology.edge_reply_queue(self.instance)
        # correlation_id -> (the reply's future, the broker user that alone may answer it)
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], str]] = {}
        broker.subscriber(self.reply_queue, no_reply=True, include_in_schema=False)(self._on_reply)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def _on_reply(self, body: dict[str, Any], msg: Delivery) -> None:
        waiting = self._pending.get(msg.correlation_id)
        if waiting is None:
            return
        future, answerer = waiting
        if msg.raw_message.user_id != answerer:
            # Any worker may write to the default exchange: only the worker asked may answer.
            log.warning("reply %s from %r dropped: %s was asked", msg.correlation_id, msg.raw_message.user_id, answerer)
            return
        self._pending.pop(msg.correlation_id, None)
        if not future.done():
            future.set_result(body)

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
        if len(self._pending) >= MAX_IN_FLIGHT:
            raise Backpressure(f"{MAX_IN_FLIGHT} requests in flight")
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (future, broker_user(routing_key.split(".", 1)[0]))
        try:
            confirm = await self.broker.publish(
                payload,
                exchange=topology.COMMANDS,
                routing_key=routing_key,
                message_id=message_id,
                correlation_id=correlation_id,
                message_type=message_type,
                reply_to=self.reply_queue.name,
                headers=headers or {},
                content_type="application/json",
                user_id=self.user_id,
                persist=True,
                mandatory=True,
                timeout=timeout_s,
            )
            if isinstance(confirm, DeliveredMessage):  # basic.return
                raise Unroutable(f"no queue for {routing_key}")
            body = await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise ReplyTimeout(message_id) from exc
        finally:
            self._pending.pop(correlation_id, None)
        return Reply.model_validate(body)
