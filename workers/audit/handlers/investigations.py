"""Investigations of the security and compliance follow-ups audit raises: each opens `open` when
its follow-up is raised (records.append); staff assign, note and close it through audit's
commands, which are themselves recorded in the chain with their outcomes, and each change is
told as `audit.investigation_changed`. A closed investigation changes no more."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_cursor, encode_cursor
from contracts import audit as c
from contracts.common import Reply

from workers.audit import store

NOT_OURS = Reply.refusal(c.AuditError.invalid_cursor, "this cursor is not one audit gave")


def view(row: asyncpg.Record) -> c.InvestigationView:
    notes = row["notes"]
    if isinstance(notes, str):
        notes = json.loads(notes)
    return c.InvestigationView(**{**dict(row), "notes": notes})


def _decode(cursor: str) -> tuple[datetime, int] | None:
    values = decode_cursor(cursor, 2)
    try:
        return (datetime.fromisoformat(values[0]), int(values[1])) if values is not None else None
    except ValueError:
        return None


async def list_investigations(ctx: Context, cmd: c.ListInvestigations) -> Reply:
    before, refusal = cursor_or_refusal(cmd.cursor, _decode, NOT_OURS)
    if refusal:
        return refusal
    rows = await store.list_investigations(ctx.conn, status=cmd.status, kind=cmd.kind, before=before, limit=cmd.limit + 1)
    page = rows[:cmd.limit]
    cursor = encode_cursor(page[-1]["opened_at"].isoformat(), page[-1]["record_seq"]) if len(rows) > cmd.limit else None
    return Reply.success(c.InvestigationPage(items=[view(r) for r in page], next_cursor=cursor))


def _who(ctx: Context, cmd: Any) -> str:
    return cmd.actor or (ctx.actor.subject if ctx.actor is not None else ctx.broker_user or "unknown")


async def _change(ctx: Context, cmd: Any, change: str, **what: Any) -> Reply:
    row = await store.investigation_for_update(ctx.conn, cmd.record_seq, cmd.kind)
    if row is None:
        return Reply.refusal(c.AuditError.investigation_not_found, f"no {cmd.kind} investigation of record {cmd.record_seq}")
    if row["status"] == "closed":
        return Reply.refusal(c.AuditError.investigation_closed, "this investigation is closed")
    by = _who(ctx, cmd)
    status = {"assigned": "assigned", "closed": "closed"}.get(change, row["status"])
    assignee = what.get("assignee", row["assignee"])
    note = {"at": ctx.now.isoformat(), "by": by, "text": what["text"]} if change == "noted" else None
    updated = await store.update_investigation(ctx.conn, cmd.record_seq, cmd.kind, status=status, assignee=assignee,
                                               note=note, resolution=what.get("resolution"), now=ctx.now)  # fmt: skip
    await ctx.emit(c.InvestigationChanged(record_seq=cmd.record_seq, kind=cmd.kind, change=change, status=status,
                                          assignee=assignee, by=by, occurred_at=ctx.now))  # fmt: skip
    return Reply.success(view(updated))


async def assign(ctx: Context, cmd: c.AssignInvestigation) -> Reply:
    return await _change(ctx, cmd, "assigned", assignee=cmd.assignee)


async def note(ctx: Context, cmd: c.NoteInvestigation) -> Reply:
    return await _change(ctx, cmd, "noted", text=cmd.text)


async def close(ctx: Context, cmd: c.CloseInvestigation) -> Reply:
    return await _change(ctx, cmd, "closed", resolution=cmd.resolution)
