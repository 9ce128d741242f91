"""Messages of the loan worker (banking-rules §5; issue 12).

Money is integer minor units; rates are basis points a year (12% = 1200, 12.5% = 1250). What a
schedule is and how it is rounded (half-up to the minor unit, the last instalment taking the
remainders) is written in workers/loan/domain/schedule.py.

So far: the schedule calculator (`loan.calculate`: an EMI and its whole schedule for any method,
no state) and loan products as data (an officer defines and versions them within §5's caps), on
which applications and loans stand. An application's review: its documents (kind, name and digest,
each verified or rejected by an officer), its collateral (replaced as a whole), a co-applicant,
and the stages of `under_review` (§5's decision), which record progress but do not gate approval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from contracts import day, payment
from contracts.common import MAX_AMOUNT, Command, Contract, Event, currency_field

# Every application: 1,000.00 ≤ amount ≤ 10,000,000.00, 1 to 360 months (§5, at exponent 2).
MIN_PRINCIPAL = 100_000
MAX_PRINCIPAL = 1_000_000_000
MAX_MONTHS = 360
MAX_RATE_BPS = 5_000  # 50% a year: above every product's cap, so a typing error is refused, not scheduled
MAX_FEE_BPS = 1_000  # a processing fee or prepayment charge above 10% is a typing error
MAX_GRACE_DAYS = 30
PRODUCT_CODE_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
ASSESSMENT_RATE_BPS, ASSESSMENT_MONTHS = 1_200, 60  # underwriting's assessment EMI: EMI(amount, 12%, 60 months)


class InterestMethod(StrEnum):
    declining = "declining"  # interest on the balance outstanding each month
    flat = "flat"  # interest on the whole principal for the whole term, spread evenly


class Amortization(StrEnum):
    equal_instalments = "equal_instalments"  # one EMI a month (the last takes the remainders)
    equal_principal = "equal_principal"  # the same principal a month, interest on the balance on top


class LoanType(StrEnum):
    personal = "personal"
    home = "home"
    auto = "auto"
    education = "education"
    business = "business"
    gold = "gold"


@dataclass(frozen=True, slots=True)
class ProductCap:
    max_rate_bps: int
    max_principal: int  # minor units at exponent 2
    max_months: int
    secured: bool


# §5's caps; gold sets its own (decision: as a secured personal loan).
PRODUCT_CAPS: dict[LoanType, ProductCap] = {
    LoanType.personal: ProductCap(2_500, 10_000_000, 60, secured=False),
    LoanType.home: ProductCap(1_200, 1_000_000_000, 360, secured=True),
    LoanType.auto: ProductCap(1_500, 50_000_000, 84, secured=True),
    LoanType.education: ProductCap(800, 50_000_000, 180, secured=False),
    LoanType.business: ProductCap(2_000, 500_000_000, 120, secured=False),
    LoanType.gold: ProductCap(2_000, 10_000_000, 36, secured=True),
}


class Band(StrEnum):
    """Underwriting's risk band of a score (§5: ≥ 60 very_high, ≥ 40 high, ≥ 20 medium, else low)."""

    low = "low"
    medium = "medium"
    high = "high"
    very_high = "very_high"


class Outcome(StrEnum):
    recommend = "recommend"  # low or medium: recommend approval
    manual_review = "manual_review"  # high or very_high
    refused = "refused"


class Reason(StrEnum):
    """Why underwriting refuses, in §5's order."""

    score_above_limit = "score_above_limit"
    credit_score_below_minimum = "credit_score_below_minimum"
    dti_above_limit = "dti_above_limit"
    amount_above_cap = "amount_above_cap"
    months_above_cap = "months_above_cap"
    collateral_missing = "collateral_missing"  # decision: a secured type applied for without collateral
    collateral_below_80_percent = "collateral_below_80_percent"


class ApplicationStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    under_review = "under_review"  # underwritten: recommended or left for a person's review
    approved = "approved"
    rejected = "rejected"
    cancelled = "cancelled"
    disbursed = "disbursed"  # its loan exists, the money moved


class InstalmentStatus(StrEnum):
    pending = "pending"  # not due yet, or due and not yet asked
    paid = "paid"
    partially_paid = "partially_paid"  # the auto-debit found less than was due
    foreclosed = "foreclosed"  # settled by the loan's foreclosure (its principal paid, its future interest not owed)
    written_off = "written_off"  # given up with its loan: what it owed is a claim recoveries pay down
    restructured = "restructured"  # closed by a restructuring: what it owed moved into the new schedule


class LoanStatus(StrEnum):
    disbursing = "disbursing"  # the ledger is asked
    refused = "refused"  # the ledger refused the disbursement (the application stays approved)
    active = "active"
    overdue = "overdue"  # an instalment still owes something after its due date
    defaulted = "defaulted"  # NPA: more than 90 days past due; active again once every arrear is paid
    closing = "closing"  # foreclosed: its ledger account is being closed
    closed = "closed"  # nothing owed; its ledger account closed
    writing_off = "writing_off"  # defaulted, its write-off with the ledger
    restructuring = "restructuring"  # its approved restructuring with the ledger (interest capitalised)
    written_off = "written_off"  # terminal: its principal a loan loss, its ledger account closed; recoveries still post


class Bucket(StrEnum):
    """Delinquency by days past due (§5)."""

    current = "current"
    dpd_1_30 = "1-30"
    dpd_31_60 = "31-60"
    dpd_61_90 = "61-90"
    npa = "91+"


class CollateralType(StrEnum):
    property = "property"
    vehicle = "vehicle"
    gold = "gold"
    fixed_deposit = "fixed_deposit"
    securities = "securities"
    business_assets = "business_assets"


class ReviewStage(StrEnum):
    """Where the review of an application `under_review` stands (banking-rules §5's decision), in
    order: it moves forward one stage at a time, never back, never skipping."""

    documents = "documents"  # its documents checked (each verified or rejected; the required kinds verified)
    credit_check = "credit_check"
    valuation = "valuation"  # the collateral valued (a secured product has some)
    legal = "legal"
    committee = "committee"
    agreement = "agreement"


class DocumentKind(StrEnum):
    identity = "identity"
    address_proof = "address_proof"
    income_proof = "income_proof"
    bank_statement = "bank_statement"
    property_papers = "property_papers"
    vehicle_papers = "vehicle_papers"
    valuation_report = "valuation_report"
    other = "other"


class DocumentStatus(StrEnum):
    pending = "pending"  # added, not yet looked at by an officer
    verified = "verified"
    rejected = "rejected"  # with the officer's reason: it counts for nothing (add another)


class DocumentDecision(StrEnum):
    verified = "verified"
    rejected = "rejected"


class LoanError(StrEnum):
    """Stable refusal codes of the loan worker (the reply's `error.code`)."""

    invalid_terms = "invalid_terms"  # a schedule that cannot be drawn (the message says why)
    invalid_product = "invalid_product"  # terms beyond §5's caps for the type, or a type change (the message says which)
    loan_product_not_found = "loan_product_not_found"
    application_not_found = "application_not_found"
    application_exists = "application_exists"  # the application_id names another application
    invalid_application = "invalid_application"  # outside the product's ranges (the message says which)
    not_eligible = "not_eligible"  # the customer not active with KYC completed, or the linked account not theirs and active
    invalid_transition = "invalid_transition"  # not from this status (the details say which it is)
    same_maker = "same_maker"  # the approver submitted it: maker-checker needs another officer
    forbidden = "forbidden"  # the approver lacks loans:approve
    invalid_approval = "invalid_approval"  # more than was asked, or a rate above the product's
    loan_not_found = "loan_not_found"
    loan_exists = "loan_exists"  # the loan_id names another loan
    disbursement_refused = "disbursement_refused"  # the ledger would not move it (details say why)
    loan_not_active = "loan_not_active"
    nothing_due = "nothing_due"  # no instalment is due yet: paying ahead is a prepayment (foreclosure)
    amount_below_due = "amount_below_due"  # less than the oldest instalment due still owes (details: oldest_due)
    overpayment_refused = "overpayment_refused"  # more than everything due (details: total_due)
    payment_exists = "payment_exists"  # the payment_id names another payment
    payment_refused = "payment_refused"  # the ledger would not take it from the account (details say why)
    quote_changed = "quote_changed"  # a foreclosure's amount is not today's quote (details: the quote)
    write_off_refused = "write_off_refused"  # the ledger would not book it (details say why)
    invalid_restructure = "invalid_restructure"  # beyond the product's rate or term (the message says which)
    invalid_payout = "invalid_payout"  # a payout of more than the net disbursed, or to a CBS account
    restructure_not_found = "restructure_not_found"  # no restructuring of that id is waiting on this loan
    restructure_exists = "restructure_exists"  # the restructure_id was asked with other terms
    document_exists = "document_exists"  # the document_id names another document, or the same one with another body
    document_not_found = "document_not_found"
    too_many_documents = "too_many_documents"  # an application holds at most MAX_DOCUMENTS
    document_already_reviewed = "document_already_reviewed"  # verified or rejected already, the other way (details: status)
    documents_incomplete = "documents_incomplete"  # leaving `documents`: some pending, or a required kind not verified (details)
    collateral_missing = "collateral_missing"  # leaving `valuation`: a secured product with no collateral
    invalid_collateral = "invalid_collateral"  # valued after the business date (the message says which)


# --- products --------------------------------------------------------------------------------


class LoanProductTerms(Contract):
    """What an officer defines for a loan product (banking-rules §5), within its type's caps."""

    name: str = Field(min_length=1, max_length=100, description="what customers see, e.g. `Home Loan`")
    type: LoanType = Field(description="personal, home, auto, education, business or gold; kept across versions")
    currency: str = currency_field("ISO 4217 currency of its loans; kept across versions")
    method: InterestMethod = InterestMethod.declining
    amortization: Amortization = Amortization.equal_instalments
    max_rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="the highest rate a loan of it may carry, ≤ the type's cap")
    min_principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units")
    max_principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units, ≤ the type's cap")
    min_months: int = Field(default=1, ge=1, le=MAX_MONTHS)
    max_months: int = Field(ge=1, le=MAX_MONTHS, description="≤ the type's cap")
    processing_fee_bps: int = Field(default=0, ge=0, le=MAX_FEE_BPS, description="taken from the disbursement")
    late_fee: int = Field(default=0, ge=0, le=MAX_AMOUNT, description="charged once on an instalment overdue, minor units")
    prepayment_charge_bps: int = Field(default=200, ge=0, le=MAX_FEE_BPS, description="of the principal foreclosed (§5: 2%)")
    penalty_rate_bps: int = Field(default=200, ge=0, le=MAX_RATE_BPS, description="a year on amounts overdue (§5: 2%)")
    grace_days: int = Field(default=7, ge=0, le=MAX_GRACE_DAYS, description="days after a due date without penalty")
    secured: bool = Field(description="needs collateral (home, auto and gold always do)")


class LoanProductView(LoanProductTerms):
    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product code, e.g. `home`")
    version: int = Field(ge=1, description="1, then one more each time an officer changes the terms")
    defined_by: str = Field(description="who defined this version (`system` for the shipped defaults)")
    defined_at: AwareDatetime = Field(description="UTC time this version was defined")


class LoanProductList(Contract):
    items: list[LoanProductView] = Field(description="each product's newest version: what applications are made under")


# --- results ---------------------------------------------------------------------------------


class Instalment(Contract):
    number: int = Field(ge=1, le=MAX_MONTHS)
    due_date: dt.date = Field(description="the disbursement's day of the month, k months later (clamped to the month's end)")
    principal: int = Field(ge=0, description="minor units")
    interest: int = Field(ge=0, description="minor units")
    amount: int = Field(ge=0, description="principal + interest, minor units")
    balance_after: int = Field(ge=0, description="principal outstanding after it, minor units")


class Schedule(Contract):
    principal: int = Field(description="minor units")
    currency: str = currency_field()
    rate_bps: int
    months: int
    method: InterestMethod
    amortization: Amortization
    disbursed_on: dt.date
    emi: int = Field(description="the regular instalment (the first, for equal principal), minor units")
    total_interest: int = Field(ge=0, description="minor units")
    total_payable: int = Field(ge=0, description="principal + total interest, minor units")
    maturity_date: dt.date = Field(description="the last due date")
    instalments: list[Instalment]


# --- applications ----------------------------------------------------------------------------

MAX_COLLATERAL = 5
MAX_EMPLOYMENT_MONTHS = 720
MAX_DOCUMENTS = 20  # an application's documents, rejected ones included: bounded like everything else
MAX_TEXT = 140  # a document's name, a collateral's description or valuer: one line of a statement or a screen
ONE_LINE = r"^[^\x00-\x1f\x7f]+$"  # no control characters: a name stays one line wherever it is shown
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def _line_field(description: str, **default: Any) -> Any:
    return Field(**default, min_length=1, max_length=MAX_TEXT, pattern=ONE_LINE, description=description)


def has_control_characters(text: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in text)


class Collateral(Contract):
    type: CollateralType
    description: str = Field(min_length=1, max_length=140, description="what it is, e.g. `flat 4B, Residency Road`")
    value: int = Field(gt=0, le=MAX_AMOUNT, description="its valuation, minor units")
    valued_on: dt.date | None = Field(default=None, description="the valuation's date; never after the business date")
    valuer: str | None = _line_field("who valued it (a firm or a person), one line", default=None)


class AssessmentView(Contract):
    """Underwriting's answer (banking-rules §5), as of when it ran."""

    assessment_emi: int = Field(description="EMI(principal, 12%, 60 months), minor units")
    dti: str = Field(description="(existing EMI + assessment EMI) / monthly income, exact, as a decimal string")
    ltv: str | None = Field(default=None, description="principal / collateral value, exact; null without collateral")
    score: int
    band: Band
    recommended_rate_bps: int = Field(description="10% + 0.1 point per point of score, capped at the product's")
    outcome: Outcome
    reasons: list[Reason] = Field(description="why it is refused; empty unless refused")


class ApplicationDocument(Contract):
    """A document of an application: what it is and its digest (the document itself lives in the
    bank's document store), and an officer's review of it."""

    document_id: UUID = Field(description="chosen by whoever added it")
    kind: DocumentKind
    name: str = Field(description="what it is called, e.g. `salary slip March`")
    sha256: str = Field(description="SHA-256 of the document's bytes, 64 lower-case hex digits")
    status: DocumentStatus = DocumentStatus.pending
    added_by: str
    added_at: AwareDatetime
    reviewed_by: str | None = Field(default=None, description="the officer who verified or rejected it")
    reviewed_at: AwareDatetime | None = None
    rejection_reason: str | None = None


class StageEntry(Contract):
    """One step of the review: the stage reached, who moved it there and when."""

    stage: ReviewStage
    by: str
    at: AwareDatetime


class LoanApplicationView(Contract):
    application_id: UUID
    customer_id: UUID
    product_code: str
    product_version: int = Field(ge=1, description="the product version it is made under")
    linked_account_id: UUID = Field(description="the customer's account the loan is paid into and repaid from")
    purpose: str
    principal: int = Field(description="asked for, minor units")
    currency: str = currency_field()
    months: int
    monthly_income: int
    existing_emi: int
    credit_score: int | None
    employment_months: int
    collateral: list[Collateral]
    co_applicant_id: UUID | None = None
    co_applicant_monthly_income: int | None = Field(default=None, description="minor units; underwriting counts it "
                                                                             "with the applicant's")
    status: ApplicationStatus
    stage: ReviewStage | None = Field(default=None, description="where the review stands while under review (and "
                                                               "where it stopped once decided); null before")
    stage_history: list[StageEntry] = Field(default_factory=list, description="each stage reached, oldest first")
    documents: list[ApplicationDocument] = Field(default_factory=list, description="oldest first, each with its status")
    created_by: str
    submitted_by: str | None = None
    assessment: AssessmentView | None = None
    decided_by: str | None = Field(default=None, description="who approved, rejected or cancelled it")
    decision_reason: str | None = None
    approved_principal: int | None = None
    approved_rate_bps: int | None = None
    approved_on: dt.date | None = Field(default=None, description="the business date of the approval: not disbursed "
                                                                  "within 30 days after it, the approval lapses (cancelled)")
    schedule: Schedule | None = Field(default=None, description="written on approval")
    loan_id: UUID | None = Field(default=None, description="the loan being or made from it")
    created_at: AwareDatetime
    updated_at: AwareDatetime


class InstalmentView(Instalment):
    paid_principal: int = Field(ge=0, description="minor units")
    paid_interest: int = Field(ge=0, description="minor units")
    penalty_due: int = Field(default=0, ge=0, description="accrued on what it owed past its due date, minor units "
                                                          "(waived if it is paid within the grace days)")
    penalty_paid: int = Field(default=0, ge=0, description="minor units")
    charges_due: int = Field(default=0, ge=0, description="the product's late fee, charged once past the grace days, minor units")
    charges_paid: int = Field(default=0, ge=0, description="minor units")
    status: InstalmentStatus


class LoanPayout(Contract):
    """Where a disbursement goes on from the linked account, by a payment order (an auto loan to
    its dealer, a home loan to its builder): at most the net disbursed; the rest stays with the
    customer."""

    rail: Literal["neft", "rtgs", "imps"]
    payee: payment.Payee = Field(description="an account at another bank: name, account number, IFSC")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="minor units, ≤ the net disbursed")


class LoanPayoutView(LoanPayout):
    payment_id: UUID = Field(description="the payment order's (payment worker): its progress is read there")
    status: str = Field(description="the order's status when it was placed (pending: waiting for its rail's window), or refused")
    refusal: str | None = Field(default=None, description="why the payment worker refused it (the money stays in the linked account)")


class WriteOffView(Contract):
    """What a write-off gave up (the claim), and what recoveries have paid of it since, minor units."""

    business_date: dt.date
    actor: str
    reason: str
    principal: int = Field(ge=0, description="outstanding principal, booked as a loan loss (loan_write_off)")
    interest: int = Field(ge=0, description="interest due and unpaid; its accrual, held in suspense, is written back")
    penalties: int = Field(ge=0)
    charges: int = Field(default=0, ge=0, description="late fees owed")
    claim: int = Field(ge=0, description="principal + interest + penalties + charges: what recoveries may pay, at most")
    recovered: int = Field(default=0, ge=0, description="paid since, to recoveries income (loan_recovery_income)")


class RestructureStatus(StrEnum):
    requested = "requested"  # by one officer; another approves it
    approved = "approved"  # the new schedule is the loan's


class RestructureView(Contract):
    """A restructuring: the new terms, and what they reschedule as of `as_of` (the request's date
    until it is approved, then the approval's), minor units."""

    restructure_id: UUID
    status: RestructureStatus
    months: int
    rate_bps: int
    reason: str
    requested_by: str
    approved_by: str | None = None
    as_of: dt.date
    outstanding_principal: int
    capitalised_interest: int = Field(description="interest past due and unpaid, and the current period's accrual so far")
    waived_penalties: int = Field(description="penalties and late fees owed, forgiven")
    principal: int = Field(description="the new schedule's: outstanding principal + capitalised interest")
    schedule: Schedule = Field(description="from `as_of`; its instalments are numbered after the old ones in the loan")


class LoanView(Contract):
    """A loan: its ledger account (code loan_principal, the customer's) holds what is owed."""

    loan_id: UUID
    number: str = Field(description="LN + 10 digits")
    application_id: UUID
    customer_id: UUID
    product_code: str
    product_version: int
    linked_account_id: UUID
    ledger_account_id: UUID = Field(description="debit-normal: its balance is the principal outstanding")
    principal: int = Field(description="minor units")
    currency: str = currency_field()
    rate_bps: int
    months: int
    processing_fee: int = Field(description="taken from the disbursement to fee income, minor units")
    net_disbursed: int = Field(description="credited to the linked account, minor units")
    disbursed_on: dt.date | None = Field(default=None, description="the business date it was disbursed")
    status: LoanStatus
    days_past_due: int = Field(default=0, ge=0, description="since the oldest instalment still owing fell due, as of the last close")
    bucket: Bucket = Bucket.current
    refusal: str | None = Field(default=None, description="why the ledger refused the disbursement")
    write_off: WriteOffView | None = Field(default=None, description="once written off: what was given up and what came back since")
    restructure: RestructureView | None = Field(default=None, description="the restructuring waiting for approval, or the last approved")
    payout: LoanPayoutView | None = Field(default=None, description="the disbursement's payment order onwards, if asked")
    schedule: Schedule = Field(description="from the disbursement's business date")
    instalments: list[InstalmentView] = Field(default_factory=list, description="each with what was paid of it")
    created_at: AwareDatetime
    updated_at: AwareDatetime


def _actor_field() -> Any:
    return Field(min_length=1, max_length=200, description="who asks (the edge names the signed-in person)")


# --- commands --------------------------------------------------------------------------------


class CalculateLoan(Command):
    """An EMI and its whole schedule, for any method; no state (banking-rules §5 EMI and schedule).
    Result: `Schedule`. Refusals: invalid_terms."""

    routing_key: ClassVar[str] = "loan.calculate"
    read_only: ClassVar[bool] = True

    principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units: 1,000.00 to 10,000,000.00")
    currency: str = currency_field("ISO 4217 currency")
    rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="a year, basis points: 12% = 1200")
    months: int = Field(ge=1, le=MAX_MONTHS)
    method: InterestMethod = InterestMethod.declining
    amortization: Amortization = Amortization.equal_instalments
    disbursed_on: dt.date | None = Field(default=None, description="due dates count from it; null: the open business date")

    @model_validator(mode="after")
    def _flat_is_even(self) -> CalculateLoan:
        if self.method == InterestMethod.flat and self.amortization != Amortization.equal_instalments:
            raise ValueError("flat interest is spread evenly: its amortization is equal_instalments")
        return self


class DefineLoanProduct(LoanProductTerms, Command):
    """Create a loan product (version 1) or change its terms (the next version): applications are
    made under the newest; loans keep theirs. The same terms as the newest define nothing new (a
    retry answers that version). Staff only. Result: `LoanProductView`. Refusals: invalid_product."""

    routing_key: ClassVar[str] = "loan.define_product"

    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product code, e.g. `home_plus`")
    actor: str = Field(min_length=1, max_length=200, description="who defines it")


class GetLoanProduct(Command):
    """A loan product's newest version, or the one named. Result: `LoanProductView`. Refusals:
    loan_product_not_found."""

    routing_key: ClassVar[str] = "loan.get_product"
    read_only: ClassVar[bool] = True

    code: str = Field(pattern=PRODUCT_CODE_PATTERN)
    version: int | None = Field(default=None, ge=1, description="none: the newest")


class ListLoanProducts(Command):
    """Result: `LoanProductList`."""

    routing_key: ClassVar[str] = "loan.list_products"
    read_only: ClassVar[bool] = True


class CreateLoanApplication(Command):
    """A draft application under a product's newest version; a customer makes only their own.
    Result: `LoanApplicationView` (draft). Refusals: loan_product_not_found, invalid_application
    (principal or term outside the product's ranges, a currency not the product's),
    application_exists (the id names another application)."""

    routing_key: ClassVar[str] = "loan.create_application"

    application_id: UUID = Field(description="chosen by the caller: a retry with the same body answers the same draft")
    customer_id: UUID
    product_code: str = Field(pattern=PRODUCT_CODE_PATTERN)
    linked_account_id: UUID = Field(description="the customer's own active account in the product's currency")
    purpose: str = Field(min_length=1, max_length=200)
    principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="minor units")
    currency: str = currency_field()
    months: int = Field(ge=1, le=MAX_MONTHS)
    monthly_income: int = Field(gt=0, le=MAX_AMOUNT, description="minor units")
    existing_emi: int = Field(default=0, ge=0, le=MAX_AMOUNT, description="instalments already paid a month, minor units")
    credit_score: int | None = Field(default=None, ge=300, le=850, description="300–850; null: no credit history")
    employment_months: int = Field(ge=0, le=MAX_EMPLOYMENT_MONTHS)
    collateral: list[Collateral] = Field(default_factory=list, max_length=MAX_COLLATERAL)
    co_applicant_id: UUID | None = Field(default=None, description="a customer borrowing with them: at submission, one "
                                                                   "the bank knows, active with KYC completed, not the applicant")
    co_applicant_monthly_income: int | None = Field(default=None, gt=0, le=MAX_AMOUNT, description="minor units; only with a "
                                                    "co-applicant: underwriting's DTI and income multiple use both incomes")
    actor: str = _actor_field()

    @model_validator(mode="after")
    def _coherent(self) -> CreateLoanApplication:
        if self.co_applicant_monthly_income is not None and self.co_applicant_id is None:
            raise ValueError("co_applicant_monthly_income needs a co_applicant_id")
        one_line_collateral(self.collateral)
        return self


def one_line_collateral(collateral: list[Collateral]) -> None:
    """Descriptions are one line, like every other name (the view keeps older ones as they came)."""
    if any(has_control_characters(item.description) for item in collateral):
        raise ValueError("a collateral's description holds no control characters")


class _ApplicationCommand(Command):
    application_id: UUID
    actor: str = _actor_field()


class SubmitLoanApplication(_ApplicationCommand):
    """draft → submitted, once the customer is active with KYC completed, the linked account is
    theirs and active, and a co-applicant, if named, is another customer active with KYC completed
    (all learned from customer.* and account.* events, never asked). Result:
    `LoanApplicationView`. Refusals: application_not_found, invalid_transition, not_eligible (the
    message says whether it is the customer, the account or the co-applicant)."""

    routing_key: ClassVar[str] = "loan.submit_application"


class UnderwriteLoanApplication(_ApplicationCommand):
    """submitted → under_review with the assessment, at stage `documents`, or → rejected when
    underwriting refuses it (the reasons in `assessment.reasons`). The assessment reads the
    collateral the application holds now, and the applicant's and co-applicant's incomes together.
    Staff only. Result: `LoanApplicationView`. Refusals: application_not_found,
    invalid_transition."""

    routing_key: ClassVar[str] = "loan.underwrite_application"


class ApproveLoanApplication(_ApplicationCommand):
    """submitted or under_review → approved by an officer with `loans:approve` who did not submit
    it (maker-checker): at most the principal asked, at most the product's rate; at any review
    stage (the stage informs, it does not gate: §5 approves from submitted too); the schedule is
    written now (from the open business date; redrawn from the day it is disbursed). Result:
    `LoanApplicationView`. Refusals: application_not_found, invalid_transition, forbidden,
    same_maker, invalid_approval."""

    routing_key: ClassVar[str] = "loan.approve_application"

    principal: int = Field(ge=MIN_PRINCIPAL, le=MAX_PRINCIPAL, description="approved, ≤ asked, minor units")
    rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="≤ the product's max rate")
    permissions: list[str] = Field(default_factory=list, description="the approver's permissions as the edge verified them")


class RejectLoanApplication(_ApplicationCommand):
    """submitted or under_review → rejected, with why. Staff only. Result: `LoanApplicationView`."""

    routing_key: ClassVar[str] = "loan.reject_application"

    reason: str = Field(min_length=1, max_length=500)


class CancelLoanApplication(_ApplicationCommand):
    """draft, submitted, under_review or approved → cancelled (the customer withdraws, or staff).
    Result: `LoanApplicationView`."""

    routing_key: ClassVar[str] = "loan.cancel_application"

    reason: str = Field(min_length=1, max_length=500)


class AddApplicationDocument(_ApplicationCommand):
    """A document of a draft, submitted or under-review application: its kind, name and SHA-256
    (the document itself is in the bank's document store), pending until an officer reviews it.
    A customer adds to their own only; staff to any. At most MAX_DOCUMENTS (20) an application,
    rejected ones included. The same document_id with the same body answers the application as it
    is now; with another body (or on another application) it is refused. Result:
    `LoanApplicationView`. Refusals: application_not_found, not_owner, invalid_transition (not
    draft, submitted or under_review), document_exists, too_many_documents."""

    routing_key: ClassVar[str] = "loan.add_application_document"

    document_id: UUID = Field(description="chosen by the caller: a retry with the same body adds nothing")
    kind: DocumentKind
    name: str = _line_field("what it is called, one line, e.g. `salary slip March`")
    sha256: str = Field(pattern=SHA256_PATTERN, description="SHA-256 of the document's bytes, 64 lower-case hex digits")


class VerifyApplicationDocument(_ApplicationCommand):
    """An officer (`loans:review`, staff only) verifies a pending document or rejects it with a
    reason; nobody reviews a document they added themselves (four eyes). Deciding again the same
    way answers the application unchanged; the other way is refused. A rejected document counts for
    nothing: the customer adds another. Result: `LoanApplicationView`. Refusals:
    application_not_found, document_not_found, invalid_transition (not draft, submitted or
    under_review), document_already_reviewed, forbidden (no `loans:review`), same_maker."""

    routing_key: ClassVar[str] = "loan.verify_application_document"

    document_id: UUID
    decision: DocumentDecision
    reason: str | None = Field(default=None, min_length=1, max_length=500, description="why it is rejected: required then")
    permissions: list[str] = Field(default_factory=list, description="the officer's permissions as the edge verified them")

    @model_validator(mode="after")
    def _rejection_says_why(self) -> VerifyApplicationDocument:
        if self.decision == DocumentDecision.rejected and self.reason is None:
            raise ValueError("a rejection says why (reason)")
        return self


class SetApplicationCollateral(_ApplicationCommand):
    """Replace an application's collateral (at most MAX_COLLATERAL items): the customer (their own)
    or anyone while it is a draft; once submitted or under review, only an officer with
    `loans:review`. Nothing derived from it is stored: underwriting computes the LTV from the list
    it finds when it runs (an assessment already made stays as of when it ran). A valuation is
    never dated after the business date. Result: `LoanApplicationView`. Refusals:
    application_not_found, not_owner, invalid_transition (approved, rejected, cancelled or
    disbursed), forbidden (past the draft without `loans:review`), invalid_collateral."""

    routing_key: ClassVar[str] = "loan.set_application_collateral"

    collateral: list[Collateral] = Field(max_length=MAX_COLLATERAL, description="the whole list; empty: none")
    permissions: list[str] = Field(default_factory=list, description="the caller's permissions as the edge verified them")

    @model_validator(mode="after")
    def _one_line(self) -> SetApplicationCollateral:
        one_line_collateral(self.collateral)
        return self


class AdvanceApplicationStage(_ApplicationCommand):
    """An officer (`loans:review`, staff only) moves an application under review to its next stage
    (`ReviewStage`: documents → credit_check → valuation → legal → committee → agreement), naming
    the stage it moves to, so a retry or a second officer never moves it twice; naming the stage it
    is at answers it unchanged. Never back, never skipping. Leaving `documents` needs no document
    pending and each required kind verified (identity and income_proof always; property_papers for
    a home loan, vehicle_papers for an auto loan, valuation_report for every secured product);
    leaving `valuation` needs collateral on a secured product. The stage informs, it does not
    gate: approval and rejection stay open from submitted or under_review at any stage (§5).
    Result: `LoanApplicationView` (with the history: stage, by, at). Refusals:
    application_not_found, invalid_transition (not under review, back, skipping or past the last),
    forbidden (no `loans:review`), documents_incomplete (details: pending, missing),
    collateral_missing."""

    routing_key: ClassVar[str] = "loan.advance_application_stage"

    stage: ReviewStage = Field(description="the stage it moves to: the one after where it is")
    permissions: list[str] = Field(default_factory=list, description="the officer's permissions as the edge verified them")


class DisburseLoan(Command):
    """An approved application's loan, disbursed in one tranche through the ledger: the loan's
    ledger account made, then one linked chain from it, the net to the linked account and the
    processing fee to fee income (§5); with a `payout`, then a payment order (NEFT, RTGS or IMPS)
    from the linked account to the payee, placed by the payment worker under its own rules (fees,
    limits, windows, screening). Staff only. Result: `LoanView` (active; `payout` says what became
    of the order: a refused order leaves the money in the linked account, with why). Refusals:
    application_not_found, invalid_transition (not approved, or already disbursing), loan_exists,
    invalid_payout, disbursement_refused (the ledger's result in the details; the application
    stays approved)."""

    routing_key: ClassVar[str] = "loan.disburse"

    application_id: UUID
    loan_id: UUID = Field(description="chosen by the caller: the loan's id and its ledger account's")
    payout: LoanPayout | None = None
    actor: str = _actor_field()


class _LoanPayment(Command):
    """A payment into a loan from its linked account, one linked chain whose ids derive from `payment_id`."""

    loan_id: UUID
    payment_id: UUID = Field(description="chosen by the caller: a retry with the same body is paid once")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="minor units")
    actor: str = _actor_field()


class PayLoan(_LoanPayment):
    """A manual payment of what is due, from the loan's linked account (banking-rules §5
    "Repayment"): allocated to the instalments due, oldest first, interest before principal; at
    least what the oldest still owes, at most everything due. On a written-off loan it is a
    recovery: any amount up to what is left of the claim, to recoveries income. A customer pays
    only their own loan. Result: `LoanView`. Refusals: loan_not_found, loan_not_active,
    nothing_due, amount_below_due, overpayment_refused, payment_exists, payment_refused (the
    ledger's result in the details)."""

    routing_key: ClassVar[str] = "loan.pay"


class ForeclosureQuoteView(Contract):
    """What closes the loan today (§5, full prepayment only), each part in minor units."""

    loan_id: UUID
    business_date: dt.date
    outstanding_principal: int = Field(description="principal not yet due")
    interest: int = Field(description="on it, since the last due date (or the disbursement)")
    arrears: int = Field(description="instalments due and unpaid: their interest and principal")
    arrears_interest: int
    arrears_principal: int
    penalties: int
    charges: int = Field(default=0, description="late fees owed")
    prepayment_charge: int = Field(description="the product's share of the outstanding principal (§5: 2%)")
    total: int


class GetForeclosureQuote(Command):
    """Result: `ForeclosureQuoteView`, valid for the open business date. Refusals: loan_not_found, loan_not_active."""

    routing_key: ClassVar[str] = "loan.get_foreclosure_quote"
    read_only: ClassVar[bool] = True

    loan_id: UUID


class ForecloseLoan(_LoanPayment):
    """Pay the whole loan off today: exactly today's quote, in one linked chain from the linked
    account (penalties, interest, the prepayment charge to their incomes; all the principal to the
    loan's account), then its ledger account closed. Result: `LoanView` (closed). Refusals:
    loan_not_found, loan_not_active, quote_changed, payment_exists, payment_refused."""

    routing_key: ClassVar[str] = "loan.foreclose"


class WriteOffLoan(Command):
    """defaulted → written off (§5, `loans:write_off`): the outstanding principal to loan losses,
    the accrued interest held in suspense written back, the loan's ledger account closed. What was
    owed stays a claim: recoveries (`loan.pay`) still post. A retry of a done write-off answers the
    loan. Result: `LoanView`. Refusals: loan_not_found, invalid_transition (not defaulted, or an
    instalment being collected), forbidden, write_off_refused."""

    routing_key: ClassVar[str] = "loan.write_off"

    loan_id: UUID
    reason: str = Field(min_length=1, max_length=500)
    actor: str = _actor_field()
    permissions: list[str] = Field(default_factory=list, description="the officer's permissions as the edge verified them")


class RequestLoanRestructure(Command):
    """A new schedule for what an active or overdue loan owes (an officer, `loans:review`): the
    outstanding principal and the interest owed, capitalised, over `months` at `rate_bps`;
    penalties owed are waived. Another officer approves it. A retry with the same id answers the
    loan; another request while one waits is refused. A defaulted loan is collected or written
    off, not restructured (workers/loan/domain/restructure.py says why). Result: `LoanView`, its
    `restructure` previewing the new schedule. Refusals: loan_not_found, invalid_transition,
    invalid_restructure, restructure_exists (the id asked with other terms)."""

    routing_key: ClassVar[str] = "loan.request_restructure"

    loan_id: UUID
    restructure_id: UUID = Field(description="chosen by the caller")
    months: int = Field(ge=1, le=MAX_MONTHS)
    rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="≤ the product's max rate")
    reason: str = Field(min_length=1, max_length=500)
    actor: str = _actor_field()


class ApproveLoanRestructure(Command):
    """Maker-checker: an officer with `loans:approve` who did not request it. What it reschedules
    is taken again as of today; the interest is capitalised in one linked chain, the old unpaid
    instalments close as `restructured`, the new ones follow, and the loan is active again.
    A retry answers the loan. Result: `LoanView`. Refusals: loan_not_found, restructure_not_found,
    forbidden, same_maker, invalid_transition, invalid_restructure."""

    routing_key: ClassVar[str] = "loan.approve_restructure"

    loan_id: UUID
    restructure_id: UUID
    actor: str = _actor_field()
    permissions: list[str] = Field(default_factory=list, description="the approver's permissions as the edge verified them")


class LoanPaymentKind(StrEnum):
    instalment = "instalment"  # the auto-debit of a due date, at close of business
    payment = "payment"  # paid by hand (what is due)
    foreclosure = "foreclosure"
    recovery = "recovery"  # on a written-off loan


class LoanRepaymentView(Contract):
    receipt_id: UUID = Field(description="the payment's id, for a payment by hand")
    kind: LoanPaymentKind
    instalment: int | None = Field(default=None, description="the instalment an auto-debit was for")
    business_date: dt.date
    amount: int = Field(description="minor units")
    received_at: AwareDatetime


class LoanScheduleView(Contract):
    """A loan's current schedule, and every instalment it has had with what was paid of each (a
    restructured loan's old ones first, `restructured`)."""

    loan_id: UUID
    number: str
    status: LoanStatus
    schedule: Schedule
    instalments: list[InstalmentView]


class GetLoanSchedule(Command):
    """Result: `LoanScheduleView`; a customer reads only their own. Refusals: loan_not_found."""

    routing_key: ClassVar[str] = "loan.get_schedule"
    read_only: ClassVar[bool] = True

    loan_id: UUID


class LoanRepaymentList(Contract):
    items: list[LoanRepaymentView] = Field(description="newest first")


class ListLoanRepayments(Command):
    """What a loan received: auto-debits, payments by hand, a foreclosure, recoveries (a customer:
    their own loan). Result: `LoanRepaymentList`. Refusals: loan_not_found."""

    routing_key: ClassVar[str] = "loan.list_repayments"
    read_only: ClassVar[bool] = True

    loan_id: UUID
    limit: int = Field(default=100, ge=1, le=500)


class LoanList(Contract):
    items: list[LoanView] = Field(description="newest first")


class ListCustomerLoans(Command):
    """A customer's loans (a customer: only their own). Result: `LoanList`."""

    routing_key: ClassVar[str] = "loan.list_customer_loans"
    read_only: ClassVar[bool] = True

    customer_id: UUID
    limit: int = Field(default=50, ge=1, le=200)


class GetLoan(Command):
    """Result: `LoanView`; a customer reads only their own. Refusals: loan_not_found."""

    routing_key: ClassVar[str] = "loan.get_loan"
    read_only: ClassVar[bool] = True

    loan_id: UUID


class LoanCobStepReported(day.StepReport):
    """The loan worker's end-of-day step `loan.repayments`: each instalment due on or before the
    business date and not asked yet is debited from its loan's linked account (`result`: asked,
    paid, partially_paid, collected)."""

    routing_key: ClassVar[str] = "loan.cob_step_reported"


class LoanFact(Event):
    loan_id: UUID
    customer_id: UUID
    number: str
    days_past_due: int
    bucket: Bucket
    business_date: dt.date = Field(description="the close that found it")
    occurred_at: AwareDatetime


class InstalmentDue(Event):
    """An instalment falls due within 3 days (§5: told 3 days before; at the close that first
    comes within them): the customer can put the money in the linked account."""

    routing_key: ClassVar[str] = "loan.instalment_due"

    loan_id: UUID
    customer_id: UUID
    number: str = Field(description="the loan's number")
    instalment: int = Field(ge=1)
    due_date: dt.date
    amount: int = Field(description="what it will debit, minor units")
    linked_account_id: UUID
    occurred_at: AwareDatetime


class LoanPaymentOverdue(LoanFact):
    """An instalment still owes something after its due date: the loan turned overdue."""

    routing_key: ClassVar[str] = "loan.payment_overdue"


class LoanDefaulted(LoanFact):
    """More than 90 days past due (NPA)."""

    routing_key: ClassVar[str] = "loan.defaulted"


class LoanClosed(LoanFact):
    """Nothing is owed: the loan and its ledger account are closed."""

    routing_key: ClassVar[str] = "loan.closed"


class LoanRecovered(LoanFact):
    """Every arrear paid: overdue or defaulted, it is active again."""

    routing_key: ClassVar[str] = "loan.recovered"


class LoanWrittenOff(LoanFact):
    """Given up: `write_off` says what, and the claim recoveries may still pay."""

    routing_key: ClassVar[str] = "loan.written_off"

    write_off: WriteOffView


class LoanRestructured(LoanFact):
    """A new schedule is the loan's: `restructure` says what it rescheduled."""

    routing_key: ClassVar[str] = "loan.restructured"

    restructure: RestructureView


class LoanPaymentReceived(Event):
    """Money came in for a loan, each part in minor units."""

    routing_key: ClassVar[str] = "loan.payment_received"

    loan_id: UUID
    customer_id: UUID
    number: str
    kind: LoanPaymentKind
    payment_id: UUID | None = Field(default=None, description="the caller's, for a payment by hand")
    amount: int = Field(gt=0)
    business_date: dt.date
    occurred_at: AwareDatetime


class LoanPenaltyCharged(LoanFact):
    """A close added to what the loan owes in penalties or late fees (§5: booked in the ledger when paid)."""

    routing_key: ClassVar[str] = "loan.penalty_charged"

    amount: int = Field(ge=0, description="penalty added by this close, minor units")
    late_fees: int = Field(default=0, ge=0, description="late fees charged by this close (the product's, once an instalment "
                                                        "still owes past its grace days), minor units")
    penalties_due: int = Field(ge=0, description="all the loan owes in penalties now, minor units")
    charges_due: int = Field(default=0, ge=0, description="all the loan owes in late fees now, minor units")


class LoanDisbursed(Event):
    routing_key: ClassVar[str] = "loan.disbursed"

    loan: LoanView
    occurred_at: AwareDatetime


class GetLoanApplication(Command):
    """Result: `LoanApplicationView`; a customer reads only their own. Refusals: application_not_found."""

    routing_key: ClassVar[str] = "loan.get_application"
    read_only: ClassVar[bool] = True

    application_id: UUID


class ApplicationFact(Event):
    application: LoanApplicationView
    occurred_at: AwareDatetime


class ApplicationSubmitted(ApplicationFact):
    routing_key: ClassVar[str] = "loan.application_submitted"


class ApplicationApproved(ApplicationFact):
    routing_key: ClassVar[str] = "loan.application_approved"


class ApplicationRejected(ApplicationFact):
    routing_key: ClassVar[str] = "loan.application_rejected"


class ApplicationCancelled(ApplicationFact):
    routing_key: ClassVar[str] = "loan.application_cancelled"


class LoanProductDefined(Event):
    routing_key: ClassVar[str] = "loan.product_defined"

    product: LoanProductView
    occurred_at: AwareDatetime


COMMANDS: tuple[type[Command], ...] = (
    CalculateLoan, DefineLoanProduct, GetLoanProduct, ListLoanProducts, CreateLoanApplication, SubmitLoanApplication,
    UnderwriteLoanApplication, ApproveLoanApplication, RejectLoanApplication, CancelLoanApplication, GetLoanApplication,
    AddApplicationDocument, VerifyApplicationDocument, SetApplicationCollateral, AdvanceApplicationStage, DisburseLoan,
    GetLoan, PayLoan, ListCustomerLoans, GetForeclosureQuote, ForecloseLoan, WriteOffLoan, ListLoanRepayments, GetLoanSchedule, RequestLoanRestructure,
    ApproveLoanRestructure,
)  # fmt: skip
EVENTS: tuple[type[Event], ...] = (
    LoanProductDefined, ApplicationSubmitted, ApplicationApproved, ApplicationRejected, ApplicationCancelled,
    LoanDisbursed, LoanCobStepReported, LoanPaymentOverdue, LoanDefaulted, LoanRecovered, InstalmentDue, LoanClosed,
    LoanWrittenOff, LoanPaymentReceived, LoanPenaltyCharged, LoanRestructured,
)  # fmt: skip
