"""Loan routes (banking-rules §5; issue 12). So far the calculator: an EMI and its whole schedule
for any method, with no state, for any signed-in caller (a customer weighing a loan included)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api_edge.auth import Principal, require
from api_edge.gateway import body_model, gateway_of
from contracts import loan as c

router = APIRouter(tags=["loans"])

CalculateBody = body_model(c.CalculateLoan, exclude=set(), name="CalculateLoanBody")


@router.post("/v1/loans/calculate")
async def calculate(
    body: CalculateBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require(None, "accounts"),
) -> Response:
    """The EMI, each instalment (due date, principal, interest, balance after) and the totals;
    `disbursed_on` omitted: the open business date. A read: no Idempotency-Key needed."""
    return await gateway_of(request).query(c.CalculateLoan, body.model_dump(), who)  # type: ignore[attr-defined]
