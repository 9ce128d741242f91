"""Audit routes: the trail and its hash chain, for staff holding `audit:read` (auditors, admins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.gateway import gateway_of, idempotency_key
from contracts import audit as c

router = APIRouter(tags=["audit"])


class VerifyBody(BaseModel):
    from_seq: int = Field(default=1, ge=1, description="first record to check")
    max_records: int = Field(default=100_000, ge=1, le=1_000_000, description="stop after this many records")


@router.get("/v1/audit/records")
async def list_records(
    request: Request,
    entity_id: str | None = Query(default=None, min_length=1, max_length=200),
    actor: str | None = Query(default=None, min_length=1, max_length=200),
    routing_key_prefix: str | None = Query(default=None, min_length=1, max_length=200),
    since: AwareDatetime | None = Query(default=None),
    until: AwareDatetime | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("audit:read"),
) -> Response:
    """Audit records, newest first."""
    data = {"entity_id": entity_id, "actor": actor, "routing_key_prefix": routing_key_prefix,
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

