"""Audit routes: the trail and its hash chain, reports (JSON or CSV) for staff holding
`audit:read` (auditors, admins); the investigations of security and compliance follow-ups for
`audit:investigate`."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api_edge.auth import Principal, require
from api_edge.gateway import build, gateway_of, idempotency_key, reply_response
from contracts import audit as c
from contracts.common import Reply

router = APIRouter(tags=["audit"])


class VerifyBody(BaseModel):
    from_seq: int = Field(default=1, ge=1, le=c.MAX_SEQ, description="first record to check")
    max_records: int = Field(default=100_000, ge=1, le=1_000_000, description="stop after this many records")


@router.get("/v1/audit/records")
async def list_records(
    request: Request,
    entity_id: str | None = Query(default=None, min_length=1, max_length=200),
    account_id: UUID | None = Query(default=None, description="the account's whole trail: payments and ledger "
                                    "transfers that moved its money included"),
    actor: str | None = Query(default=None, min_length=1, max_length=200),
    routing_key_prefix: str | None = Query(default=None, min_length=1, max_length=200),
    since: AwareDatetime | None = Query(default=None),
    until: AwareDatetime | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("audit:read"),
) -> Response:
    """Audit records, newest first."""
    data = {"entity_id": entity_id, "account_id": account_id, "actor": actor, "routing_key_prefix": routing_key_prefix,
            "since": since, "until": until, "limit": limit, "cursor": cursor}  # fmt: skip
    return await gateway_of(request).query(c.ListRecords, data, who)


@router.post("/v1/audit/verify")
async def verify_chain(
    request: Request,
    body: VerifyBody | None = None,
    who: Principal = require("audit:read"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """Recompute the hash chain; a break is answered and raises `audit.chain_broken`."""
    body = body or VerifyBody()
    data = {"from_seq": body.from_seq, "max_records": body.max_records}
    return await gateway_of(request).change(c.VerifyChain, data, who, key, require_key=False)



Format = Literal["json", "csv"]
_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell (OWASP CSV injection)


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(_FORMULA_FIRST):
        return "'" + value
    return "" if value is None else value


def _report_csv(reply: Reply) -> Response:
    if not reply.ok:
        return reply_response(reply)
    report = c.Report.model_validate(reply.result)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow([_cell(row.get(column)) for column in report.columns])
    headers = {"Content-Disposition": f'attachment; filename="audit-{report.kind}.csv"'}
    if report.next_cursor:
        headers["X-Next-Cursor"] = report.next_cursor
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/v1/audit/reports/{kind}")
async def get_report(
    request: Request,
    kind: c.ReportKind = Path(description="large-value, structuring, security-summary or actor-activity"),
    business_date: date | None = Query(default=None, description="large-value, structuring: the business date"),
    since: AwareDatetime | None = Query(default=None, description="security-summary, actor-activity: from (UTC)"),
    until: AwareDatetime | None = Query(default=None, description="until, exclusive; a period is at most 31 days"),
    actor: str | None = Query(default=None, min_length=1, max_length=200, description="actor-activity: whose"),
    limit: int = Query(default=500, ge=1, le=5_000),
    cursor: str | None = Query(default=None, max_length=500),
    format: Format | None = Query(default=None, description="json (default) or csv; else the Accept header decides"),
    who: Principal = require("audit:read"),
) -> Response:
    """One of audit's reports, a page at a time (`next_cursor`, or `X-Next-Cursor` for CSV)."""
    data = {"kind": kind, "business_date": business_date, "since": since, "until": until, "actor": actor,
            "limit": limit, "cursor": cursor}  # fmt: skip
    accept = request.headers.get("accept", "").split(",")[0].strip()
    if (format or ("csv" if accept == "text/csv" else "json")) == "csv":
        command = build(c.GetReport, data)
        if isinstance(command, Response):
            return command
        return await gateway_of(request).answer(command, who, _report_csv)
    return await gateway_of(request).query(c.GetReport, data, who)


@router.get("/v1/audit/investigations")
async def list_investigations(
    request: Request,
    status: Literal["open", "assigned", "closed"] | None = Query(default=None),
    kind: Literal["security", "compliance"] | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("audit:read"),
) -> Response:
    """Investigations of the security and compliance follow-ups audit raised, newest first."""
    data = {"status": status, "kind": kind, "limit": limit, "cursor": cursor}
    return await gateway_of(request).query(c.ListInvestigations, data, who)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str = Field(min_length=1, max_length=200, description="the investigator")


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4_000)


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: str = Field(min_length=1, max_length=4_000)


Kind = Literal["security", "compliance"]
_SEQ = Path(ge=1, le=c.MAX_SEQ, description="the audit record that raised the follow-up")


@router.post("/v1/audit/investigations/{kind}/{record_seq}/assign")
async def assign_investigation(request: Request, body: AssignBody, kind: Kind, record_seq: int = _SEQ,
                               who: Principal = require("audit:investigate"),
                               key: str | None = Depends(idempotency_key)) -> Response:  # fmt: skip
    """Give the investigation to an investigator (recorded in the chain, like every change)."""
    data = {"record_seq": record_seq, "kind": kind, "assignee": body.assignee}
    return await gateway_of(request).change(c.AssignInvestigation, data, who, key)


@router.post("/v1/audit/investigations/{kind}/{record_seq}/notes")
async def note_investigation(request: Request, body: NoteBody, kind: Kind, record_seq: int = _SEQ,
                             who: Principal = require("audit:investigate"),
                             key: str | None = Depends(idempotency_key)) -> Response:  # fmt: skip
    """Add a note to the investigation."""
    data = {"record_seq": record_seq, "kind": kind, "text": body.text}
    return await gateway_of(request).change(c.NoteInvestigation, data, who, key)


@router.post("/v1/audit/investigations/{kind}/{record_seq}/close")
async def close_investigation(request: Request, body: CloseBody, kind: Kind, record_seq: int = _SEQ,
                              who: Principal = require("audit:investigate"),
                              key: str | None = Depends(idempotency_key)) -> Response:  # fmt: skip
    """Close the investigation with its resolution; it changes no more."""
    data = {"record_seq": record_seq, "kind": kind, "resolution": body.resolution}
    return await gateway_of(request).change(c.CloseInvestigation, data, who, key)
