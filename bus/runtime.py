"""The worker runtime: how every worker consumes a message (DESIGN §4).

For each delivery: refuse what cannot be a valid message (no message_id, too big, wrong shape)
to the dead-letter exchange with an `invalid_message` reply; otherwise, in ONE database
transaction, claim the inbox row, run the handler (which writes state and outbox rows) and
store the reply; commit; then reply and ack. One recipe (`Runtime.commit`) does this for a
group-committed batch and for a plain command alike: a plain command is a batch of one. A redelivery finds the inbox row and gets the
stored reply with no second effect. Transient database errors are retried here, then the
message is nacked for redelivery, up to the queue's delivery limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import asyncpg
from faststream.exceptions import RejectMessage
from faststream.rabbit import RabbitMessage
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bus import grants, inbox, joint, outbox, replies, saga, topology, tracing
from bus.actor import Trust, actor_of, believed, unauthenticated
from bus.db import DB_ATTEMPTS, TRANSIENT_DB_ERRORS
from bus.handling import BatchHandler, CommandHandler, Context, Deferred, EventRoute, Routes, duty_context, each
from bus import observability
from bus.observability import correlation_id_var
from bus.settings import broker_user, edge_users, publisher_of, service_users
from contracts import security
from contracts.common import Command, ErrorCode, Event, GetOperation, OperationStatus, Reply, ReplyCopies, ReplyCopy, holds_nul
from contracts.partner import PartnerAccessChanged

log = logging.getLogger("cbs.runtime")

# Refusal codes that are about who asked, not what was asked: each is published as access_denied.
ACCESS_REFUSALS = frozenset({"forbidden", "not_owner", "unauthenticated"})

E = TypeVar("E", bound=Event)


def requester_of(ctx: Context) -> str:
    """Who asked, as the inbox keeps it: an idempotency key is the asker's, not everyone's."""
    return ctx.actor.subject if ctx.actor is not None else (ctx.broker_user or "")


def key_reused(message_id: str) -> Reply:
    return Reply.refusal("idempotency_key_reused", "this message_id was already used for a different request",
                         {"message_id": message_id})  # fmt: skip


def _validation_details(exc: ValidationError) -> list[Any]:
    return json.loads(exc.json(include_url=False, include_input=False))


@dataclass(frozen=True, slots=True)
class Answered:
    """A group-committed delivery's answer: its reply (None while a saga step owes it), and the
    confirm of audit's copy of its batch's replies, awaited before the delivery is acked."""

    reply: Reply | None
    copied: asyncio.Future[None]


@dataclass(frozen=True)
class Delivered:
    """A parsed command delivery, waiting for its commit."""

    command: Command
    msg: RabbitMessage
    body: bytes
    # The trace context of its delivery (its consumer span), while tracing is on: the batch's
    # commit links to it, and what its handler sends continues it.
    trace: tracing.TraceContext | None = None

    @property
    def message_id(self) -> str:
        return str(self.msg.raw_message.message_id)

    @cached_property
    def body_hash(self) -> str:
        return inbox.request_hash(self.body)


EVENT_HANDLED = {"ok": True}  # an event's stored reply: it has no asker, only a mark that it was handled


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """A parsed event delivery, waiting for its commit."""

    route: EventRoute
    event: Event
    msg: RabbitMessage
    body_hash: str
    trace: tracing.TraceContext | None = None

    @property
    def message_id(self) -> str:
        return str(self.msg.raw_message.message_id)


class Runtime:
    def __init__(self, routes: Routes, *, max_body_bytes: int, user_id: str | None = None) -> None:
        self.routes = routes
        # Exported at 0 from the start, so a rate over it is 0, not absent.
        observability.DEAD_LETTERED.labels(routes.worker, "invalid_message")
        self.user_id = user_id  # this worker's broker user: set on every reply it sends
        # Where replies go out: an aio-pika channel with publisher confirms, opened by the worker
        # before it consumes anything (FastStream's publish pipeline cost 8% of transfers/s).
        self.reply_channel: Any = None
        self.max_body_bytes = max_body_bytes
        self.pool: asyncpg.Pool | None = None
        self.trust = Trust(edge=edge_users(), services=service_users())
        # Publishes outbox rows right after their commit (set once the relay has started).
        self.publisher: outbox.OutboxRelay | None = None
        # The routing keys it may publish: its own events, and the access refusals the runtime records.
        self.publishes: frozenset[str] | None = None
        if routes.publishes is not None:
            denied = security.ACCESS_DENIED.get(routes.worker)
            self.publishes = frozenset([e.routing_key for e in routes.publishes] + ([denied.routing_key] if denied else []))

    # -- commands: one commit recipe, a plain command being a batch of one ----------------------

    async def consume_command(self, contract: type[Command], handler: CommandHandler, body: bytes,
                              msg: RabbitMessage) -> None:
        correlation_id_var.set(msg.raw_message.correlation_id)
        command = await self.parse(contract, body, msg)
        if contract.read_only:
            reply = await self.in_transaction(lambda conn: self._read(conn, contract, handler, command, msg))
        else:
            [reply] = await self.commit(contract, each(handler), [Delivered(command, msg, body, tracing.current())])
        if reply is not None:
            await self.reply_to_sender(msg, reply)

    async def _read(self, conn: asyncpg.Connection, contract: type[Command], handler: CommandHandler,
                    command: Command, msg: RabbitMessage) -> Reply:  # fmt: skip
        """A read changes nothing, so it claims no inbox row: a repeat simply reads again."""
        ctx = self.context_for(conn, msg, contract.routing_key)
        refusal = await self.access_refusal(conn, ctx, contract.routing_key)
        result = refusal or await handler(ctx, believed(command, ctx.actor))
        assert isinstance(result, Reply), f"read-only {contract.routing_key} cannot defer its reply"
        await self.record_refusal(ctx, result)
        return result

    async def commit(self, contract: type[Command], handler: BatchHandler,
                     batch: Sequence[Delivered]) -> list[Reply | None]:  # fmt: skip
        """Ack after commit, for one delivery or many: in ONE transaction, refuse whom we do not
        know, claim each fresh message's inbox row, run the handler on the fresh ones, store their
        replies and record access refusals. Answers each delivery in order: the reply to send now,
        or None while a saga step still owes it."""
        with tracing.batch(f"commit {contract.routing_key}", [d.trace for d in batch]) if tracing.ON else tracing.OFF:
            return await self.in_transaction(lambda conn: self._commit(conn, contract, handler, batch))

    async def commit_and_copy(self, contract: type[Command], handler: BatchHandler,
                              batch: Sequence[Delivered]) -> list[Answered]:  # fmt: skip
        """`commit` a group-committed batch, and start copying its replies to audit's outcome tap
        as one message (`ReplyCopies`). The copy is confirmed while the replies go out (each
        without a copy of its own: `reply_to_sender(..., copy=False)`) and the next batch commits;
        a delivery is acked only once it is (`Answered.copied`). A crash before that loses
        nothing: the deliveries come back, and their stored replies are copied with a later batch."""
        answers = await self.commit(contract, handler, batch)
        answered = [(d, reply) for d, reply in zip(batch, answers, strict=True) if reply is not None]
        copied = asyncio.ensure_future(self.copy_replies(contract.routing_key, answered))
        return [Answered(reply, copied) for reply in answers]

    async def copy_replies(self, command: str, answered: Sequence[tuple[Delivered, Reply]]) -> None:
        """Audit's copies of these replies to `command`, as few messages as the bounds allow
        (bus/replies.py). Traced as its batch is: a child of the first message's span."""
        if not answered:
            return
        copies = [ReplyCopy(message_id=f"{d.message_id}.reply", command=command,
                            correlation_id=d.msg.raw_message.correlation_id, body=replies.reply_body(reply).decode())
                  for d, reply in answered]  # fmt: skip
        assert self.reply_channel is not None, "the worker opens its reply channel before it consumes"
        with tracing.batch(f"copy replies {command}", [d.trace for d, _ in answered]) if tracing.ON else tracing.OFF:
            for body in replies.copies_bodies(copies, self.max_body_bytes):
                message_id = uuid.uuid4().hex
                with tracing.publishing(topology.AUDIT_REPLIES_TAP, exchange="", verb="copy", what=command,
                                        message_id=message_id) if tracing.ON else tracing.OFF:  # fmt: skip
                    message = aio_pika.Message(
                        body, content_type="application/json", message_id=message_id, type=ReplyCopies.message_type,
                        user_id=self.user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        headers=tracing.inject({}) or None,  # audit's `process` span is the copy's child
                    )  # fmt: skip
                    # mandatory=False, as for a reply's own copy: a committed batch is not undone for audit.
                    await self.reply_channel.default_exchange.publish(message, routing_key=topology.AUDIT_REPLIES_TAP,
                                                                      mandatory=False)  # fmt: skip

    async def _commit(self, conn: asyncpg.Connection, contract: type[Command], handler: BatchHandler,
                      batch: Sequence[Delivered]) -> list[Reply | None]:  # fmt: skip
        consumer = contract.routing_key
        contexts = [self.context_for(conn, d.msg, consumer, d.trace) for d in batch]
        replies: dict[int, Reply | None] = await self._access_refusals(conn, consumer, contexts)
        refused = list(replies)  # each its own refusal, not stored: once granted, it is acted on
        requests = {n: inbox.Request(d.body_hash, requester_of(contexts[n]))
                    for n, d in enumerate(batch) if n not in replies}  # fmt: skip
        claimed = await inbox.claim_many(conn, consumer, [(batch[n].message_id, r) for n, r in requests.items()])
        first_of: dict[str, int] = {}  # message_id -> index of its first delivery in this batch
        copies: dict[int, int] = {}  # index of a repeat of the same request -> index of its first
        fresh: list[int] = []
        for index, request in requests.items():
            message_id = batch[index].message_id
            if (first := first_of.get(message_id)) is not None:
                # The same key twice in one batch: the same request is answered like its first
                # copy; another body (or asker) under it is refused, never given the first's reply.
                earlier = inbox.Seen(requests[first].body_hash, None, requests[first].requester)
                if earlier.same_request(request):
                    copies[index] = first
                else:
                    replies[index] = self.stored_answer(earlier, message_id, request)
                continue
            first_of[message_id] = index
            seen = claimed.get(message_id)
            if seen is None:
                fresh.append(index)
            else:
                replies[index] = self.stored_answer(seen, message_id, request)
        if fresh:
            replies.update(await self._handle(conn, contract, handler, [(i, contexts[i], batch[i]) for i in fresh]))
            # A deferred message's reply is stored by the saga step that answers it.
            await inbox.store_replies(conn, consumer, [
                (batch[i].message_id, reply.model_dump(mode="json")) for i in fresh if (reply := replies[i]) is not None
            ])  # fmt: skip
        for index in [*refused, *fresh]:
            if (reply := replies[index]) is not None:
                await self.record_refusal(contexts[index], reply)
        if repeats := len(requests) - len(fresh):
            observability.INBOX_DUPLICATES.labels(consumer).inc(repeats)
        return [replies[copies.get(n, n)] for n in range(len(batch))]

    async def _handle(self, conn: asyncpg.Connection, contract: type[Command], handler: BatchHandler,
                      fresh: list[tuple[int, Context, Delivered]]) -> dict[int, Reply | None]:  # fmt: skip
        """Run the handler on the fresh messages. In a group-committed batch, the requests its
        handlers make of a joinable contract leave as one command (bus/joint.py)."""
        collector = joint.Collector(dict(self.routes.joint)) if contract in self.routes.batched else None
        for _, ctx, _ in fresh:
            ctx.joint = collector
        answers = await handler([(ctx, believed(d.command, ctx.actor)) for _, ctx, d in fresh])
        assert len(answers) == len(fresh), "a batch handler answers every message"
        if collector is not None:
            await collector.send(conn, self.routes.worker, contract.routing_key)
        return {i: a if isinstance(a, Reply) else None for (i, _, _), a in zip(fresh, answers)}

    @staticmethod
    async def _access_refusals(conn: asyncpg.Connection, routing_key: str,
                               contexts: Sequence[Context]) -> dict[int, Reply | None]:  # fmt: skip
        """Index -> refusal of each message from nobody we know (no broker-checked user, or one that
        is not the edge, a partner or a service), or from a partner outside the grant this worker
        learned (one query for the batch)."""
        refusals: dict[int, Reply | None] = {
            n: unauthenticated(c.broker_user) for n, c in enumerate(contexts) if c.actor is None
        }
        partners = {n: c.actor.subject for n, c in enumerate(contexts) if c.actor is not None and c.actor.via == "partner"}
        if partners:
            known = await grants.load(conn, set(partners.values()))
            refusals |= {n: r for n, user in partners.items() if (r := grants.refuse(user, routing_key, known)) is not None}
        return refusals

    async def record_refusal(self, ctx: Context, reply: Reply) -> None:
        """A command refused for who sent it is a fact audit keeps: `<worker>.access_denied`,
        committed with the refusal (through the outbox)."""
        if reply.ok or reply.error is None or reply.error.code not in ACCESS_REFUSALS:
            return
        event_type = security.ACCESS_DENIED.get(self.routes.worker)
        if event_type is None:
            return  # not one of the bank's workers (a test's)
        await ctx.emit(event_type(
            command=ctx.consumer, command_message_id=ctx.message_id[:200], code=reply.error.code,
            reason=reply.error.message[:500], subject=ctx.actor.subject[:200] if ctx.actor else None,
            broker_user=ctx.broker_user, occurred_at=ctx.now,
        ))  # fmt: skip

    @classmethod
    async def access_refusal(cls, conn: asyncpg.Connection, ctx: Context, routing_key: str) -> Reply | None:
        """`_access_refusals` for one message (reads, get_operation)."""
        return (await cls._access_refusals(conn, routing_key, [ctx])).get(0)

    @staticmethod
    def stored_answer(seen: inbox.Seen, message_id: str, request: inbox.Request) -> Reply | None:
        if not seen.same_request(request):
            # Another body, or another asker, under a used key: never the other request's result.
            return key_reused(message_id)
        # A reply still owed by a saga step comes when the step completes.
        return Reply.model_validate(seen.reply) if seen.reply is not None else None

    # -- saga replies ----------------------------------------------------------------------

    async def consume_saga_reply(self, body: bytes, msg: RabbitMessage) -> None:
        """Another worker answered a step: run its continuation, then answer the origin."""
        raw = msg.raw_message
        step_id = raw.correlation_id
        try:
            reply = Reply.model_validate_json(body)
        except ValidationError:
            await self._refuse_invalid(msg, "a reply must be a Reply envelope", None)
        if not step_id:
            await self._refuse_invalid(msg, "a saga reply needs the step id as correlation_id", None)
        forged: list[str | None] = []  # the worker the step asked, when somebody else answered

        async def complete(conn: asyncpg.Connection) -> list[tuple[Reply, saga.Step]]:
            asked = await saga.asked_worker(conn, step_id)
            if raw.user_id not in self.trust.services or (asked is not None and raw.user_id != broker_user(asked)):
                # Only the worker the step asked answers it (another could reach `<worker>.replies`).
                forged.append(asked)
                return []
            step = await saga.lock(conn, step_id)
            if step is None:
                log.warning("reply for unknown saga step %s dropped", step_id)
                return []
            if step.kind == joint.KIND:
                return await self._continue_joint(conn, step, reply)
            return await self._continue(conn, step, reply)

        answers = await self.in_transaction(complete)
        if forged:
            await self._refuse_invalid(msg, f"a reply to a step that asked {forged[0]} came from {raw.user_id!r}", None)
        for final, step in answers:
            await self._publish_reply(final, step.origin_reply_to, step.origin_correlation_id, step.origin_message_id,
                                      step.origin_consumer)  # fmt: skip

    async def _continue(self, conn: asyncpg.Connection, step: saga.Step, reply: Reply,
                        completions: list[tuple[str, saga.Answer | None]] | None = None,
                        ) -> list[tuple[Reply, saga.Step]]:  # fmt: skip
        """Run the step's continuation: the origin's answer, if it is owed now. With `completions`,
        the step's completion is left there for the caller to write with others."""
        if step.completed:
            # A repeated reply: the worker may have died after committing but before it
            # answered the origin, so answer again with what was stored.
            stored = await inbox.find_stored(conn, step.origin_consumer, step.origin_message_id)
            return [(Reply.model_validate(stored), step)] if stored is not None else []
        continuation = self.routes.continuations[step.kind]
        result = await continuation(self._origin_context(conn, step), step.state, reply)
        # Deferred: the continuation started a new step, which will answer the origin.
        answer = None if isinstance(result, Deferred) else (
            step.origin_consumer, step.origin_message_id, result.model_dump(mode="json"))  # fmt: skip
        if completions is not None:
            completions.append((step.step_id, answer))
        else:
            await saga.complete(conn, step.step_id, answer=answer)
        return [] if isinstance(result, Deferred) else [(result, step)]

    async def _continue_joint(self, conn: asyncpg.Connection, step: saga.Step,
                              reply: Reply) -> list[tuple[Reply, saga.Step]]:  # fmt: skip
        """One reply for several members: each gets its own part and runs its own continuation;
        the members are locked, and completed with their origins' replies, in one statement each."""
        members = joint.members_of(step)
        combiner = next(c for c in self.routes.joint.values() if c.contract.routing_key == step.state["contract"])
        # Completed already (a repeated reply): every member answers with what it stored.
        parts = [reply] * len(members) if step.completed else combiner.split(reply, [size for _, size in members])
        found = await saga.lock_many(conn, [member_id for member_id, _ in members])
        completions: list[tuple[str, saga.Answer | None]] = []
        answers: list[tuple[Reply, saga.Step]] = []
        for (member_id, _), part in zip(members, parts, strict=True):
            assert member_id in found, f"joint step {step.step_id} names unknown step {member_id}"
            answers += await self._continue(conn, found[member_id], part, completions)
        if not step.completed:
            completions.append((step.step_id, None))
        await saga.complete_many(conn, [step_id for step_id, _ in completions],
                                 [answer for _, answer in completions if answer is not None])  # fmt: skip
        return answers

    async def consume_get_operation(self, body: bytes, msg: RabbitMessage) -> None:
        query = await self.parse(GetOperation, body, msg)

        key = topology.get_operation_key(self.routes.worker)

        async def lookup(conn: asyncpg.Connection) -> Reply:
            ctx = self.context_for(conn, msg, key)
            refusal = await self.access_refusal(conn, ctx, key)
            if refusal is not None:
                return refusal
            # Only the asker of the operation learns its reply; to anyone else it is unknown.
            row = await inbox.find_reply(conn, query.operation_id, requester_of(ctx))
            if row is None:
                status = OperationStatus(operation_id=query.operation_id, status="unknown")
            elif query.request_hash and not row["request_hash"].startswith(query.request_hash):
                # The operation of a request whose key an earlier, different request had used.
                status = OperationStatus(operation_id=query.operation_id, status="done",
                                         reply=key_reused(query.operation_id))  # fmt: skip
            else:
                status = OperationStatus(
                    operation_id=query.operation_id,
                    status="done",
                    reply=Reply.model_validate(row["reply"]),
                    received_at=row["received_at"],
                )
            return Reply.success(status)

        await self.reply_to_sender(msg, await self.in_transaction(lookup))

    # -- events ----------------------------------------------------------------------------

    async def take_event(self, body: bytes, msg: RabbitMessage, submit: Callable[[DeliveredEvent], Awaitable[None]]) -> None:
        """A delivery on the worker's events queue: believed only from its owner (else dead-lettered),
        then handed to the group committer (`submit`, which returns once its batch committed)."""
        raw = msg.raw_message
        correlation_id_var.set(raw.correlation_id)
        if raw.type == PartnerAccessChanged.message_type:
            # Every worker learns every partner's grant, before and apart from its own events.
            # No inbox row: keeping the newest grant is idempotent in itself.
            changed = await self._parse_fact(PartnerAccessChanged, body, msg)
            await self.in_transaction(lambda conn: grants.record(conn, changed))
            return
        route = self.routes.event_route(raw.type)
        if route is None:
            return  # a fact this worker does not act on
        event = await self._parse_fact(route.contract, body, msg)
        await submit(DeliveredEvent(route, event, msg, inbox.request_hash(body), tracing.current()))

    async def commit_events(self, batch: Sequence[DeliveredEvent]) -> list[None]:
        """Ack after commit for events, many at a time: in ONE transaction, claim each event's inbox
        row, run each fresh one's handler in delivery order, and store their replies. An event
        already handled (a redelivery) is skipped; so is its second copy within one batch."""
        consumer = f"{self.routes.worker}.events"

        async def apply(conn: asyncpg.Connection) -> None:
            requests = [(d.message_id, inbox.Request(d.body_hash, d.msg.raw_message.user_id or "")) for d in batch]
            claimed = await inbox.claim_many(conn, consumer, requests, reply=EVENT_HANDLED)
            fresh: dict[str, DeliveredEvent] = {}  # the first copy of each event not handled before
            for d in batch:
                if d.message_id not in claimed:
                    fresh.setdefault(d.message_id, d)
            observability.INBOX_DUPLICATES.labels(consumer).inc(len(batch) - len(fresh))
            if fresh and self.routes.lock_for_events is not None:
                await self.routes.lock_for_events(conn, [d.event for d in fresh.values()])
            for d in fresh.values():
                await d.route.handler(self.context_for(conn, d.msg, consumer, d.trace), d.event)

        with tracing.batch(f"commit {consumer}", [d.trace for d in batch]) if tracing.ON else tracing.OFF:
            await self.in_transaction(apply)
        return [None] * len(batch)

    async def _parse_fact(self, contract: type[E], body: bytes, msg: RabbitMessage) -> E:
        """An event, believed only from its owner: the broker-checked user that alone publishes its
        key (the broker's topic permissions enforce the same). Anything else is dead-lettered."""
        event = await self.parse(contract, body, msg)
        raw, publisher = msg.raw_message, publisher_of(contract.routing_key)
        if raw.user_id != publisher or raw.routing_key != contract.routing_key:
            await self._refuse_invalid(msg, f"{contract.routing_key} is published by {publisher} only, "
                                            f"not {raw.user_id!r}", None)  # fmt: skip
        return event

    # -- shared steps ----------------------------------------------------------------------

    async def parse(self, contract: type[BaseModel], body: bytes, msg: RabbitMessage) -> Any:
        """Validate a delivery; a permanent failure is answered and dead-lettered."""
        raw = msg.raw_message
        if not raw.message_id:
            await self._refuse_invalid(msg, "message_id is required: it is the idempotency key", None)
        expected = topology.EVENTS if issubclass(contract, Event) else topology.COMMANDS
        if raw.exchange != expected.name:
            # Straight into the queue by the default exchange, say: around the topic permissions
            # that limit which keys each user may publish. Only the bus's exchange counts.
            await self._refuse_invalid(msg, f"{contract.message_type or 'this message'} travels on {expected.name}, "
                                            f"not {raw.exchange or 'the default exchange'!r}", None)  # fmt: skip
        if raw.type != contract.message_type:
            # A body that fits the contract is still refused: the sender meant another message,
            # or a version this worker does not know.
            await self._refuse_invalid(msg, f"type must be {contract.message_type!r}, not {raw.type!r}",
                                       {"expected": contract.message_type, "got": raw.type})  # fmt: skip
        if len(body) > self.max_body_bytes:
            await self._refuse_invalid(msg, f"body exceeds {self.max_body_bytes} bytes", None)
        if holds_nul(body):
            # PostgreSQL text cannot hold NUL: refused here, it would fail every redelivery.
            await self._refuse_invalid(msg, "text fields must not contain NUL (U+0000)", None)
        try:
            return contract.model_validate_json(body)
        except ValidationError as exc:
            await self._refuse_invalid(msg, f"body is not a valid {contract.__name__}", _validation_details(exc))

    async def _refuse_invalid(self, msg: RabbitMessage, message: str, details: Any) -> None:
        log.warning("invalid message %s on %s: %s", msg.raw_message.message_id, msg.raw_message.routing_key, message)
        await self.reply_to_sender(msg, Reply.refusal(ErrorCode.invalid_message, message, details))
        observability.DEAD_LETTERED.labels(self.routes.worker, "invalid_message").inc()  # the worker: bounded
        raise RejectMessage()  # to the dead-letter exchange, never requeued

    async def in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        """Run `work` in one transaction (retried on transient errors); after the commit, what it
        wrote to the outbox is published at once (the relay is only the safety net)."""
        assert self.pool is not None, "runtime used before its pool was opened"
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
            stop=stop_after_attempt(DB_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.02, max=1.0),
            reraise=True,
        ):
            with attempt, outbox.collecting() as written:
                async with self.pool.acquire(timeout=10) as conn, conn.transaction():
                    result = await work(conn)
                    await outbox.flush(conn)
                    self.check_publications(written.messages)
                if written.messages and self.publisher is not None:
                    await self.publisher.publish_committed(written.messages)
                return result

    def check_publications(self, messages: list[outbox.Outgoing]) -> None:
        if self.publishes is None:
            return
        strays = [m.routing_key for m in messages if m.exchange == topology.EVENTS.name
                  and m.routing_key not in self.publishes]  # fmt: skip
        # A bug, not a refusal: the transaction rolls back and the delivery is retried, then dead-lettered.
        assert not strays, f"{self.routes.worker} may not publish {strays}: not in its routes' publishes"

    def context_for(self, conn: asyncpg.Connection, msg: RabbitMessage, consumer: str,
                    trace: tracing.TraceContext | None = None) -> Context:  # fmt: skip
        raw = msg.raw_message
        actor = actor_of(raw.user_id, (raw.headers or {}).get("x-actor"), self.trust)
        return Context(
            conn=conn,
            worker=self.routes.worker,
            consumer=consumer,
            message_id=str(raw.message_id),
            correlation_id=raw.correlation_id,
            reply_to=raw.reply_to or None,
            actor=actor,
            broker_user=raw.user_id,
            now=datetime.now(UTC),
            trace=trace,
        )

    def duty_context(self, conn: asyncpg.Connection, what: str) -> Context:
        return duty_context(conn, self.routes.worker, what, datetime.now(UTC))

    def _origin_context(self, conn: asyncpg.Connection, step: saga.Step) -> Context:
        """A continuation acts on behalf of the command that started the saga."""
        return Context(
            conn=conn,
            worker=self.routes.worker,
            consumer=step.origin_consumer,
            message_id=step.origin_message_id,
            correlation_id=step.origin_correlation_id,
            reply_to=step.origin_reply_to,
            actor=None,
            broker_user=None,
            now=datetime.now(UTC),
        )

    async def reply_to_sender(self, msg: RabbitMessage, reply: Reply, *, copy: bool = True) -> None:
        """Answer the delivery; with `copy`, audit's outcome tap gets the reply too (without, the
        caller copied it already: `commit_and_copy`)."""
        raw = msg.raw_message
        # Audit keeps the outcome of every command; an event's refusal is only its dead letter.
        command = raw.routing_key if raw.exchange == topology.COMMANDS.name else None
        await self._publish_reply(reply, raw.reply_to, raw.correlation_id, raw.message_id, command, tap=copy)

    async def _publish_reply(
        self, reply: Reply, reply_to: str | None, correlation_id: str | None, message_id: str | None,
        command: str | None, *, tap: bool = True,
    ) -> None:  # fmt: skip
        """Send the reply, and its copy to audit's outcome tap (`topology.AUDIT_REPLIES_TAP`): one
        publish, routed by the broker to both (a `BCC` header on the default exchange, removed before
        delivery). Without a reply queue (fire and forget), or to Direct Reply-To (which bypasses
        routing), the copy alone goes to the tap. Without `tap`, its batch's copy went already."""
        to_tap = tap and command is not None
        if not reply_to and not to_tap:
            return  # fire and forget: the partner follows events, or asks for the operation
        assert self.reply_channel is not None, "the worker opens its reply channel before it consumes"
        body = replies.reply_body(reply)
        direct = not reply_to or reply_to.startswith(topology.DIRECT_REPLY_TO)

        def message(bcc: bool) -> aio_pika.Message:
            headers: dict[str, Any] = {topology.REPLY_COMMAND_HEADER: command} if to_tap else {}
            if bcc:
                headers["BCC"] = [topology.AUDIT_REPLIES_TAP]
            return aio_pika.Message(
                body, content_type="application/json", correlation_id=correlation_id, message_id=f"{message_id}.reply",
                type=Reply.message_type, user_id=self.user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=tracing.inject(headers) or None,  # inside the `reply` span: its consumers' parent
            )  # fmt: skip

        # A `reply <command>` span: the asker's consumer (a saga's continuation, audit's tap) continues it.
        with tracing.publishing(reply_to or topology.AUDIT_REPLIES_TAP, exchange="", verb="reply",
                                what=command or reply_to, message_id=f"{message_id}.reply",
                                correlation_id=correlation_id) if tracing.ON else tracing.OFF:  # fmt: skip
            # mandatory=False: a vanished reply queue must not fail a committed command.
            if reply_to:
                await self.reply_channel.default_exchange.publish(message(to_tap and not direct), routing_key=reply_to,
                                                                  mandatory=False)  # fmt: skip
            if to_tap and direct:
                await self.reply_channel.default_exchange.publish(message(False), routing_key=topology.AUDIT_REPLIES_TAP,
                                                                  mandatory=False)  # fmt: skip
