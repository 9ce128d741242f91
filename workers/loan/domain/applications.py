"""Loan applications (banking-rules §5 "Application", "Underwriting", "Approval"), pure: which
status each action leads to, whether an application fits its product, who is eligible, who may
approve what, and underwriting's input and answer.

Decisions where §5 is silent:
- Eligibility is what the loan worker learnt from events (customer.*, account.*), never asked:
  the customer `active` with KYC `completed`, the linked account theirs, `active` and in the
  product's currency. Checked when the application is submitted (a draft may wait for KYC).
- Underwriting that refuses rejects the application at once, the reasons in its assessment; one
  that recommends, or leaves it to a person, puts it under review. Approval may follow either
  `submitted` or `under_review` (§5), so an officer may approve without the score.
- A co-applicant's monthly income, when given, counts with the applicant's: DTI and the income
  multiple are measured against the household's income (§5's table otherwise unchanged).
- Maker-checker: the approver holds `loans:approve` and is not who submitted it. A customer who
  submitted their own is no officer: any officer may approve it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from contracts.loan import (
    ApplicationStatus,
    AssessmentView,
    LoanApplicationView,
    LoanError,
    LoanProductView,
)
from workers.loan.domain import underwriting

S = ApplicationStatus
Action = Literal["submit", "underwrite", "approve", "reject", "cancel"]
APPROVE_PERMISSION = "loans:approve"
MONTHS_PER_YEAR = 12

# Each action: the statuses it may start from, and where it leads.
TRANSITIONS: dict[str, tuple[frozenset[ApplicationStatus], ApplicationStatus]] = {
    "submit": (frozenset({S.draft}), S.submitted),
    "underwrite": (frozenset({S.submitted}), S.under_review),
    "approve": (frozenset({S.submitted, S.under_review}), S.approved),
    "reject": (frozenset({S.submitted, S.under_review}), S.rejected),
    "cancel": (frozenset({S.draft, S.submitted, S.under_review, S.approved}), S.cancelled),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    code: LoanError
    message: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """What the loan worker learnt of a customer."""

    status: str
    kyc_status: str


@dataclass(frozen=True, slots=True)
class LinkedAccount:
    """What the loan worker learnt of an account."""

    customer_id: UUID
    currency: str
    status: str


def transition(status: ApplicationStatus, action: Action) -> ApplicationStatus | Refusal:
    allowed, to = TRANSITIONS[action]
    if status not in allowed:
        return Refusal(LoanError.invalid_transition, f"cannot {action} an application that is {status}")
    return to


def terms_refusal(product: LoanProductView, principal: int, months: int, currency: str) -> Refusal | None:
    """The application within its product's ranges (the product within its type's caps already)."""
    if currency != product.currency:
        return Refusal(LoanError.invalid_application, f"{product.code} lends in {product.currency}")
    if not product.min_principal <= principal <= product.max_principal:
        return Refusal(LoanError.invalid_application,
                       f"{product.code} lends {product.min_principal} to {product.max_principal} minor units")  # fmt: skip
    if not product.min_months <= months <= product.max_months:
        return Refusal(LoanError.invalid_application, f"{product.code} runs {product.min_months} to {product.max_months} months")
    return None


def eligibility_refusal(customer_id: UUID, currency: str, standing: Standing | None,
                        account: LinkedAccount | None) -> Refusal | None:  # fmt: skip
    if standing is None or standing.status != "active" or standing.kyc_status != "completed":
        return Refusal(LoanError.not_eligible, "the customer must be active with KYC completed")
    if account is None or account.customer_id != customer_id or account.currency != currency or account.status != "active":
        return Refusal(LoanError.not_eligible, f"the linked account must be the customer's own active {currency} account")
    return None


def approval_refusal(application: LoanApplicationView, approver: str, permissions: list[str], principal: int,
                     rate_bps: int, product: LoanProductView) -> Refusal | None:  # fmt: skip
    if APPROVE_PERMISSION not in permissions:
        return Refusal(LoanError.forbidden, f"approving needs the `{APPROVE_PERMISSION}` permission")
    if approver == application.submitted_by:
        return Refusal(LoanError.same_maker, "whoever submitted an application may not approve it")
    if principal > application.principal:
        return Refusal(LoanError.invalid_approval, f"at most the {application.principal} minor units asked for")
    if rate_bps > product.max_rate_bps:
        return Refusal(LoanError.invalid_approval, f"{product.code} lends at most at {product.max_rate_bps} bps")
    return None


def assessment_of(application: LoanApplicationView, product: LoanProductView) -> underwriting.Assessment:
    """§5's assessment of the application as it is now (its current collateral; the applicant's
    and co-applicant's incomes together); the recommended rate capped at this product's own
    maximum too (it may be below its type's cap)."""
    collateral = sum(item.value for item in application.collateral) or None
    income = application.monthly_income + (application.co_applicant_monthly_income or 0)
    assessed = underwriting.assess(underwriting.Application(
        loan_type=product.type, amount_minor=application.principal, months=application.months,
        monthly_income_minor=income, existing_emi_minor=application.existing_emi,
        credit_score=application.credit_score,
        employment_years=Decimal(application.employment_months) / MONTHS_PER_YEAR,
        collateral_value_minor=collateral,
    ))  # fmt: skip
    return replace(assessed, recommended_rate_bps=min(assessed.recommended_rate_bps, product.max_rate_bps))


def assessment_view(assessment: underwriting.Assessment) -> AssessmentView:
    return AssessmentView(
        assessment_emi=assessment.assessment_emi_minor, dti=str(assessment.dti),
        ltv=str(assessment.ltv) if assessment.ltv is not None else None, score=assessment.score, band=assessment.band,
        recommended_rate_bps=assessment.recommended_rate_bps, outcome=assessment.outcome,
        reasons=list(assessment.reasons),
    )  # fmt: skip
