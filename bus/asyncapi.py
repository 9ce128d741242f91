"""The AsyncAPI document of the bus: every command, reply and event (DESIGN §1: the partners' manual).

Built from `bus.topology.WORKER_CONTRACTS` on a docs-only broker that never connects, so a new
worker or contract appears by itself. `docs/asyncapi.yaml` is this document, committed;
`tests/unit/test_asyncapi.py` fails when it is out of date (regenerate with `cbs docs asyncapi`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.specification import AsyncAPI

from bus import topology
from contracts.common import Command, Event, GetOperation, Reply, ReplyCopies

TITLE = "CBS bus"
VERSION = "1.0.0"
GET_OPERATION_TYPE = GetOperation.message_type  # what the edge sends
# Where partners connect; the real host and vhost come with their credentials.
SERVER_URL = "amqps://rabbitmq.cbs.example:5671/"

DESCRIPTION = f"""\
The message bus of CBS, a core banking system, as partner systems see it.

**Commands.** Publish a command as JSON to the topic exchange `{topology.COMMANDS.name}` with its
routing key (`<worker>.<command>`), persistent, with these AMQP properties:

- `message_id` (required): the idempotency key. Sending the same command again with the same
  `message_id` gets the same reply and has no second effect; reusing it for a different body is
  refused with `idempotency_key_reused`.
- `type`: the contract name with its version, e.g. `ledger.create_transfers.v1`.
- `reply_to`: your reply queue, `partner.<name>.replies` (leave it out to fire and forget).
- `correlation_id`: copied onto the reply and onto the events the command causes.
- `user_id`: your broker user `partner.<name>`; the broker refuses any other value.

Your broker user may publish only the routing keys it was granted, and read only your own queues
(`partner.<name>.replies`, `partner.<name>.events`); it cannot declare anything. A publish outside
your grant closes your channel with `ACCESS_REFUSED`; should one ever get through, the worker
refuses it with `code: "forbidden"` (workers learn your grant from `partner.access_changed`).

**Replies** are `{{"ok": true, "result": ...}}` or `{{"ok": false, "error": {{"code", "message",
"details"}}}}`. A business refusal is a reply with a stable `code`, never a lost message. A
malformed command is dead-lettered and answered with `code: "invalid_message"`. Each worker also
answers `<worker>.get_operation` with the stored reply of an earlier command by its `message_id`.

**Events** are published to the topic exchange `{topology.EVENTS.name}` with routing key
`<worker>.<event>`; the operator binds the ones you receive to `partner.<name>.events`.
Deliveries are at least once: deduplicate by `message_id`.
"""


def _docs_handler(model: type[Any]) -> Callable[[Any], Awaitable[None]]:
    """A handler that is never called: its type hint is the payload in the document."""

    async def handle(body: Any) -> None:  # pragma: no cover - documentation only
        return None

    handle.__annotations__ = {"body": model, "return": None}
    return handle


def _command(broker: RabbitBroker, contract: type[Any], key: str, summary: str, message_type: str) -> None:
    how = (
        f"Publish to exchange `{topology.COMMANDS.name}` with routing key `{key}` and `type` `{message_type}`;"
        " the reply goes to `reply_to`."
    )
    broker.subscriber(
        topology.command_queue(key), topology.COMMANDS, title=f"{topology.COMMANDS.name}:{key}",
        description=" ".join(filter(None, (summary, how))),
    )(_docs_handler(contract))  # fmt: skip


def _event(broker: RabbitBroker, event: type[Event]) -> None:
    description = (
        f"{(event.__doc__ or '').strip()} Published to exchange `{topology.EVENTS.name}` with routing key"
        f" `{event.routing_key}` and `type` `{event.message_type}`."
    ).strip()
    broker.publisher(
        routing_key=event.routing_key, exchange=topology.EVENTS, schema=event,
        title=f"{topology.EVENTS.name}:{event.routing_key}", description=description,
    )  # fmt: skip


def _replies(broker: RabbitBroker) -> None:
    broker.publisher(
        RabbitQueue("partner.<name>.replies", durable=True), schema=Reply, title="reply",
        description=(
            "The reply to every command, published on the default exchange to the queue named in the"
            " command's `reply_to`, with the command's `correlation_id`, `message_id`"
            f" `<command message_id>.reply` and `type` `{Reply.message_type}`."
        ),
    )  # fmt: skip


def _reply_copies(broker: RabbitBroker) -> None:
    broker.publisher(
        RabbitQueue(topology.AUDIT_REPLIES_TAP, durable=True), schema=ReplyCopies, title="reply copies",
        description=(
            f"{(ReplyCopies.__doc__ or '').strip()} Published by a worker on the default exchange to the stream"
            f" `{topology.AUDIT_REPLIES_TAP}` with `type` `{ReplyCopies.message_type}`; a single reply's copy"
            f" reaches the same stream through the reply's `BCC` header instead, with header"
            f" `{topology.REPLY_COMMAND_HEADER}` naming its command."
        ),
    )  # fmt: skip


def _check_unique_names() -> None:
    # Schemas are keyed by class name in the document: two contracts with one name would
    # silently show one payload for both.
    seen: dict[str, type[Any]] = {}
    for contracts in (*topology.WORKER_CONTRACTS.values(), *topology.OPERATOR_CONTRACTS.values()):
        for model in (*contracts.COMMANDS, *contracts.EVENTS):
            other = seen.setdefault(model.__name__, model)
            assert other is model, f"{model.__module__}.{model.__name__} and {other.__module__} share a name"


def docs_broker() -> RabbitBroker:
    """A broker that only describes: one subscriber per command queue, one publisher per event."""
    _check_unique_names()
    broker = RabbitBroker(SERVER_URL, specification_url=SERVER_URL, logger=None)
    for worker, contracts in topology.WORKER_CONTRACTS.items():
        commands: tuple[type[Command], ...] = tuple(contracts.COMMANDS)
        for contract in commands:
            summary = (contract.__doc__ or "").strip()
            _command(broker, contract, contract.routing_key, summary, contract.message_type)
        _command(
            broker, GetOperation, topology.get_operation_key(worker),
            f"The stored reply of a {worker} command by its `message_id` (the operation id).",
            GET_OPERATION_TYPE,
        )  # fmt: skip
    _replies(broker)
    _reply_copies(broker)
    for contracts in (*topology.WORKER_CONTRACTS.values(), *topology.OPERATOR_CONTRACTS.values()):
        events: tuple[type[Event], ...] = tuple(contracts.EVENTS)
        for event in events:
            _event(broker, event)
    return broker


def asyncapi_yaml() -> str:
    """The AsyncAPI 3.0 document of the bus, as YAML (also served by the edge at /asyncapi)."""
    spec = AsyncAPI(docs_broker(), title=TITLE, version=VERSION, description=DESCRIPTION)
    # Sorted keys: FastStream's own order follows set iteration, which changes from run to run.
    return yaml.safe_dump(spec.to_specification().to_jsonable(), sort_keys=True, allow_unicode=True, width=100)
