"""Dead letters: list them, and replay them to where they first went (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika

from bus import topology

MAX_LISTED = 1_000  # a listing never pulls more than this into memory


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    routing_key: str
    exchange: str
    message_type: str | None
    reason: str | None
    queue: str | None
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "routing_key": self.routing_key,
            "exchange": self.exchange,
            "type": self.message_type,
            "reason": self.reason,
            "queue": self.queue,
            "body": self.body[:500].decode("utf-8", "replace"),
        }


def _dead_letter(message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    deaths = (message.headers or {}).get("x-death") or [{}]
    first: Any = deaths[0] if isinstance(deaths, list) else {}
    return DeadLetter(
        message_id=message.message_id,
        routing_key=message.routing_key or "",
        exchange=str(first.get("exchange", topology.COMMANDS.name)),
        message_type=message.type,
        reason=str(first.get("reason")) if first.get("reason") else None,
        queue=str(first.get("queue")) if first.get("queue") else None,
        body=message.body,
    )


async def _fetch_all(channel: aio_pika.abc.AbstractChannel, limit: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.get_queue(topology.DEAD_LETTER_QUEUE_NAME, ensure=True)
    fetched = []
    while len(fetched) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        fetched.append(message)
    return fetched


async def list_dead(amqp_url: str, limit: int = MAX_LISTED) -> list[DeadLetter]:
    """Peek at dead letters: every fetched message is returned to the queue afterwards."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        fetched = await _fetch_all(channel, min(limit, MAX_LISTED))
        letters = [_dead_letter(m) for m in fetched]
        for message in fetched:
            await message.nack(requeue=True)
        return letters


async def replay(amqp_url: str, message_ids: set[str] | None, limit: int = MAX_LISTED) -> list[str]:
    """Republish dead letters (all, or those with the given ids) with their own message_id.

    Republish first, ack after the broker confirmed it: a crash in between replays twice,
    which the consumers' inboxes absorb.
    """
    connection = await aio_pika.connect(amqp_url)
    replayed: list[str] = []
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        fetched = await _fetch_all(channel, min(limit, MAX_LISTED))
        for message in fetched:
            letter = _dead_letter(message)
            if message_ids is not None and letter.message_id not in message_ids:
                await message.nack(requeue=True)
                continue
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")}
            exchange = await channel.get_exchange(letter.exchange, ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    headers=headers,
                    content_type=message.content_type,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    reply_to=message.reply_to,
                    type=message.type,
                    # Who first sent it still says who asks: the `dlq` user may keep another user's
                    # user_id (RabbitMQ's `impersonator` tag), and nothing else may (ops/broker_users.py).
                    user_id=message.user_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=letter.routing_key,
            )
            await message.ack()
            replayed.append(letter.message_id or "")
    return replayed
