"""Audit records: a tap's batch appended to the chain (`record_tap`, in the transaction that moves
the stream's offset), and audit's own commands, `audit.list_records` and `audit.verify_chain`."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bus import grants, outbox
from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_seq, page_of
from bus.settings import broker_user
from bus.streams import ApplyBatch, StreamBatch
from contracts import audit as c
from contracts.common import Event, Reply
from contracts.day import BANK_TIME_ZONE
from workers.audit import store
from workers.audit.domain import chain, classification
from workers.audit.handlers import taps
from workers.audit.handlers.taps import Draft, Kind

log = logging.getLogger("cbs.audit")

# --- append (the taps) -----------------------------------------------------------------------


def chained(draft: Draft, seq: int, prev_hash: bytes, recorded_at: datetime) -> dict[str, Any]:
    """The record to store for a draft, at `seq`, hashed onto `prev_hash`."""
    k = draft.classification
    record: dict[str, Any] = {
        "event_id": draft.event_id, "exchange": draft.exchange, "routing_key": draft.routing_key,
        "message_type": draft.message_type, "kind": draft.kind, "correlation_id": draft.correlation_id,
        "causation_id": draft.causation_id, "actor": draft.actor, "broker_user": draft.broker_user,
        "entity_type": draft.entity_type, "entity_id": draft.entity_id, "record_type": k.record_type.value,
        "status": k.status.value, "severity": k.severity.value, "risk_score": k.risk_score,
        "retention": k.retention.value, "expires_at": classification.expires_at(recorded_at, k.retention),
        "compliance_flags": [f.value for f in k.compliance_flags], "regulatory_tags": list(k.regulatory_tags),
        "payload": draft.payload, "payload_sha256": draft.payload_sha256, "payload_bytes": draft.payload_bytes,
        "parse_error": draft.parse_error, "recorded_at": recorded_at,
    }  # fmt: skip
    assert tuple(record) == store.CHAINED
    record["hash"] = chain.chain_hash(prev_hash, record)
    record.update(seq=seq, prev_hash=prev_hash)
    return record


def _followups(record: dict[str, Any], draft: Draft) -> list[Event]:
    k = draft.classification
    common = dict(
        record_seq=record["seq"], event_id=draft.event_id, routing_key_seen=draft.routing_key,
        entity_type=draft.entity_type, entity_id=draft.entity_id, actor=draft.actor, broker_user=draft.broker_user,
        risk_score=k.risk_score, occurred_at=record["recorded_at"],
    )  # fmt: skip
    events: list[Event] = []
    if k.security_followup:
        events.append(c.SecurityEventRaised(**common, threat_type=k.name or draft.routing_key, threat_level=k.severity.value))
    if k.compliance_followup:
        events.append(c.ComplianceEventRaised(
            **common,
            frameworks=list(classification.compliance_frameworks(k.compliance_flags, k.regulatory_tags)),
            control=k.name or draft.routing_key,
            evidence={"compliance_flags": record["compliance_flags"], "regulatory_tags": record["regulatory_tags"],
                      "record_hash": record["hash"].hex()},
        ))  # fmt: skip
    return events


async def append(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> None:
    """Chain the drafts not stored yet, in arrival order, in the caller's transaction."""
    unique = list({d.key: d for d in reversed(drafts)}.values())[::-1]  # first of each key
    # Asked before the head's lock, which the three taps' readers queue on: a batch chained already
    # (a reader's retry, a message twice in a stream) never queues. Under payments this check is
    # 3 ms a batch, yet the wait for the lock stayed about 15 ms a batch without it (2026-12-07):
    # the hold is the COPY, the indexes and the process's turn on the CPU. That wait is idle time
    # in audit, off every payment's path. No other transaction can store these keys in between: a
    # key's exchange is one tap's, and the caller's transaction holds that tap's offset row
    # (bus/streams.py). The unique index on (exchange, event_id) stays the backstop.
    seen = await store.already_recorded(conn, [d.key for d in unique])
    fresh = [d for d in unique if d.key not in seen]
    if not fresh:
        return
    for draft in fresh:
        if draft.grant is not None:
            await grants.record(conn, draft.grant)  # every worker learns partners' grants
    head, now = await store.lock_head(conn)  # held until commit: appends are one chain
    records, followups, prev = [], [], head.last_hash
    for offset, draft in enumerate(fresh, start=1):
        record = chained(draft, head.last_seq + offset, prev, now)
        records.append(record)
        prev = record["hash"]
        followups += [(e, draft.correlation_id, draft.event_id) for e in _followups(record, draft)]
    await store.insert_records(conn, records)
    await store.set_head(conn, store.Head(head.last_seq + len(fresh), prev))
    await outbox.add_many(conn, followups)
    await _index(conn, fresh, records)


async def _index(conn: asyncpg.Connection, drafts: Sequence[Draft], records: Sequence[dict[str, Any]]) -> None:
    """The indexes derived from the chained records (migration 0003), in the same transaction:
    outcomes by command, accounts named, the business date, completed payments, investigations."""
    outcomes, accounts, movements, investigations = [], [], [], []
    day = await store.business_day(conn)
    payment_user, day_user = broker_user("payment"), broker_user("day")  # facts believed from their owners only
    for draft, record in zip(drafts, records, strict=True):
        seq, at, body = record["seq"], record["recorded_at"], draft.payload
        if draft.outcome is not None:
            command_id, key, outcome = draft.outcome
            outcomes.append((command_id, key, outcome.result, outcome.status.value, outcome.code, seq, at))
        accounts += [(account_id, seq) for account_id in draft.accounts]
        if (draft.kind == "event" and body is not None and draft.routing_key == "day.opened"
                and draft.broker_user == day_user):  # fmt: skip
            day = (dt.date.fromisoformat(body["business_date"]), seq)
        if (draft.kind == "event" and body is not None and draft.routing_key == "payment.completed"
                and draft.broker_user == payment_user):  # fmt: skip
            business_date = day[0] if day is not None else at.astimezone(BANK_TIME_ZONE).date()
            movements.append(store.movement_row(body, seq, business_date))
        k = draft.classification
        for kind, raised in (("security", k.security_followup), ("compliance", k.compliance_followup)):
            if raised:
                investigations.append((seq, kind, draft.routing_key, draft.actor, k.risk_score, at))
    await store.insert_outcomes(conn, outcomes)
    await store.insert_accounts(conn, accounts)
    await store.insert_movements(conn, movements)
    await store.insert_investigations(conn, investigations)
    if day is not None:
        await store.set_business_day(conn, *day)


def record_tap(exchange: str, kind: Kind) -> ApplyBatch:
    """What audit does with a batch of one tap: a draft of each message (and of a gap, if the
    stream lost any before they were read), appended in order."""

    async def apply(conn: asyncpg.Connection, batch: StreamBatch) -> None:
        drafts = [taps.draft_of_delivery(m, exchange=exchange, kind=kind, max_body_bytes=batch.max_body_bytes)
                  for m in batch.messages]  # fmt: skip
        if batch.gap is not None:
            drafts.insert(0, taps.gap_draft(batch.gap, stream=batch.stream, exchange=exchange, kind=kind))
        await append_refusing_none(conn, drafts)

    return apply


async def record_replies(conn: asyncpg.Connection, batch: StreamBatch) -> None:
    """What audit does with a batch of its replies tap: each reply's outcome record, in order (a
    group commit's copies, one message, become one record each)."""
    drafts = [d for m in batch.messages for d in taps.drafts_of_reply_delivery(m, max_body_bytes=batch.max_body_bytes)]
    if batch.gap is not None:
        drafts.insert(0, taps.gap_draft(batch.gap, stream=batch.stream, exchange=taps.REPLY_EXCHANGE, kind="outcome"))
    await append_refusing_none(conn, drafts)


async def append_refusing_none(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> None:
    """`append`, where one record the database refuses must not hold the others: on a refusal the
    batch is appended one by one (each in a savepoint), a refused one again as its envelope only.
    The database being away is not a refusal: that is raised, and the whole batch waits."""
    try:
        async with conn.transaction():
            await append(conn, drafts)
        return
    except Exception as exc:
        if taps.transient(exc):
            raise
        log.warning("audit batch of %d refused (%r); appending one by one", len(drafts), exc)
    for draft in drafts:
        try:
            async with conn.transaction():
                await append(conn, [draft])
        except Exception as exc:
            if taps.transient(exc):
                raise
            log.error("audit record %s refused (%r); storing its envelope", draft.event_id, exc)
            async with conn.transaction():
                await append(conn, [draft.stripped(f"record refused by the database: {type(exc).__name__}")])


# --- queries ---------------------------------------------------------------------------------


def _view(row: asyncpg.Record) -> c.AuditRecordView:
    fields = store.chained_fields(row) or {k: row[k] for k in store.CHAINED}
    if row["archived_at"] is not None:
        fields["payload"] = None
    fields["compliance_flags"] = list(row["compliance_flags"])
    fields["regulatory_tags"] = list(row["regulatory_tags"])
    fields["amqp_type"] = fields.pop("message_type")
    outcome = None
    if "outcome_seq" in row.keys() and row["outcome_seq"] is not None:
        outcome = c.RecordOutcome(result=row["outcome_result"], status=row["outcome_status"], code=row["outcome_code"],
                                  outcome_seq=row["outcome_seq"], recorded_at=row["outcome_at"])  # fmt: skip
    return c.AuditRecordView(**fields, seq=row["seq"], prev_hash=bytes(row["prev_hash"]).hex(), hash=bytes(row["hash"]).hex(),
                             outcome=outcome)  # fmt: skip


async def list_records(ctx: Context, cmd: c.ListRecords) -> Reply:
    not_ours = Reply.refusal(c.AuditError.invalid_cursor, "this cursor is not one audit gave")
    before_seq, refusal = cursor_or_refusal(cmd.cursor, decode_seq, not_ours)
    if refusal:
        return refusal
    rows = await store.list_records(
        ctx.conn, entity_id=cmd.entity_id, actor=cmd.actor, routing_key_prefix=cmd.routing_key_prefix,
        since=cmd.since, until=cmd.until, before_seq=before_seq, limit=cmd.limit + 1, account_id=cmd.account_id,
    )  # fmt: skip
    page, cursor = page_of(rows, cmd.limit, lambda r: (r["seq"],))
    return Reply.success(c.AuditRecordPage(items=[_view(r) for r in page], next_cursor=cursor))


@dataclass(frozen=True, slots=True)
class ChainWalk:
    """What a walk along the chain found: records checked, the last hash verified, the last good
    seq, and the first break (seq, reason), if any."""

    checked: int
    last_hash: bytes
    last_ok: int | None
    broken: tuple[int, str] | None


async def walk_chain(conn: asyncpg.Connection, from_seq: int, prev: bytes, last_seq: int, max_records: int) -> ChainWalk:
    """Verify records `from_seq`..`last_seq` (at most `max_records`) in pages, from the hash `prev`
    before them; stops at the first break. Used by `audit.verify_chain` and by `cbs restore`'s check."""
    seq, checked, last_ok = from_seq, 0, None
    broken: tuple[int, str] | None = None
    while seq <= last_seq and checked < max_records:
        limit = min(store.VERIFY_PAGE, max_records - checked)
        rows = await store.chain_page(conn, seq, last_seq, limit)
        if not rows:
            break
        check = chain.verify_chain(((r["prev_hash"], r["hash"], store.chained_fields(r)) for r in rows), prev)
        checked += check.records_checked
        if not check.ok:
            assert check.first_broken_index is not None and check.reason is not None
            broken = rows[check.first_broken_index]["seq"], check.reason.value
            if check.first_broken_index:
                last_ok = rows[check.first_broken_index - 1]["seq"]
            break
        prev, last_ok, seq = check.last_hash, rows[-1]["seq"], rows[-1]["seq"] + 1
    return ChainWalk(checked, prev, last_ok, broken)


async def verify_chain(ctx: Context, cmd: c.VerifyChain) -> Reply:
    """Walk from `from_seq` to the head as it was when the walk began, in pages."""
    head = await store.head(ctx.conn)
    start_prev = chain.GENESIS if cmd.from_seq == 1 else await store.prev_hash_at(ctx.conn, cmd.from_seq)
    if start_prev is None:
        return Reply.refusal(c.AuditError.invalid_range, f"no audit record {cmd.from_seq}")
    walk = await walk_chain(ctx.conn, cmd.from_seq, start_prev, head.last_seq, cmd.max_records)
    checked, prev, last_ok, broken = walk.checked, walk.last_hash, walk.last_ok, walk.broken
    complete = broken is None and (last_ok or cmd.from_seq - 1) >= head.last_seq
    if complete and prev != head.last_hash:
        broken = head.last_seq, "head_mismatch"  # the tail was cut or rewritten
    result = c.ChainVerification(
        ok=broken is None, records_checked=checked, from_seq=cmd.from_seq, last_seq_checked=last_ok,
        complete=complete, first_broken_seq=None if broken is None else broken[0],
        reason=None if broken is None else broken[1],
    )  # fmt: skip
    if broken is not None:
        await ctx.emit(c.ChainBroken(
            first_broken_seq=broken[0], reason=broken[1], records_checked=checked, detected_at=ctx.now,
            requested_by=ctx.actor.subject if ctx.actor is not None else ctx.broker_user,
        ))  # fmt: skip
    return Reply.success(result)
