"""Loan routes (banking-rules §5; issue 12). So far the calculator (an EMI and its whole schedule
for any method, no state) and loan products: read by any signed-in caller (a customer weighing a
loan included), defined by officers (`products:manage`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api_edge.auth import Principal, require
from api_edge.gateway import body_model, gateway_of, idempotency_key
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


@router.get("/v1/loan-products")
async def list_products(request: Request, who: Principal = require(None, "accounts")) -> Response:
    """Each loan product's newest version: what applications are made under."""
    return await gateway_of(request).query(c.ListLoanProducts, {}, who)


@router.get("/v1/loan-products/{code}")
async def get_product(
    code: str, request: Request, version: int | None = Query(default=None, ge=1),
    who: Principal = require(None, "accounts"),
) -> Response:  # fmt: skip
    return await gateway_of(request).query(c.GetLoanProduct, {"code": code, "version": version}, who)


DefineProductBody = body_model(c.DefineLoanProduct, exclude={"actor"}, name="DefineLoanProductBody")


@router.post("/v1/loan-products", status_code=201)
async def define_product(
    body: DefineProductBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("products:manage", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """A loan product or its next version, within its type's caps (banking-rules §5)."""
    data = {**body.model_dump(), "actor": who.subject}  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.DefineLoanProduct, data, who, key, created=True)
