"""Loan routes (banking-rules §5; issue 12). So far the calculator (an EMI and its whole schedule
for any method, no state) and loan products: read by any signed-in caller (a customer weighing a
loan included), defined by officers (`products:manage`). Applications and their review: a customer
makes, submits, withdraws and adds documents to their own (`loans:apply`), and sets its collateral
while a draft; officers underwrite, verify documents, move the review's stages (`loans:review`) and
approve (`loans:approve`)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.gateway import body_model, gateway_of, idempotency_key
from contracts import loan as c
from contracts.common import Command

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


# --- applications ----------------------------------------------------------------------------------

CreateApplicationBody = body_model(c.CreateLoanApplication, exclude={"actor"}, name="CreateLoanApplicationBody")


class DecisionBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the decision")


class ApprovalBody(BaseModel):
    principal: int = Field(ge=c.MIN_PRINCIPAL, le=c.MAX_PRINCIPAL, description="approved, at most what was asked, minor units")
    rate_bps: int = Field(ge=0, le=c.MAX_RATE_BPS, description="at most the product's max rate")


@router.post("/v1/loan-applications", status_code=201)
async def create_application(
    body: CreateApplicationBody,  # type: ignore[valid-type]
    request: Request,
    who: Principal = require("loans:apply", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:
    """A draft application under the product's newest version; a customer makes only their own."""
    data = {**body.model_dump(), "actor": who.subject}  # type: ignore[attr-defined]
    return await gateway_of(request).change(c.CreateLoanApplication, data, who, key, created=True)


@router.get("/v1/loan-applications/{application_id}")
async def get_application(application_id: UUID, request: Request, who: Principal = require("loans:apply", "accounts")) -> Response:
    return await gateway_of(request).query(c.GetLoanApplication, {"application_id": application_id}, who)


async def _act(request: Request, contract: type[Command], application_id: UUID, who: Principal, key: str | None,
               **fields: object) -> Response:  # fmt: skip
    data = {"application_id": application_id, "actor": who.subject, **fields}
    return await gateway_of(request).change(contract, data, who, key)


@router.post("/v1/loan-applications/{application_id}/submit")
async def submit_application(
    application_id: UUID, request: Request, who: Principal = require("loans:apply", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """draft → submitted once the customer and the linked account are eligible (learnt from their events)."""
    return await _act(request, c.SubmitLoanApplication, application_id, who, key)


@router.post("/v1/loan-applications/{application_id}/underwrite")
async def underwrite_application(
    application_id: UUID, request: Request, who: Principal = require("loans:review", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """§5's assessment: under review, or rejected with the reasons."""
    return await _act(request, c.UnderwriteLoanApplication, application_id, who, key)


@router.post("/v1/loan-applications/{application_id}/approve")
async def approve_application(
    application_id: UUID, body: ApprovalBody, request: Request, who: Principal = require("loans:approve", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """Maker-checker: an officer who did not submit it; the schedule is in the answer."""
    return await _act(request, c.ApproveLoanApplication, application_id, who, key, principal=body.principal,
                      rate_bps=body.rate_bps, permissions=sorted(who.permissions))  # fmt: skip


@router.post("/v1/loan-applications/{application_id}/reject")
async def reject_application(
    application_id: UUID, body: DecisionBody, request: Request, who: Principal = require("loans:review", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    return await _act(request, c.RejectLoanApplication, application_id, who, key, reason=body.reason)


@router.post("/v1/loan-applications/{application_id}/cancel")
async def cancel_application(
    application_id: UUID, body: DecisionBody, request: Request, who: Principal = require("loans:apply", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """Withdrawn by the customer, or cancelled by staff, before it is disbursed."""
    return await _act(request, c.CancelLoanApplication, application_id, who, key, reason=body.reason)


# --- an application's review: documents, collateral, stages -------------------------------------------

DocumentBody = body_model(c.AddApplicationDocument, exclude={"application_id", "actor"}, name="AddApplicationDocumentBody")


class VerifyDocumentBody(BaseModel):
    decision: c.DocumentDecision = Field(description="verified, or rejected with a reason")
    reason: str | None = Field(default=None, min_length=1, max_length=500, description="why it is rejected: required then")


class CollateralBody(BaseModel):
    collateral: list[c.Collateral] = Field(max_length=c.MAX_COLLATERAL, description="the whole list; empty: none")


class StageBody(BaseModel):
    stage: c.ReviewStage = Field(description="the stage it moves to: the one after where it is")


@router.post("/v1/loan-applications/{application_id}/documents")
async def add_document(
    application_id: UUID, body: DocumentBody, request: Request,  # type: ignore[valid-type]
    who: Principal = require("loans:apply", "accounts"), key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """A document (kind, name, SHA-256; the file itself is in the bank's document store) of a
    draft, submitted or under-review application; a customer adds to their own only. The same
    document_id with the same body answers again; with another body it is refused."""
    return await _act(request, c.AddApplicationDocument, application_id, who, key, **body.model_dump())  # type: ignore[attr-defined]


@router.post("/v1/loan-applications/{application_id}/documents/{document_id}/verify")
async def verify_document(
    application_id: UUID, document_id: UUID, body: VerifyDocumentBody, request: Request,
    who: Principal = require("loans:review", "accounts"), key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """An officer verifies a document, or rejects it with a reason; never one they added."""
    return await _act(request, c.VerifyApplicationDocument, application_id, who, key, document_id=document_id,
                      decision=body.decision, reason=body.reason, permissions=sorted(who.permissions))  # fmt: skip


@router.put("/v1/loan-applications/{application_id}/collateral")
async def set_collateral(
    application_id: UUID, body: CollateralBody, request: Request, who: Principal = require("loans:apply", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """The application's whole collateral list: the customer's own while it is a draft; once
    submitted, an officer's (`loans:review`). Underwriting computes the LTV from it when it runs."""
    return await _act(request, c.SetApplicationCollateral, application_id, who, key, collateral=body.collateral,
                      permissions=sorted(who.permissions))  # fmt: skip


@router.post("/v1/loan-applications/{application_id}/stage")
async def advance_stage(
    application_id: UUID, body: StageBody, request: Request, who: Principal = require("loans:review", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """Under review: on to the next stage, named (documents → credit_check → valuation → legal →
    committee → agreement); leaving `documents` needs every document reviewed and the required
    kinds verified, leaving `valuation` a secured product's collateral. Approval does not wait for it."""
    return await _act(request, c.AdvanceApplicationStage, application_id, who, key, stage=body.stage,
                      permissions=sorted(who.permissions))  # fmt: skip


# --- loans -------------------------------------------------------------------------------------------


class DisburseBody(BaseModel):
    loan_id: UUID = Field(description="chosen by the caller: the loan's id (a retry answers the same loan)")
    payout: c.LoanPayout | None = Field(default=None, description="onwards by NEFT, RTGS or IMPS from the linked account")


@router.post("/v1/loan-applications/{application_id}/disburse")
async def disburse(
    application_id: UUID, body: DisburseBody, request: Request, who: Principal = require("loans:review", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """The approved application's loan, in one tranche through the ledger, net of its processing fee."""
    return await _act(request, c.DisburseLoan, application_id, who, key, loan_id=body.loan_id,
                      payout=body.payout.model_dump(mode="json") if body.payout else None)  # fmt: skip


@router.get("/v1/loans/{loan_id}")
async def get_loan(loan_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    """A loan with its schedule; a customer reads only their own."""
    return await gateway_of(request).query(c.GetLoan, {"loan_id": loan_id}, who)


class PayBody(BaseModel):
    payment_id: UUID = Field(description="chosen by the caller: a retry is paid once")
    amount: int = Field(gt=0, description="minor units: at least what the oldest instalment due still owes, at most all that is due")


@router.get("/v1/loans/{loan_id}/schedule")
async def get_schedule(loan_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    """The current schedule, and every instalment with what was paid of it; a customer reads only their own."""
    return await gateway_of(request).query(c.GetLoanSchedule, {"loan_id": loan_id}, who)


@router.get("/v1/loans/{loan_id}/repayments")
async def list_repayments(
    loan_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts"),
    limit: int = Query(default=100, ge=1, le=500),
) -> Response:  # fmt: skip
    """What the loan received, newest first: auto-debits, payments by hand, a foreclosure, recoveries."""
    return await gateway_of(request).query(c.ListLoanRepayments, {"loan_id": loan_id, "limit": limit}, who)


@router.post("/v1/loans/{loan_id}/pay")
async def pay(
    loan_id: UUID, body: PayBody, request: Request, who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """A payment of what is due from the loan's linked account, oldest instalment first, interest
    before principal; a customer pays only their own loan."""
    data = {"loan_id": loan_id, "payment_id": body.payment_id, "amount": body.amount, "actor": who.subject}
    return await gateway_of(request).change(c.PayLoan, data, who, key)


@router.get("/v1/customers/{customer_id}/loans")
async def list_customer_loans(
    customer_id: UUID, request: Request, limit: int = Query(default=50, ge=1, le=200),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:  # fmt: skip
    """A customer's loans, newest first; a customer sees only their own."""
    return await gateway_of(request).query(c.ListCustomerLoans, {"customer_id": customer_id, "limit": limit}, who)


@router.get("/v1/loans/{loan_id}/foreclosure-quote")
async def foreclosure_quote(loan_id: UUID, request: Request, who: Principal = require("accounts:read", "accounts")) -> Response:
    """What pays the whole loan off today (§5: full prepayment only), each part shown."""
    return await gateway_of(request).query(c.GetForeclosureQuote, {"loan_id": loan_id}, who)


@router.post("/v1/loans/{loan_id}/foreclose")
async def foreclose(
    loan_id: UUID, body: PayBody, request: Request, who: Principal = require("payments:create", "payments"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """Exactly today's quote from the linked account; the loan and its ledger account closed."""
    data = {"loan_id": loan_id, "payment_id": body.payment_id, "amount": body.amount, "actor": who.subject}
    return await gateway_of(request).change(c.ForecloseLoan, data, who, key)


@router.post("/v1/loans/{loan_id}/write-off")
async def write_off(
    loan_id: UUID, body: DecisionBody, request: Request, who: Principal = require("loans:write_off", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """A defaulted loan given up: its principal a loan loss, its accrued interest in suspense
    written back; what it owed stays a claim that payments (recoveries) still pay down."""
    data = {"loan_id": loan_id, "reason": body.reason, "actor": who.subject, "permissions": sorted(who.permissions)}
    return await gateway_of(request).change(c.WriteOffLoan, data, who, key)


class RestructureBody(BaseModel):
    restructure_id: UUID = Field(description="chosen by the caller: a retry answers the loan")
    months: int = Field(ge=1, le=c.MAX_MONTHS)
    rate_bps: int = Field(ge=0, le=c.MAX_RATE_BPS, description="at most the product's max rate")
    reason: str = Field(min_length=1, max_length=500)


@router.post("/v1/loans/{loan_id}/restructure")
async def request_restructure(
    loan_id: UUID, body: RestructureBody, request: Request, who: Principal = require("loans:review", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """New terms for what an active or overdue loan owes, its interest capitalised; another officer approves."""
    data = {"loan_id": loan_id, **body.model_dump(), "actor": who.subject}
    return await gateway_of(request).change(c.RequestLoanRestructure, data, who, key)


@router.post("/v1/loans/{loan_id}/restructure/{restructure_id}/approve")
async def approve_restructure(
    loan_id: UUID, restructure_id: UUID, request: Request, who: Principal = require("loans:approve", "accounts"),
    key: str | None = Depends(idempotency_key),
) -> Response:  # fmt: skip
    """Maker-checker: an officer who did not ask for it; the new schedule is in the answer."""
    data = {"loan_id": loan_id, "restructure_id": restructure_id, "actor": who.subject, "permissions": sorted(who.permissions)}
    return await gateway_of(request).change(c.ApproveLoanRestructure, data, who, key)
