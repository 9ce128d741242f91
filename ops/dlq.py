"""Dead letters: list them with why they died, show one, replay or purge them (DESIGN §3).

Every letter of `cbs.dead` is fetched (at most `MAX_LISTED`, unacknowledged, on one channel),
chosen by a `Selection`, and the rest are returned to the queue untouched. A replay republishes
a letter to where it first went, under its first sender's `user_id`, and acks it once the broker
confirmed; a crash in between replays it twice, which the consumers' inboxes absorb. A replay or
a purge is then told to the bus as `ops.dead_letters_replayed` / `ops.dead_letters_purged`
(contracts/operations.py), which the audit worker records like every event.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import getpass
import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from pydantic import BaseModel, ValidationError

from bus import topology
from contracts import operations

MAX_LISTED = operations.MAX_LETTERS  # a listing never pulls more than this into memory
SHOWN_BODY_CHARS = 500  # in a listing; `show` prints the whole body


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    routing_key: str
    exchange: str
    message_type: str | None
    reason: str | None  # why it first died: rejected, delivery_limit, expired, maxlen
    queue: str | None  # the queue it first died in
    body: bytes
    user_id: str | None = None  # its first sender, as the broker checked it
    correlation_id: str | None = None
    reply_to: str | None = None
    died_at: dt.datetime | None = None  # the first death's time (x-death)
    deaths: int = 1  # how many times it was dead-lettered (x-death counts)
    headers: dict[str, Any] = field(default_factory=dict)  # its own, without the x-death bookkeeping

    @property
    def diagnosis(self) -> str | None:
        return diagnose(self)

    def as_dict(self, *, whole: bool = False) -> dict[str, Any]:
        body = self.body.decode("utf-8", "replace")
        return {
            "message_id": self.message_id,
            "type": self.message_type,
            "queue": self.queue,
            "reason": self.reason,
            "error": self.diagnosis,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "user_id": self.user_id,
            "correlation_id": self.correlation_id,
            "died_at": self.died_at.isoformat() if self.died_at else None,
            "deaths": self.deaths,
            "headers": {k: _plain(v) for k, v in self.headers.items()},
            "body": body if whole else body[:SHOWN_BODY_CHARS],
        }

    def ref(self) -> operations.DeadLetterRef:
        cut = lambda v: v[:200] if v else v  # noqa: E731 - the contract's bound, never a refusal here
        return operations.DeadLetterRef(message_id=cut(self.message_id), type=cut(self.message_type),
                                        routing_key=self.routing_key[:200], queue=cut(self.queue),
                                        reason=self.reason[:50] if self.reason else None)  # fmt: skip


def _plain(value: Any) -> Any:
    """A header value as JSON can print it."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    if value is None or value == b"" or value == "":
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _first_exchange(headers: dict[str, Any], first: Any) -> str:
    """Where it was first published: "" is the default exchange (a reply by queue name); with no
    death recorded at all, a command's exchange."""
    for found in (headers.get("x-first-death-exchange"), first.get("exchange")):
        if found is not None:
            return _text(found) or ""
    return topology.COMMANDS.name


def _dead_letter(message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers or {})
    deaths = headers.get("x-death") if isinstance(headers.get("x-death"), list) else []
    first: Any = deaths[-1] if deaths else {}  # RabbitMQ keeps the newest death first
    died_at = first.get("time")
    return DeadLetter(
        message_id=message.message_id,
        routing_key=message.routing_key or "",
        exchange=_first_exchange(headers, first),
        message_type=message.type,
        reason=_text(headers.get("x-first-death-reason")) or _text(first.get("reason")),
        queue=_text(headers.get("x-first-death-queue")) or _text(first.get("queue")),
        body=message.body,
        user_id=message.user_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        died_at=died_at if isinstance(died_at, dt.datetime) else None,
        deaths=sum(int(d.get("count", 1)) for d in deaths if isinstance(d, dict)) or 1,
        headers={k: v for k, v in headers.items() if not k.startswith(("x-death", "x-first-death", "x-last-death"))},
    )


# -- why it died -------------------------------------------------------------------------------


def _contracts() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module in (*topology.WORKER_CONTRACTS.values(), *topology.OPERATOR_CONTRACTS.values()):
        for model in (*getattr(module, "COMMANDS", ()), *getattr(module, "EVENTS", ())):
            found.setdefault(model.routing_key, model)  # type: ignore[attr-defined]
    return found


CONTRACTS_BY_KEY = _contracts()


def diagnose(letter: DeadLetter) -> str | None:
    """The error that sent it here, found again the way the worker's runtime checks a delivery
    (bus/runtime.py: message_id, type, size, NUL, the contract). None when the letter passes
    every check: it failed for another reason, see the worker's log for its message_id."""
    if letter.reason == "delivery_limit":
        return f"failed on every delivery ({topology.DELIVERY_LIMIT} redeliveries): see {letter.queue}'s worker log"
    if letter.reason in ("expired", "maxlen"):
        return f"{letter.reason} in {letter.queue}"
    contract = CONTRACTS_BY_KEY.get(letter.routing_key)
    if contract is None:
        return f"no contract has routing key {letter.routing_key!r}"
    if not letter.message_id:
        return "message_id is required: it is the idempotency key"
    if letter.message_type != contract.message_type:  # type: ignore[attr-defined]
        return f"type must be {contract.message_type!r}, not {letter.message_type!r}"  # type: ignore[attr-defined]
    if b"\\u0000" in letter.body or b"\x00" in letter.body:
        return "text fields must not contain NUL (U+0000)"
    try:
        contract.model_validate_json(letter.body)
    except ValidationError as exc:
        # Where and what kind only: pydantic's messages may quote the input (a secret, say).
        errors = [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors(include_url=False, include_input=False)]
        return f"body is not a valid {contract.__name__}: {json.dumps(errors[:5])}"
    return None


# -- choosing letters --------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which letters an action takes: by message_id, and/or patterns (`account.*`) of type, queue
    and reason; `everything` takes all. An empty selection takes nothing."""

    ids: frozenset[str] = frozenset()
    type: str | None = None
    queue: str | None = None
    reason: str | None = None
    everything: bool = False

    @property
    def empty(self) -> bool:
        return not (self.ids or self.type or self.queue or self.reason or self.everything)

    def matches(self, letter: DeadLetter) -> bool:
        if self.everything:
            return True
        if self.empty:
            return False
        return ((not self.ids or (letter.message_id or "") in self.ids)
                and _like(letter.message_type, self.type) and _like(letter.queue, self.queue)
                and _like(letter.reason, self.reason))  # fmt: skip

    def described(self) -> dict[str, str]:
        if self.everything:
            return {"all": "true"}
        chosen = {"type": self.type, "queue": self.queue, "reason": self.reason,
                  "id": ",".join(sorted(self.ids))[:500] if self.ids else None}  # fmt: skip
        return {k: v for k, v in chosen.items() if v}


def _like(value: str | None, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value or "", pattern)


# -- the broker --------------------------------------------------------------------------------


async def _fetch_all(channel: aio_pika.abc.AbstractChannel, limit: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.get_queue(topology.DEAD_LETTER_QUEUE_NAME, ensure=True)
    fetched = []
    while len(fetched) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        fetched.append(message)
    return fetched


async def list_dead(amqp_url: str, limit: int = MAX_LISTED, selection: Selection | None = None) -> list[DeadLetter]:
    """Peek at dead letters: every fetched message is returned to the queue afterwards."""
    chosen = selection or Selection(everything=True)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        fetched = await _fetch_all(channel, min(limit, MAX_LISTED))
        letters = [_dead_letter(m) for m in fetched]
        for message in fetched:
            await message.nack(requeue=True)
        return [letter for letter in letters if chosen.matches(letter)]


async def show(amqp_url: str, message_id: str) -> list[DeadLetter]:
    """Every dead letter with this message_id (a message that died twice is there twice)."""
    return await list_dead(amqp_url, selection=Selection(ids=frozenset({message_id})))


def _user_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).username or "")


async def _tell(channel: aio_pika.abc.AbstractChannel, amqp_url: str, event: operations.DeadLettersAction) -> str:
    """Publish the action's fact on `cbs.events` (confirmed, mandatory: audit's tap is bound `#`)."""
    message_id = uuid.uuid4().hex
    exchange = await channel.get_exchange(topology.EVENTS.name, ensure=False)
    await exchange.publish(
        aio_pika.Message(event.model_dump_json().encode(), content_type="application/json", message_id=message_id,
                         type=event.message_type, user_id=_user_of(amqp_url),
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=event.routing_key, mandatory=True,
    )  # fmt: skip
    return message_id


def _action(kind: type[operations.DeadLettersAction], selection: Selection,
            letters: list[DeadLetter]) -> operations.DeadLettersAction:  # fmt: skip
    return kind(selected_by=selection.described(), letters=[letter.ref() for letter in letters], count=len(letters),
                operator=getpass.getuser()[:200], host=socket.gethostname()[:200], occurred_at=dt.datetime.now(dt.UTC))  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    letters: list[DeadLetter]
    recorded_as: str | None  # the message_id of the audit fact; None when nothing was taken

    @property
    def message_ids(self) -> list[str]:
        return [letter.message_id or "" for letter in self.letters]


async def replay_selected(amqp_url: str, selection: Selection, limit: int = MAX_LISTED) -> Outcome:
    """Republish the chosen dead letters with their own message_id, to where they first went."""
    connection = await aio_pika.connect(amqp_url)
    replayed: list[DeadLetter] = []
    async with connection:
        # Returns raise: a letter whose first route is gone stays in cbs.dead (unacked, so returned).
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        fetched = await _fetch_all(channel, min(limit, MAX_LISTED))
        for message in fetched:
            letter = _dead_letter(message)
            if not selection.matches(letter):
                await message.nack(requeue=True)
                continue
            exchange = (channel.default_exchange if not letter.exchange
                        else await channel.get_exchange(letter.exchange, ensure=False))  # fmt: skip
            await exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    headers=letter.headers,
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
            replayed.append(letter)
        recorded = await _tell(channel, amqp_url, _action(operations.DeadLettersReplayed, selection, replayed)) if replayed else None
    return Outcome(replayed, recorded)


async def replay(amqp_url: str, message_ids: set[str] | None, limit: int = MAX_LISTED) -> list[str]:
    """Replay all dead letters (None) or those with the given ids; their message_ids."""
    selection = Selection(everything=True) if message_ids is None else Selection(ids=frozenset(message_ids))
    return (await replay_selected(amqp_url, selection, limit)).message_ids


async def purge(amqp_url: str, selection: Selection, limit: int = MAX_LISTED) -> Outcome:
    """Remove the chosen dead letters for good (acked, not republished). Their fact goes to the
    bus first, confirmed: a purge that could not be recorded leaves every letter where it was."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        fetched = await _fetch_all(channel, min(limit, MAX_LISTED))
        chosen, kept = [], []
        for message in fetched:
            (chosen if selection.matches(_dead_letter(message)) else kept).append(message)
        for message in kept:
            await message.nack(requeue=True)
        purged = [_dead_letter(m) for m in chosen]
        recorded = await _tell(channel, amqp_url, _action(operations.DeadLettersPurged, selection, purged)) if purged else None
        for message in chosen:
            await message.ack()
    return Outcome(purged, recorded)
