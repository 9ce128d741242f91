"""Customer routes: registration, reads, search, profile changes, KYC and the lifecycle."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.gateway import body_model, gateway_of, idempotency_key
from contracts import customer as c

router = APIRouter(tags=["customers"])

RegisterBody = body_model(c.RegisterCustomer, exclude=set(), name="RegisterCustomerBody")
UpdateBody = body_model(c.UpdateCustomer, exclude={"customer_id"}, name="UpdateCustomerBody")
DocumentBody = body_model(c.AddKycDocument, exclude={"customer_id"}, name="AddKycDocumentBody")


class VerifyBody(BaseModel):
    document_id: UUID = Field(description="the pending document the reviewer accepts")


class RejectBody(BaseModel):
    document_id: UUID = Field(description="the pending document the reviewer rejects")
    reason: str = Field(min_length=1, max_length=1000, description="why, shown to the customer")


class LifecycleBody(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="why, kept on the customer")


@router.post("/v1/customers", status_code=201)
async def register_customer(
    body: RegisterBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("customers:write"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = body.model_dump()  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.RegisterCustomer, data, who, key, created=True)


@router.get("/v1/customers/{customer_id}")
async def get_customer(customer_id: UUID, request: Request, who: Principal = require("customers:read")) -> Response:
    return await gateway_of(request).query(c.GetCustomer, {"customer_id": customer_id}, who)


@router.get("/v1/customers")
async def search_customers(
    request: Request,
    query: str = Query(min_length=1, max_length=200, description="name, number, email, phone or national id"),
    limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=500),
    who: Principal = require("customers:search"),
) -> Response:
    return await gateway_of(request).query(c.SearchCustomers, {"query": query, "limit": limit, "cursor": cursor}, who)


@router.patch("/v1/customers/{customer_id}")
async def update_customer(
    customer_id: UUID,
    body: UpdateBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("customers:write"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    # Only the fields the client sent are changes; absent ones stay as they are.
    data = {**body.model_dump(exclude_unset=True), "customer_id": customer_id}  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.UpdateCustomer, data, who, key, require_key=False)


@router.post("/v1/customers/{customer_id}/kyc/documents", status_code=201)
async def add_kyc_document(
    customer_id: UUID,
    body: DocumentBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("customers:write"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = {**body.model_dump(), "customer_id": customer_id}  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.AddKycDocument, data, who, key, created=True)


@router.post("/v1/customers/{customer_id}/kyc/verify")
async def verify_kyc_document(
    customer_id: UUID,
    body: VerifyBody,
    request: Request,
    who: Principal = require("kyc:verify"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = {"customer_id": customer_id, "document_id": body.document_id, "reviewer": who.subject}
    return await gateway_of(request).change(c.VerifyKycDocument, data, who, key)


@router.post("/v1/customers/{customer_id}/kyc/reject")
async def reject_kyc_document(
    customer_id: UUID,
    body: RejectBody,
    request: Request,
    who: Principal = require("kyc:verify"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    data = {"customer_id": customer_id, "document_id": body.document_id, "reviewer": who.subject,
            "reason": body.reason}  # fmt: skip
    return await gateway_of(request).change(c.RejectKycDocument, data, who, key)


def _lifecycle(command_type: type[c._StatusCommand], verb: str) -> None:
    @router.post(f"/v1/customers/{{customer_id}}/{verb}", name=f"{verb}_customer")
    async def change(
        customer_id: UUID,
        body: LifecycleBody,
        request: Request,
        who: Principal = require("customers:manage"),
        key: str | None = Depends(idempotency_key),
    ) -> Response:
        data = {"customer_id": customer_id, "actor": who.subject, "reason": body.reason}
        return await gateway_of(request).change(command_type, data, who, key)


_lifecycle(c.SuspendCustomer, "suspend")
_lifecycle(c.ReactivateCustomer, "reactivate")
_lifecycle(c.CloseCustomer, "close")
