"""Audit's taps: every command and event made into a `Draft` record (parsed with the contract its
AMQP `type` names, dumped redacted, classified).

The taps are two RabbitMQ streams (`audit.tap.commands`, `audit.tap.events`, bus/topology.py),
read in batches by one replica at a time (bus/streams.py); `records.record_tap` turns each batch
into drafts here and appends them to the chain, in the transaction that moves the stream's offset.

Audit never dead-letters: an unknown or invalid body is stored without payload (its sha256,
size and the parse error, never the input), and a record the database refuses is stored again
stripped to its envelope. A database outage is waited out (the stream keeps the messages; the
bank goes on publishing), never turned into a refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, ValidationError

from bus.db import TRANSIENT_DB_ERRORS
from bus.streams import Gap
from bus import topology
from bus.settings import broker_user
from contracts import (
    account, audit, customer, day, identity, ledger, loan, notification, operations, partner, payment, security,
)
from contracts.common import GetOperation, Reply, ReplyCopies
from contracts.partner import PartnerAccessChanged
from workers.audit.domain import chain, subjects
from workers.audit.domain.classification import Classification, classify
from workers.audit.domain.outcomes import CommandOutcome, classify_outcome, outcome_of_reply, outcome_payload

log = logging.getLogger("cbs.audit")

MAX_TEXT_CHARS = 1_000  # envelope fields (routing key, ids, actor) are cut here
TAP_GAP_KEY = "audit.tap_gap"  # the record of messages a tap's retention removed before audit read them

Kind = Literal["command", "event", "outcome"]
CONTRACT_MODULES = (customer, account, ledger, identity, payment, partner, security, audit, day, loan, operations,
                    notification)
REPLY_EXCHANGE = ""  # replies travel on the default exchange: an outcome record's `exchange`


def _contracts_by_type() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {GetOperation.message_type: GetOperation}
    for module in CONTRACT_MODULES:
        for model in (*getattr(module, "COMMANDS", ()), *getattr(module, "EVENTS", ())):
            assert found.setdefault(model.message_type, model) is model, f"two contracts are {model.message_type}"
    return found


def _contracts_by_key(by_type: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    return {m.routing_key: m for m in by_type.values() if getattr(m, "routing_key", "")}  # type: ignore[attr-defined]


BY_TYPE = _contracts_by_type()
BY_KEY = _contracts_by_key(BY_TYPE)


def _text(value: Any) -> str | None:
    """An envelope value as storable text: PostgreSQL text holds no NUL, and nothing is unbounded."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    text = str(value).replace("\x00", "\ufffd")[:MAX_TEXT_CHARS]
    return text or None


@dataclass(frozen=True, slots=True)
class Draft:
    """A record before the chain: everything but seq, recorded_at, expires_at and the hashes."""

    event_id: str
    exchange: str
    routing_key: str
    message_type: str | None
    kind: Kind
    correlation_id: str | None
    causation_id: str | None
    actor: str | None
    broker_user: str | None
    entity_type: str | None
    entity_id: str | None
    classification: Classification
    payload: dict[str, Any] | None
    payload_sha256: str
    payload_bytes: int
    parse_error: str | None
    grant: PartnerAccessChanged | None = None  # a partner's grant, which audit learns like every worker
    accounts: tuple[str, ...] = ()  # every account id the body names (the account trail's index)
    outcome: tuple[str, str, CommandOutcome] | None = None  # (command_id, command key, outcome), believed

    @property
    def key(self) -> tuple[str, str]:
        return self.exchange, self.event_id

    def stripped(self, why: str) -> Draft:
        """The envelope only: what is stored when the full record cannot be."""
        return replace(self, payload=None, entity_type=None, entity_id=None, parse_error=why[:MAX_TEXT_CHARS],
                       grant=None, accounts=(), outcome=None)  # fmt: skip


def _contract_for(message_type: str | None, routing_key: str) -> tuple[type[BaseModel] | None, str | None]:
    """The contract to parse with, or why there is none."""
    if message_type:
        contract = BY_TYPE.get(message_type)
        if contract is None:
            return None, f"unknown message type {message_type[:200]!r}"
        expected = getattr(contract, "routing_key", "")
        if contract is GetOperation:
            if not routing_key.endswith(".get_operation"):
                return None, "type does not match the routing key"
        elif expected != routing_key:
            return None, "type does not match the routing key"
        return contract, None
    contract = BY_KEY.get(routing_key)
    return (contract, None) if contract is not None else (None, "no type, and no contract for the routing key")


def _parse_error(exc: ValidationError) -> str:
    # Location and kind only: pydantic's messages can quote the input, which may be a secret.
    errors = [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors(include_url=False, include_input=False)]
    return "invalid body: " + json.dumps(errors[:20])


@dataclass(frozen=True, slots=True)
class Parsed:
    """What audit keeps of a body that parsed with its contract."""

    payload: dict[str, Any]  # secrets redacted
    canonical: bytes  # the payload's canonical JSON (`chain.canonical_json`)
    model: BaseModel


def parse(body: bytes, message_type: str | None, routing_key: str, max_body_bytes: int) -> Parsed | str:
    """The body parsed with its contract, or why it did not parse."""
    if len(body) > max_body_bytes:
        return f"body exceeds {max_body_bytes} bytes"
    contract, why = _contract_for(message_type, routing_key)
    if contract is None:
        return why or "no contract"
    try:
        model = contract.model_validate_json(body)
    except ValidationError as exc:
        return _parse_error(exc)
    payload = model.model_dump(mode="json", context={"redact": True})
    try:
        canonical = chain.canonical_json(payload)  # a payload that cannot be hashed cannot be chained
    except (TypeError, ValueError):
        return "body has no canonical JSON form"
    return Parsed(payload, canonical, model)


def draft_of(
    body: bytes,
    *,
    exchange: str,
    kind: Kind,
    message_id: str | None,
    routing_key: str,
    message_type: str | None,
    correlation_id: str | None,
    headers: dict[str, Any],
    user_id: str | None,
    max_body_bytes: int,
) -> Draft:
    """Everything audit keeps of one delivery, from its body and AMQP properties."""
    routing_key = _text(routing_key) or ""
    message_type = _text(message_type)
    sha256 = hashlib.sha256(body).hexdigest()
    try:
        parsed = parse(body, message_type, routing_key, max_body_bytes)
    except Exception as exc:  # a bug here must not turn into a nack: the message is stored anyway
        log.exception("audit could not parse %s", routing_key)
        parsed = f"audit could not parse it: {type(exc).__name__}"
    payload, error = (parsed.payload, None) if isinstance(parsed, Parsed) else (None, parsed)
    if not message_id:
        # Without a message_id a redelivery is recognised by its body (and the record says so).
        message_id = f"sha256:{sha256}"
        error = "; ".join(filter(None, ("no message_id", error)))
    entity_type, entity_id = subjects.entity_of(routing_key, payload) if payload is not None else (None, None)
    return Draft(
        event_id=_text(message_id) or "",
        exchange=exchange,
        routing_key=routing_key,
        message_type=message_type,
        kind=kind,
        correlation_id=_text(correlation_id),
        causation_id=_text(headers.get("x-causation-id")),
        actor=_text(subjects.actor_of_headers(headers.get("x-actor"))),
        broker_user=_text(user_id),
        entity_type=_text(entity_type),
        entity_id=_text(entity_id),
        classification=classify(routing_key, message_type, kind),
        payload=payload,
        payload_sha256=sha256,
        payload_bytes=len(body),
        parse_error=error,
        grant=parsed.model if isinstance(parsed, Parsed) and isinstance(parsed.model, PartnerAccessChanged) else None,
        accounts=subjects.accounts_of(routing_key, parsed.canonical) if isinstance(parsed, Parsed) else (),
    )


def transient(exc: BaseException) -> bool:
    """The database is away (or said try again): the batch waits, nothing is stripped."""
    return isinstance(exc, (*TRANSIENT_DB_ERRORS, OSError, asyncio.TimeoutError))


def draft_of_delivery(message: AbstractIncomingMessage, *, exchange: str, kind: Kind, max_body_bytes: int) -> Draft:
    return draft_of(
        message.body, exchange=exchange, kind=kind, message_id=message.message_id, routing_key=message.routing_key or "",
        message_type=message.type, correlation_id=message.correlation_id, headers=dict(message.headers or {}),
        user_id=message.user_id, max_body_bytes=max_body_bytes,
    )  # fmt: skip


def gap_draft(gap: Gap, *, stream: str, exchange: str, kind: Kind) -> Draft:
    """The record that the chain misses messages: which, of which tap, and why."""
    payload = {"stream": stream, "first_offset": gap.first, "last_offset": gap.last, "at_most_messages": gap.at_most_messages}
    body = chain.canonical_json(payload)
    return Draft(
        event_id=f"gap:{stream}:{gap.first}-{gap.last}", exchange=exchange, routing_key=TAP_GAP_KEY,
        message_type=None, kind=kind, correlation_id=None, causation_id=None, actor=None, broker_user=None,
        entity_type="audit_tap", entity_id=stream,
        classification=classify(TAP_GAP_KEY, None, "event" if kind == "outcome" else kind),
        payload=payload, payload_sha256=hashlib.sha256(body).hexdigest(), payload_bytes=len(body),
        parse_error=f"up to {gap.at_most_messages} messages of {stream} were removed by its retention before audit read them",
    )  # fmt: skip


def _command_worker(command_key: str) -> str:
    return command_key.split(".", 1)[0]


def draft_of_reply(
    body: bytes, *, message_id: str | None, command_key: str | None, correlation_id: str | None,
    user_id: str | None, max_body_bytes: int,
) -> Draft:  # fmt: skip
    """The outcome record of one reply (the `audit.tap.replies` stream). Its event_id is the
    reply's message_id (`<command message_id>.reply`), its causation_id the command's message_id.
    Believed (indexed as the command's outcome) only from the broker user of the worker that owns
    the command; anything else is recorded with why it was not believed."""
    sha256 = hashlib.sha256(body).hexdigest()
    reply_id = _text(message_id) or f"sha256:{sha256}"
    command_id = reply_id.removesuffix(".reply") if reply_id.endswith(".reply") else None
    key = _text(command_key) or ""
    why: str | None = None
    parsed: Any = None
    if len(body) > max_body_bytes:
        why = f"body exceeds {max_body_bytes} bytes"
    else:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            why = "the reply is not JSON"
    outcome = outcome_of_reply(parsed) if why is None else None
    if why is None and outcome is None:
        why = "not a reply envelope"
    if why is None and (command_id is None or not key or "." not in key):
        why = "a reply names its command: message_id `<command message_id>.reply` and header x-command"
    forged = why is None and user_id != broker_user(_command_worker(key))
    if forged:
        why = f"a reply to {key[:200]} comes from {_command_worker(key)[:100]}'s broker user, not {str(user_id)[:200]!r}"
    payload = outcome_payload(outcome, command_id, key) if outcome is not None and command_id is not None else None
    classification = classify_outcome(key, outcome)
    if forged:  # somebody else answering for a worker: a security event, whatever the reply said
        classification = replace(classification, security_followup=True)
    return Draft(
        event_id=reply_id, exchange=REPLY_EXCHANGE, routing_key=key, message_type=Reply.message_type, kind="outcome",
        correlation_id=_text(correlation_id), causation_id=command_id, actor=None, broker_user=_text(user_id),
        entity_type=None, entity_id=None, classification=classification, payload=payload,
        payload_sha256=sha256, payload_bytes=len(body), parse_error=why,
        outcome=(command_id, key, outcome) if why is None and outcome is not None and command_id else None,
    )  # fmt: skip


def drafts_of_reply_copies(body: bytes, *, message_id: str | None, user_id: str | None,
                           max_body_bytes: int) -> list[Draft]:  # fmt: skip
    """The outcome records of a group commit's replies (`ReplyCopies`): one per copy, each as
    `draft_of_reply` makes it of a single reply (believed from the command's worker only). A
    message that is not one is recorded once, with why, and indexes nothing."""
    why: str | None = None
    if len(body) > max_body_bytes:
        why = f"body exceeds {max_body_bytes} bytes"
    else:
        try:
            copies = ReplyCopies.model_validate_json(body)
        except ValidationError as exc:
            why = "reply copies: " + _parse_error(exc)
    if why is not None:
        unread = draft_of_reply(body, message_id=message_id, command_key=None, correlation_id=None, user_id=user_id,
                                max_body_bytes=max_body_bytes)  # fmt: skip
        return [replace(unread, message_type=ReplyCopies.message_type, parse_error=why, payload=None, outcome=None)]
    return [
        draft_of_reply(copy.body.encode(), message_id=copy.message_id, command_key=copy.command,
                       correlation_id=copy.correlation_id, user_id=user_id, max_body_bytes=max_body_bytes)
        for copy in copies.replies
    ]  # fmt: skip


def drafts_of_reply_delivery(message: AbstractIncomingMessage, *, max_body_bytes: int) -> list[Draft]:
    """What one delivery of the replies tap holds: a reply's copy, or a group commit's copies."""
    if message.type == ReplyCopies.message_type:
        return drafts_of_reply_copies(message.body, message_id=message.message_id, user_id=message.user_id,
                                      max_body_bytes=max_body_bytes)  # fmt: skip
    headers = dict(message.headers or {})
    return [draft_of_reply(
        message.body, message_id=message.message_id, command_key=_text(headers.get(topology.REPLY_COMMAND_HEADER)),
        correlation_id=message.correlation_id, user_id=message.user_id, max_body_bytes=max_body_bytes,
    )]  # fmt: skip
