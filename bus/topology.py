"""All of CBS's broker topology, in one place (DESIGN §3).

Exchanges: `cbs.commands`, `cbs.events`, `cbs.dlx` (durable topics). One quorum queue per
command, named as its routing key; one event queue per consuming worker; one dead-letter queue.
Queue arguments can never change in place (RabbitMQ refuses an inequivalent redeclare): to
change one, give the queue a new name.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from contracts import account, audit, customer, day, identity, ledger, loan, notification, operations, partner, payment, security
from contracts.common import Command

# Running processes only look the topology up (`declare=False`, a passive declare): their broker
# users may configure nothing durable. `declare_all`, run by `cbs migrate` as the administrator,
# is what creates it.
COMMANDS = RabbitExchange("cbs.commands", type=ExchangeType.TOPIC, durable=True, declare=False)
EVENTS = RabbitExchange("cbs.events", type=ExchangeType.TOPIC, durable=True, declare=False)
DLX = RabbitExchange("cbs.dlx", type=ExchangeType.TOPIC, durable=True, declare=False)

QUEUE_MAX_LENGTH = 100_000  # messages; past it publishers get a nack (reject-publish), not a silent drop
DELIVERY_LIMIT = 5  # redeliveries of a failing message before it is dead-lettered
DEAD_LETTER_QUEUE_NAME = "cbs.dead"

# Each worker's contract module: its commands get a queue each.
WORKER_CONTRACTS: dict[str, ModuleType] = {"customer": customer, "account": account, "ledger": ledger, "identity": identity,
                                         "payment": payment, "audit": audit, "day": day, "loan": loan,
                                         "notification": notification}

# Audit's taps (banking-rules §7): two RabbitMQ streams bound `#`, one per exchange, so audit sees
# every command and event. Streams, not queues: a bounded queue with reject-publish refused every
# publisher once audit had been away for a few minutes (the bank stopped because its audit trail
# paused); a stream takes whatever comes, keeps it for audit to read from its own offset
# (bus/streams.py), and drops only what is older than its retention. Audit stays out of
# EVENT_BINDINGS on purpose: it reads its taps as streams, `partner.access_changed` included (it
# learns grants from there).
AUDIT_WORKER = "audit"
AUDIT_COMMANDS_TAP = "audit.tap.commands"
AUDIT_EVENTS_TAP = "audit.tap.events"
# Audit's third tap: every command's reply (its outcome). Replies travel on the default exchange to
# the asker's queue, which audit cannot bind; so a worker's reply carries a `BCC` header naming this
# stream and the broker routes the one publish to both (bus/runtime.py `_publish_reply`). Bound to
# no exchange: it is addressed by name. The command the reply answers is in REPLY_COMMAND_HEADER.
# A group commit's replies go instead as one `ReplyCopies` message (bus/replies.py, issue 10).
AUDIT_REPLIES_TAP = "audit.tap.replies"
AUDIT_TAPS = (AUDIT_COMMANDS_TAP, AUDIT_EVENTS_TAP, AUDIT_REPLIES_TAP)  # streams: their depth is a retained log
REPLY_COMMAND_HEADER = "x-command"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"  # bypasses routing: no BCC copy is made of such a reply
# Retention of each tap: 24 hours of `cbs bench`'s load with audit stopped, with room to spare
# (measured: 363 transfers/s, 0.94 KB a command and 1.42 KB an event on disk; docs/audit-taps.md).
# RabbitMQ's disk must hold both (80 GiB) or its disk alarm, not the tap, stops publishers first.
# An operator may change a bound with a policy (`max-length-bytes`) without redeclaring.
AUDIT_TAP_MAX_BYTES = {"audit.tap.commands": 32 * 1024**3, "audit.tap.events": 48 * 1024**3,
                       "audit.tap.replies": 16 * 1024**3}  # a reply is smaller than its command
AUDIT_TAP_SEGMENT_BYTES = 100 * 1024**2  # retention removes whole segments
# The bounded quorum queues the taps were before: `cbs migrate` unbinds them and deletes them when empty.
RETIRED_AUDIT_QUEUES = ("audit.commands", "audit.events")

# Contract modules of events no worker owns: the operator publishes them (`cbs partner`, `cbs dlq`).
OPERATOR_CONTRACTS: dict[str, ModuleType] = {"partner": partner, "security": security, "ops": operations}

# Facts every worker learns, whatever its own domain: which commands each partner may send.
SHARED_EVENT_KEYS: tuple[str, ...] = (partner.PartnerAccessChanged.routing_key,)

# The events each worker acts on in its own domain.
_DOMAIN_EVENT_BINDINGS: dict[str, tuple[str, ...]] = {
    "account": ("customer.#", "day.opened", "day.closing", "payment.completed"),
    "customer": ("account.opened", "account.closed"),
    "payment": ("account.opened", "account.frozen", "account.unfrozen", "account.closed", "account.dormant",
                "account.reactivated", "account.product_migrated", "day.opened", "day.holidays_changed"),
    "ledger": ("day.closing",),
    "day": ("*.cob_step_reported",),
    "loan": ("day.opened", "day.closing", "customer.registered", "customer.kyc_status_changed", "customer.suspended",
             "customer.reactivated", "customer.closed", "account.opened", "account.frozen", "account.unfrozen",
             "account.closed", "account.dormant", "account.reactivated"),
    # banking-rules §6's triggers, and where recipients' addresses and accounts' holders are learnt
    "notification": ("customer.registered", "customer.updated", "customer.kyc_status_changed",
                     "customer.document_expiring", "account.opened", "account.frozen", "account.dormant",
                     "payment.completed", "payment.failed", "loan.instalment_due", "loan.payment_overdue",
                     "loan.disbursed", "identity.user_created", "identity.locked_out", "identity.new_device_login",
                     "audit.security_event_raised"),
}

# Event queues (`<worker>.events`): consuming worker -> routing keys it binds on `cbs.events`.
EVENT_BINDINGS: dict[str, tuple[str, ...]] = {
    worker: (*_DOMAIN_EVENT_BINDINGS.get(worker, ()), *SHARED_EVENT_KEYS)
    for worker in WORKER_CONTRACTS
    if worker != AUDIT_WORKER
}


# A partner's broker user is `partner.<name>`; its two queues carry that name (DESIGN §3).
PARTNER_PREFIX = "partner."


def partner_user(name: str) -> str:
    return f"{PARTNER_PREFIX}{name}"


def partner_replies_queue_name(name: str) -> str:
    return f"{partner_user(name)}.replies"


def partner_events_queue_name(name: str) -> str:
    return f"{partner_user(name)}.events"


def topic_matches(pattern: str, routing_key: str) -> bool:
    """RabbitMQ's topic rule: `*` is exactly one word, `#` zero or more."""
    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))


def _quorum_arguments() -> dict[str, Any]:
    # at-least-once dead-lettering needs reject-publish overflow (drop-head would silently
    # fall back to at-most-once); both work on RabbitMQ 3.10 and 4.x.
    return {
        "x-dead-letter-exchange": DLX.name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-max-length": QUEUE_MAX_LENGTH,
        "x-delivery-limit": DELIVERY_LIMIT,
    }


def command_queue(routing_key: str, *, declare: bool = False) -> RabbitQueue:
    return RabbitQueue(
        routing_key, queue_type=QueueType.QUORUM, routing_key=routing_key, arguments=_quorum_arguments(),
        declare=declare,
    )


def get_operation_key(worker: str) -> str:
    return f"{worker}.get_operation"


def worker_commands(worker: str) -> tuple[type[Command], ...]:
    return tuple(WORKER_CONTRACTS[worker].COMMANDS)


def command_keys(worker: str) -> list[str]:
    """Every command routing key the worker consumes, the generic status query included."""
    return [c.routing_key for c in worker_commands(worker)] + [get_operation_key(worker)]


def event_queue(worker: str, *, declare: bool = False) -> RabbitQueue:
    name = f"{worker}.events"
    first_key = EVENT_BINDINGS[worker][0]
    return RabbitQueue(name, queue_type=QueueType.QUORUM, routing_key=first_key, arguments=_quorum_arguments(),
                       declare=declare)  # fmt: skip


def _tap_stream(name: str, *, declare: bool) -> RabbitQueue:
    return RabbitQueue(name, queue_type=QueueType.STREAM, durable=True, routing_key="#", declare=declare, arguments={
        "x-max-length-bytes": AUDIT_TAP_MAX_BYTES[name], "x-stream-max-segment-size-bytes": AUDIT_TAP_SEGMENT_BYTES,
    })  # fmt: skip


def audit_tap_queues(*, declare: bool = False) -> tuple[tuple[RabbitQueue, RabbitExchange], ...]:
    """(stream, exchange) of audit's taps, each bound `#` (every routing key)."""
    return tuple(
        (_tap_stream(name, declare=declare), exchange)
        for name, exchange in ((AUDIT_COMMANDS_TAP, COMMANDS), (AUDIT_EVENTS_TAP, EVENTS))
    )


def audit_replies_tap(*, declare: bool = False) -> RabbitQueue:
    """The stream of every command's reply, addressed by name (see AUDIT_REPLIES_TAP)."""
    return _tap_stream(AUDIT_REPLIES_TAP, declare=declare)


def replies_queue_name(worker: str) -> str:
    return f"{worker}.replies"


def replies_queue(worker: str, *, declare: bool = False) -> RabbitQueue:
    """Where other workers' replies to this worker's saga steps wait, durable like any command."""
    name = replies_queue_name(worker)
    return RabbitQueue(name, queue_type=QueueType.QUORUM, routing_key=name, arguments=_quorum_arguments(),
                       declare=declare)  # fmt: skip


def dead_letter_queue() -> RabbitQueue:
    # The dead-letter queue itself has no DLX: a message is never dead-lettered twice.
    return RabbitQueue(
        DEAD_LETTER_QUEUE_NAME,
        queue_type=QueueType.QUORUM,
        routing_key="#",
        arguments={"x-max-length": 1_000_000, "x-overflow": "reject-publish"},
    )


def ops_reply_queue(instance: str) -> RabbitQueue:
    """The operator's tools' reply queue (bench, ledger verify): exclusive like the edge's."""
    return RabbitQueue(f"ops.replies.{instance}", durable=False, exclusive=True, auto_delete=True)


def edge_reply_queue(instance: str) -> RabbitQueue:
    # Exclusive: it lives and dies with the edge's connection (RabbitMQ 4.3 refuses transient
    # non-exclusive queues). Replies in flight are lost with it; clients retry by Idempotency-Key.
    return RabbitQueue(f"edge.replies.{instance}", durable=False, exclusive=True, auto_delete=True)


EDGE_EVENT_KEY = identity.AccessRevoked.routing_key  # the one fact every edge instance acts on
EDGE_EVENTS_MAX_LENGTH = 10_000  # past it the oldest are dropped; the edge's periodic re-read finds them


def edge_events_queue(instance: str) -> RabbitQueue:
    """Revocations for one edge instance, bound on `cbs.events`: exclusive and auto-delete like its
    reply queue (the edge reads what it missed back from identity: `identity.list_revocations`)."""
    return RabbitQueue(f"edge.events.{instance}", durable=False, exclusive=True, auto_delete=True,
                       routing_key=EDGE_EVENT_KEY, arguments={"x-max-length": EDGE_EVENTS_MAX_LENGTH})  # fmt: skip


def declared(exchange: RabbitExchange) -> RabbitExchange:
    """The exchange as the administrator declares it (created when missing)."""
    return RabbitExchange(exchange.name, type=exchange.type, durable=exchange.durable, declare=True)


async def declare_all(broker: Any) -> None:
    """Declare every exchange, queue and binding, so nothing published early is unroutable.
    Run with the administrator's user (`cbs migrate`): no running process may configure."""
    commands = await broker.declare_exchange(declared(COMMANDS))
    events = await broker.declare_exchange(declared(EVENTS))
    dlx = await broker.declare_exchange(declared(DLX))
    dead = await broker.declare_queue(dead_letter_queue())
    await dead.bind(dlx, routing_key="#")
    for worker in WORKER_CONTRACTS:
        for key in command_keys(worker):
            queue = await broker.declare_queue(command_queue(key, declare=True))
            await queue.bind(commands, routing_key=key)
        await broker.declare_queue(replies_queue(worker, declare=True))  # addressed by name (default exchange)
    for worker in EVENT_BINDINGS:
        await bind_event_queue(broker, worker, events)
    for tap, exchange in audit_tap_queues(declare=True):
        queue = await broker.declare_queue(tap)
        await queue.bind(commands if exchange is COMMANDS else events, routing_key="#")
    await broker.declare_queue(audit_replies_tap(declare=True))  # addressed by name (a reply's BCC)


async def retire_old_audit_queues(amqp_url: str) -> list[str]:
    """Unbind the taps' old bounded queues (so they can no longer refuse a publisher) and delete
    each that is empty. One that still holds messages is left, unbound, with a warning: its
    messages were never recorded, and deleting them would lose them."""
    import aio_pika  # the operator's short-lived connection, like declare_on's

    left: list[str] = []
    connection = await aio_pika.connect(amqp_url)
    try:
        for name, exchange in zip(RETIRED_AUDIT_QUEUES, (COMMANDS.name, EVENTS.name), strict=True):
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                continue  # never existed, or retired already
            await queue.unbind(exchange, "#")
            depth = queue.declaration_result.message_count
            if depth:
                left.append(f"{name} ({depth} messages)")
            else:
                await queue.delete(if_unused=False, if_empty=True)
            await channel.close()
    finally:
        await connection.close()
    return left


async def bind_event_queue(broker: Any, worker: str, events: Any | None = None) -> None:
    events = events or await broker.declare_exchange(declared(EVENTS))
    queue = await broker.declare_queue(event_queue(worker, declare=True))
    for key in EVENT_BINDINGS[worker]:
        await queue.bind(events, routing_key=key)


async def declare_on(amqp_url: str) -> None:
    """Declare the whole topology with a short-lived connection (the operator's tools)."""
    from faststream.rabbit import RabbitBroker

    broker = RabbitBroker(amqp_url, logger=None)
    await broker.connect()
    try:
        await declare_all(broker)
    finally:
        await broker.stop()
    for name in await retire_old_audit_queues(amqp_url):
        logging.getLogger("cbs.topology").warning(
            "%s: audit's old tap, unbound but kept: it holds messages audit never recorded", name)
