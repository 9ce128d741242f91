"""The worker runtime: how every worker consumes a message (DESIGN §4).

For each delivery: refuse what cannot be a valid message (no message_id, too big, wrong shape)
to the dead-letter exchange with an `invalid_message` reply; otherwise, in ONE database
transaction, claim the inbox row, run the handler (which writes state and outbox rows) and
store the reply; commit; then reply and ack. A redelivery finds the inbox row and gets the
stored reply with no second effect. Transient database errors are retried here, then the
message is nacked for redelivery, up to the queue's delivery limit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
from faststream.exceptions import RejectMessage
from faststream.rabbit import RabbitBroker, RabbitMessage
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bus import inbox, outbox
from bus.observability import correlation_id_var
from contracts.common import Command, ErrorCode, Event, GetOperation, OperationStatus, Reply

log = logging.getLogger("cbs.runtime")

# Errors worth another try inside the same delivery: the database said "try again".
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
)
DB_ATTEMPTS = 5

C = TypeVar("C", bound=Command)
E = TypeVar("E", bound=Event)


@dataclass
class Context:
    """What a handler may use: the open transaction and the facts of the message."""

    conn: asyncpg.Connection
    message_id: str
    correlation_id: str | None
    actor: str | None
    broker_user: str | None
    now: datetime
    emitted: list[str] = field(default_factory=list)

    async def emit(self, event: Event) -> None:
        """Queue an event in this transaction; it leaves through the outbox after commit."""
        event_id = await outbox.add(
            self.conn, event, correlation_id=self.correlation_id, causation_id=self.message_id
        )
        self.emitted.append(event_id)


CommandHandler = Callable[[Context, Any], Awaitable[Reply]]
EventHandler = Callable[[Context, Any], Awaitable[None]]


@dataclass(frozen=True)
class EventRoute(Generic[E]):
    contract: type[E]
    handler: EventHandler


@dataclass(frozen=True)
class Routes:
    """A worker's contract sheet: which handler answers which command and event."""

    worker: str
    commands: Mapping[type[Command], CommandHandler]
    events: tuple[EventRoute[Any], ...] = ()

    def event_route(self, message_type: str | None) -> EventRoute[Any] | None:
        return next((r for r in self.events if r.contract.message_type == message_type), None)


def _validation_details(exc: ValidationError) -> list[Any]:
    return json.loads(exc.json(include_url=False, include_input=False))


class Runtime:
    def __init__(self, routes: Routes, broker: RabbitBroker, *, max_body_bytes: int) -> None:
        self.routes = routes
        self.broker = broker
        self.max_body_bytes = max_body_bytes
        self.pool: asyncpg.Pool | None = None

    # -- commands --------------------------------------------------------------------------

    async def consume_command(self, contract: type[Command], handler: CommandHandler, body: bytes,
                              msg: RabbitMessage) -> None:
        raw = msg.raw_message
        correlation_id_var.set(raw.correlation_id)
        command = await self._parse(contract, body, msg)
        reply = await self._with_db(lambda conn: self._run_command(conn, contract, handler, command, body, msg))
        await self._reply(msg, reply)

    async def _run_command(self, conn: asyncpg.Connection, contract: type[Command], handler: CommandHandler,
                           command: Command, body: bytes, msg: RabbitMessage) -> Reply:
        raw = msg.raw_message
        message_id = str(raw.message_id)
        ctx = self._context(conn, msg)
        if contract.read_only:
            return await handler(ctx, command)
        body_hash = inbox.request_hash(body)
        seen = await inbox.claim(conn, contract.routing_key, message_id, body_hash)
        if seen is not None:
            if seen.request_hash != body_hash:
                return Reply.refusal(
                    "idempotency_key_reused",
                    "this message_id was already used for a different request",
                    {"message_id": message_id},
                )
            assert seen.reply is not None, "a committed inbox row always holds its reply"
            return Reply.model_validate(seen.reply)
        reply = await handler(ctx, command)
        await inbox.store_reply(conn, contract.routing_key, message_id, reply.model_dump(mode="json"))
        return reply

    async def consume_get_operation(self, body: bytes, msg: RabbitMessage) -> None:
        query = await self._parse(GetOperation, body, msg)

        async def lookup(conn: asyncpg.Connection) -> Reply:
            row = await inbox.find_reply(conn, query.operation_id)
            if row is None:
                status = OperationStatus(operation_id=query.operation_id, status="unknown")
            else:
                status = OperationStatus(
                    operation_id=query.operation_id,
                    status="done",
                    reply=Reply.model_validate(row["reply"]),
                    received_at=row["received_at"],
                )
            return Reply.success(status)

        await self._reply(msg, await self._with_db(lookup))

    # -- events ----------------------------------------------------------------------------

    async def consume_event(self, body: bytes, msg: RabbitMessage) -> None:
        raw = msg.raw_message
        correlation_id_var.set(raw.correlation_id)
        route = self.routes.event_route(raw.type)
        if route is None:
            return  # a fact this worker does not act on
        event = await self._parse(route.contract, body, msg)
        consumer = f"{self.routes.worker}.events"

        async def apply(conn: asyncpg.Connection) -> None:
            message_id = str(raw.message_id)
            if await inbox.claim(conn, consumer, message_id, inbox.request_hash(body)) is not None:
                return
            await route.handler(self._context(conn, msg), event)
            await inbox.store_reply(conn, consumer, message_id, {"ok": True})

        await self._with_db(apply)

    # -- shared steps ----------------------------------------------------------------------

    async def _parse(self, contract: type[BaseModel], body: bytes, msg: RabbitMessage) -> Any:
        """Validate a delivery; a permanent failure is answered and dead-lettered."""
        raw = msg.raw_message
        if not raw.message_id:
            await self._refuse_invalid(msg, "message_id is required: it is the idempotency key", None)
        if len(body) > self.max_body_bytes:
            await self._refuse_invalid(msg, f"body exceeds {self.max_body_bytes} bytes", None)
        try:
            return contract.model_validate_json(body)
        except ValidationError as exc:
            await self._refuse_invalid(msg, f"body is not a valid {contract.__name__}", _validation_details(exc))

    async def _refuse_invalid(self, msg: RabbitMessage, message: str, details: Any) -> None:
        log.warning("invalid message %s on %s: %s", msg.raw_message.message_id, msg.raw_message.routing_key, message)
        await self._reply(msg, Reply.refusal(ErrorCode.invalid_message, message, details))
        raise RejectMessage()  # to the dead-letter exchange, never requeued

    async def _with_db(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        assert self.pool is not None, "runtime used before its pool was opened"
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
            stop=stop_after_attempt(DB_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.02, max=1.0),
            reraise=True,
        ):
            with attempt:
                async with self.pool.acquire(timeout=10) as conn, conn.transaction():
                    return await work(conn)

    def _context(self, conn: asyncpg.Connection, msg: RabbitMessage) -> Context:
        raw = msg.raw_message
        actor = (raw.headers or {}).get("x-actor")
        return Context(
            conn=conn,
            message_id=str(raw.message_id),
            correlation_id=raw.correlation_id,
            actor=str(actor) if actor is not None else None,
            broker_user=raw.user_id,
            now=datetime.now(UTC),
        )

    async def _reply(self, msg: RabbitMessage, reply: Reply) -> None:
        raw = msg.raw_message
        if not raw.reply_to:
            return  # fire and forget: the partner follows events, or asks for the operation
        await self.broker.publish(
            reply.model_dump(mode="json"),
            routing_key=raw.reply_to,
            correlation_id=raw.correlation_id,
            message_id=f"{raw.message_id}.reply",
            message_type=Reply.message_type,
            persist=True,
            # A vanished reply queue (the edge restarted) must not fail the command that committed.
            mandatory=False,
        )
