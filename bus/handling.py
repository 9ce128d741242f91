"""What a handler sees (DESIGN §4): the `Context` of one message in its open transaction, `DEFER`
for a reply a saga step will give later, `Duty` for work no message asks for, `StreamRoute` for a
stream read in batches, and `Routes`, the
sheet that names every entry point of a worker. A leaf of `bus/`: the runtime that calls handlers sits above it, and nothing
here knows how a message is consumed, committed or acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from bus import joint, outbox, saga, tracing
from bus.actor import Actor
from bus.streams import ApplyBatch
from contracts.common import Command, Event, Reply

E = TypeVar("E", bound=Event)


class Deferred:
    """A handler's answer when the reply must wait for another worker (a saga step)."""

    def __repr__(self) -> str:
        return "DEFER"


DEFER = Deferred()


@dataclass
class Context:
    """What a handler may use: the open transaction and the facts of the message."""

    conn: asyncpg.Connection
    worker: str
    consumer: str
    message_id: str
    correlation_id: str | None
    reply_to: str | None
    actor: Actor | None
    broker_user: str | None
    now: datetime
    emitted: list[str] = field(default_factory=list)
    # Set in a group-committed batch: requests of joinable contracts leave as one (bus/joint.py).
    joint: joint.Collector | None = None
    # Its delivery's trace context (bus/tracing.py), when tracing is on: within a batch, what this
    # message's handler emits or asks continues this message's trace, not the batch's first.
    trace: tracing.TraceContext | None = None

    async def emit(self, event: Event) -> None:
        """Queue an event in this transaction; it leaves through the outbox after commit."""
        message = await outbox.add(self.conn, event, correlation_id=self.correlation_id, causation_id=self.message_id)
        self.emitted.append(message.message_id)

    async def request(self, command: Command, *, step: str, state: dict[str, Any], key: str | None = None) -> Deferred:
        """Ask another worker, without waiting in memory: record the step, send through the outbox.

        The other worker's reply comes back on `<worker>.replies` and runs the continuation
        registered for `step`, which answers this message. The step id doubles as the sent
        command's message_id, so a resend can never take effect twice. A message that asks the
        same step more than once (a page after a page, a batch beside a batch) names each ask
        with its own `key`.
        """
        step_id = f"{self.worker}:{step}:{self.message_id}" + (f":{key}" if key is not None else "")
        await saga.record(self.conn, step_id, step, state, origin=self)
        if self.joint is not None and self.joint.accepts(command):
            self.joint.members.append(joint.Member(step_id, command, self.message_id))
            return DEFER
        await saga.send_request(self.conn, self.worker, command, step_id, self.message_id)
        return DEFER


def duty_context(conn: asyncpg.Connection, worker: str, what: str, now: datetime) -> Context:
    """The context of work no message asked for (a duty, a start-up step): its saga steps answer
    nobody (no reply_to), and its ids name the work and the moment."""
    return Context(conn=conn, worker=worker, consumer=f"{worker}.{what}", message_id=f"{what}:{now.isoformat()}",
                   correlation_id=None, reply_to=None, actor=None, broker_user=None, now=now)  # fmt: skip


CommandHandler = Callable[[Context, Any], Awaitable[Reply | Deferred]]
# (the contexts, one per fresh message, sharing the transaction; their commands) -> an answer each
# (a Reply, or DEFER when a saga step will answer it).
BatchHandler = Callable[[Sequence[tuple[Context, Any]]], Awaitable[list[Reply | Deferred]]]
EventHandler = Callable[[Context, Any], Awaitable[None]]
# A saga step's continuation: (ctx, the state the step recorded, the other worker's reply).
Continuation = Callable[[Context, dict[str, Any], Reply], Awaitable[Reply | Deferred]]


# One transaction of a duty: True when more may be due at once (it acted on a full batch).
DutyRun = Callable[[Context], Awaitable[bool]]
# Work before the queues are consumed (a signing key, the bank's accounts), in one transaction.
StartUp = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Duty:
    """Background work every replica runs (sweeps, schedulers, retention): `run` in its own
    transaction, again at once while it says more is due, else after `interval_s`. Replicas share
    the work through the rows they lock (SKIP LOCKED); a failure is logged and the duty goes on."""

    name: str  # also the context's `what`: consumer `<worker>.<name>`
    run: DutyRun
    interval_s: float


@dataclass(frozen=True, slots=True)
class StreamRoute:
    """A RabbitMQ stream this worker reads (bus/streams.py): one replica at a time, in batches,
    each message applied once by `apply` in the transaction that moves the stream's offset."""

    stream: str
    apply: ApplyBatch


def each(handler: CommandHandler) -> BatchHandler:
    """A plain handler run for each message of a batch in turn, in the batch's one transaction:
    the batch shares the commit, and its requests of other workers may leave as one (bus/joint.py)."""

    async def run(items: Sequence[tuple[Context, Any]]) -> list[Reply | Deferred]:
        answers: list[Reply | Deferred] = []
        for ctx, command in items:
            with tracing.activated(ctx.trace):
                answers.append(await handler(ctx, command))
        return answers

    return run


@dataclass(frozen=True)
class EventRoute(Generic[E]):
    contract: type[E]
    handler: EventHandler


@dataclass(frozen=True)
class Routes:
    """A worker's contract sheet: every entry point (commands, batched commands, events, saga
    continuations, joint combiners, duties, streams, start-up) and what it publishes."""

    worker: str
    commands: Mapping[type[Command], CommandHandler]
    events: tuple[EventRoute[Any], ...] = ()
    continuations: Mapping[str, Continuation] = field(default_factory=dict)
    # Commands answered by group commit: many messages, one database transaction.
    batched: Mapping[type[Command], BatchHandler] = field(default_factory=dict)
    # How many units (e.g. transfers) a batched command carries, to bound a batch's size.
    batch_units: Callable[[Command], int] = lambda _: 1
    # Commands this worker asks of others that a batch may send as one (bus/joint.py).
    joint: Mapping[type[Command], joint.Combiner[Any]] = field(default_factory=dict)
    duties: tuple[Duty, ...] = ()
    streams: tuple[StreamRoute, ...] = ()
    on_start: StartUp | None = None
    # Runs first in every transaction of events, with the fresh ones in delivery order. A worker
    # whose handlers lock rows takes the whole transaction's locks here, in one order: locked event
    # by event, two replicas' transactions could each hold a row the other waits for (deadlock).
    lock_for_events: Callable[[asyncpg.Connection, Sequence[Event]], Awaitable[None]] | None = None
    # The events this worker publishes (its contracts module's EVENTS); the runtime refuses to
    # commit any other (the broker would refuse it after the commit, leaving it stuck in the
    # outbox). None: unchecked (a test's ad-hoc worker).
    publishes: tuple[type[Event], ...] | None = None
    # Prometheus collectors of the worker's own, served beside the bus's (e.g. the day worker's
    # business date); the worker updates them, the registry only reads them when scraped.
    metrics: tuple[Any, ...] = ()

    def event_route(self, message_type: str | None) -> EventRoute[Any] | None:
        return next((r for r in self.events if r.contract.message_type == message_type), None)
