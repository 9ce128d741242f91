"""`audit.get_report`: large-value, structuring, security-summary, actor-activity (the rules in
domain/reports.py). Read from the indexes the appends keep beside the chain (migration 0003);
every row names the chained record it came from (`record_seq`)."""

from __future__ import annotations

import json
import os
from typing import Any

from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_seq, encode_cursor
from contracts import audit as c
from contracts.common import Reply
from workers.audit import store
from workers.audit.domain import reports as rules

CONFIG = rules.ReportConfig(
    large_value_minor=int(os.environ.get("CBS_AUDIT_LARGE_VALUE_MINOR", "100000000")),
    structuring_band_bps=int(os.environ.get("CBS_AUDIT_STRUCTURING_BAND_BPS", "1000")),
    structuring_min_count=int(os.environ.get("CBS_AUDIT_STRUCTURING_MIN_COUNT", "3")),
)
MAX_SCAN = 200_000  # rows one report reads to compute its groups; past it the report says `truncated`

LARGE_VALUE_COLUMNS = ["record_seq", "payment_id", "business_date", "customer_id", "kind", "payer_account_id",
                       "payee_account_id", "amount", "currency", "occurred_at"]  # fmt: skip
STRUCTURING_COLUMNS = ["business_date", "customer_id", "currency", "count", "total", "payment_ids", "record_seqs"]
SECURITY_COLUMNS = ["group", "key", *rules.SECURITY_COLUMNS, "total"]
ACTIVITY_COLUMNS = ["record_seq", "recorded_at", "kind", "routing_key", "entity_type", "entity_id", "status",
                    "outcome", "outcome_code", "risk_score"]  # fmt: skip
NOT_OURS = Reply.refusal(c.AuditError.invalid_cursor, "this cursor is not one audit gave")


def _needs(what: str, kind: str) -> Reply:
    return Reply.refusal(c.AuditError.report_needs, f"the {kind} report needs {what}", {"kind": kind, "needs": what})


def _report(cmd: c.GetReport, columns: list[str], rows: list[dict[str, Any]], cursor: str | None,
            **parameters: Any) -> Reply:  # fmt: skip
    parameters = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in parameters.items() if v is not None}
    return Reply.success(c.Report(kind=cmd.kind, parameters=parameters, columns=columns, rows=rows, next_cursor=cursor))


def _page_of_list(items: list[dict[str, Any]], after: int | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    start = after or 0
    page = items[start:start + limit]
    return page, encode_cursor(start + limit) if start + limit < len(items) else None


async def get_report(ctx: Context, cmd: c.GetReport) -> Reply:
    after, refusal = cursor_or_refusal(cmd.cursor, decode_seq, NOT_OURS)
    if refusal:
        return refusal
    if cmd.kind in ("large-value", "structuring") and cmd.business_date is None:
        return _needs("business_date", cmd.kind)
    if cmd.kind == "security-summary" and (cmd.since is None or cmd.until is None):
        return _needs("since and until", cmd.kind)
    if cmd.kind == "actor-activity" and cmd.actor is None:
        return _needs("actor", cmd.kind)
    if cmd.kind == "large-value":
        return await _large_value(ctx, cmd, after)
    if cmd.kind == "structuring":
        return await _structuring(ctx, cmd, after)
    if cmd.kind == "security-summary":
        return await _security_summary(ctx, cmd, after)
    return await _actor_activity(ctx, cmd, after)


async def _large_value(ctx: Context, cmd: c.GetReport, after: int | None) -> Reply:
    found = await store.large_movements(ctx.conn, cmd.business_date, CONFIG.large_value_minor, after, cmd.limit + 1)
    rows = [store.movement_view(r) for r in found[:cmd.limit]]
    cursor = encode_cursor(found[cmd.limit - 1]["seq"]) if len(found) > cmd.limit else None
    return _report(cmd, LARGE_VALUE_COLUMNS, rows, cursor, business_date=cmd.business_date,
                   threshold_minor=CONFIG.large_value_minor)  # fmt: skip


async def _structuring(ctx: Context, cmd: c.GetReport, after: int | None) -> Reply:
    found = await store.movements_between(ctx.conn, cmd.business_date, CONFIG.structuring_floor,
                                          CONFIG.large_value_minor, MAX_SCAN + 1)  # fmt: skip
    movements = [rules.Movement(
        payment_id=str(r["payment_id"]), seq=r["seq"], business_date=r["business_date"],
        customer_id=str(r["customer_id"]) if r["customer_id"] else None, kind=r["kind"], amount=r["amount"],
        currency=r["currency"], occurred_at=r["occurred_at"],
    ) for r in found[:MAX_SCAN]]  # fmt: skip
    page, cursor = _page_of_list(rules.structuring_cases(movements, CONFIG), after, cmd.limit)
    return _report(cmd, STRUCTURING_COLUMNS, page, cursor, business_date=cmd.business_date,
                   threshold_minor=CONFIG.large_value_minor, just_below_from_minor=CONFIG.structuring_floor,
                   band_bps=CONFIG.structuring_band_bps, several=CONFIG.structuring_min_count,
                   truncated=True if len(found) > MAX_SCAN else None)  # fmt: skip


async def _security_summary(ctx: Context, cmd: c.GetReport, after: int | None) -> Reply:
    found = await store.security_records(ctx.conn, cmd.since, cmd.until, MAX_SCAN + 1)
    facts = []
    for r in found[:MAX_SCAN]:
        payload = json.loads(r["payload"]) if r["payload"] is not None else None
        actor = rules.actor_in(r["routing_key"], payload, r["command_actor"] or r["actor"],
                               r["command_broker_user"] or r["broker_user"])  # fmt: skip
        facts.append(rules.SecurityFact(r["recorded_at"], r["routing_key"], r["kind"], r["result"], actor))
    summary = rules.security_summary(facts)
    rows = [{"group": "actor", "key": row.pop("actor"), **row} for row in summary["by_actor"]]
    rows += [{"group": "hour", "key": row.pop("hour"), **row} for row in summary["by_hour"]]
    page, cursor = _page_of_list(rows, after, cmd.limit)
    return _report(cmd, SECURITY_COLUMNS, page, cursor, since=cmd.since, until=cmd.until,
                   truncated=True if len(found) > MAX_SCAN else None)  # fmt: skip


async def _actor_activity(ctx: Context, cmd: c.GetReport, before: int | None) -> Reply:
    # The actor the edge authenticated, or else a service's or partner's own broker user.
    found = await store.list_records(ctx.conn, entity_id=None, actor=None, routing_key_prefix=None, since=cmd.since,
                                     until=cmd.until, before_seq=before, limit=cmd.limit + 1,
                                     kinds=("command", "event"), actor_or_user=cmd.actor)  # fmt: skip
    rows = [{
        "record_seq": r["seq"], "recorded_at": r["recorded_at"].isoformat(), "kind": r["kind"],
        "routing_key": r["routing_key"], "entity_type": r["entity_type"], "entity_id": r["entity_id"],
        "status": r["outcome_status"] or r["status"], "outcome": r["outcome_result"], "outcome_code": r["outcome_code"],
        "risk_score": r["risk_score"],
    } for r in found[:cmd.limit]]  # fmt: skip
    cursor = encode_cursor(found[cmd.limit - 1]["seq"]) if len(found) > cmd.limit else None
    return _report(cmd, ACTIVITY_COLUMNS, rows, cursor, actor=cmd.actor, since=cmd.since, until=cmd.until)
