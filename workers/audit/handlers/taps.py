"""Audit's taps: every command and event, parsed, redacted and appended in batches.

Each delivery on `audit.commands` / `audit.events` (raw subscribers, wired in app.py) becomes a
`Draft` at once (parse with the contract its AMQP `type` names, dump it redacted, classify it);
the subscriber then waits until the one `Recorder` task has committed it, and only then returns,
so the ack follows the commit. The recorder takes whatever has arrived (up to MAX_BATCH drafts,
MAX_BATCH_BYTES of bodies) into one transaction and hands it to `records.append`. Bounds: each
tap's channel prefetch (so at most 2 × prefetch drafts wait in memory), the batch size and bytes.

Audit never dead-letters: an unknown or invalid body is stored without payload (its sha256,
size and the parse error, never the input), and a record the database refuses is stored again
stripped to its envelope. A database outage is waited out (the deliveries stay unacked), never
turned into a nack that would count toward the delivery limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ValidationError

from bus.db import TRANSIENT_DB_ERRORS
from contracts import account, audit, customer, identity, ledger, partner, payment, security
from contracts.common import GetOperation
from contracts.partner import PartnerAccessChanged
from workers.audit.domain import chain, subjects
from workers.audit.domain.classification import Classification, classify

log = logging.getLogger("cbs.audit")

MAX_BATCH = 256  # drafts per transaction
MAX_BATCH_BYTES = 16 * 1024 * 1024  # bodies per transaction
MAX_TEXT_CHARS = 1_000  # envelope fields (routing key, ids, actor) are cut here
RETRY_MAX_S = 5.0

Kind = Literal["command", "event"]
CONTRACT_MODULES = (customer, account, ledger, identity, payment, partner, security, audit)


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

    @property
    def key(self) -> tuple[str, str]:
        return self.exchange, self.event_id

    def stripped(self, why: str) -> Draft:
        """The envelope only: what is stored when the full record cannot be."""
        return replace(self, payload=None, entity_type=None, entity_id=None, parse_error=why[:MAX_TEXT_CHARS],
                       grant=None)  # fmt: skip


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


def parse(body: bytes, message_type: str | None, routing_key: str, max_body_bytes: int) -> tuple[
    dict[str, Any] | None, str | None, BaseModel | None
]:  # fmt: skip
    """(redacted payload, parse error, the model) of a body; the payload is None when it did not parse."""
    if len(body) > max_body_bytes:
        return None, f"body exceeds {max_body_bytes} bytes", None
    contract, why = _contract_for(message_type, routing_key)
    if contract is None:
        return None, why, None
    try:
        model = contract.model_validate_json(body)
    except ValidationError as exc:
        return None, _parse_error(exc), None
    payload = model.model_dump(mode="json", context={"redact": True})
    try:
        chain.canonical_json(payload)  # a payload that cannot be hashed cannot be chained
    except (TypeError, ValueError):
        return None, "body has no canonical JSON form", None
    return payload, None, model


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
        payload, error, model = parse(body, message_type, routing_key, max_body_bytes)
    except Exception as exc:  # a bug here must not turn into a nack: the message is stored anyway
        log.exception("audit could not parse %s", routing_key)
        payload, error, model = None, f"audit could not parse it: {type(exc).__name__}", None
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
        grant=model if isinstance(model, PartnerAccessChanged) else None,
    )


@dataclass
class _Pending:
    draft: Draft
    done: asyncio.Future[None]


Append = Callable[[asyncpg.Connection, Sequence[Draft]], Awaitable[None]]
InTransaction = Callable[[Callable[[asyncpg.Connection], Awaitable[Any]]], Awaitable[Any]]


class Recorder:
    """One writer per process: takes what has arrived, appends it in one transaction, then
    releases the deliveries (which the subscribers then ack)."""

    def __init__(self, in_transaction: InTransaction, append: Append, *, queue_size: int) -> None:
        self._in_transaction = in_transaction
        self._append = append
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.records_written = 0
        self.batches_written = 0

    async def record(self, draft: Draft) -> None:
        """Returns once the draft is committed (or was already stored)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_forever(), name="audit-writer")
        done = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(draft, done))
        await done

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():  # never committed: the broker redelivers them
            self._queue.get_nowait().done.cancel()

    async def _take(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        size = batch[0].draft.payload_bytes
        while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES and not self._queue.empty():
            item = self._queue.get_nowait()
            batch.append(item)
            size += item.draft.payload_bytes
        return batch

    async def _write_forever(self) -> None:
        while True:
            batch = await self._take()
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for item in batch:  # shutting down: unacked, the broker redelivers them
                    item.done.cancel()
                raise
            except Exception as exc:  # a bug, not the data: nack them (redelivered) and carry on
                log.exception("audit writer failed on a batch of %d", len(batch))
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(RuntimeError(f"audit writer failed: {exc!r}"))

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            await self._commit([p.draft for p in batch])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _transient(exc):
                await self._until_committed([p.draft for p in batch], exc)
            else:
                # One record the database refuses must not hold the others: one at a time,
                # and a refused one stored again as its envelope only.
                log.warning("audit batch of %d refused (%r); writing one by one", len(batch), exc)
                for item in batch:
                    await self._write_one(item.draft)
        for item in batch:
            if not item.done.done():
                item.done.set_result(None)

    async def _write_one(self, draft: Draft) -> None:
        try:
            await self._commit([draft])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _transient(exc):
                await self._until_committed([draft], exc)
                return
            log.error("audit record %s refused (%r); storing its envelope", draft.event_id, exc)
            await self._until_committed([draft.stripped(f"record refused by the database: {type(exc).__name__}")], None)

    async def _until_committed(self, drafts: list[Draft], first: Exception | None) -> None:
        """The database is away: wait it out; the deliveries stay unacked meanwhile."""
        delay, error = 0.1, first
        while True:
            if error is not None:
                log.warning("audit cannot write %d records, retrying in %.1f s: %r", len(drafts), delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            try:
                await self._commit(drafts)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc

    async def _commit(self, drafts: list[Draft]) -> None:
        await self._in_transaction(lambda conn: self._append(conn, drafts))
        self.records_written += len(drafts)
        self.batches_written += 1


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (*TRANSIENT_DB_ERRORS, OSError, asyncio.TimeoutError))
