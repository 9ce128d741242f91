"""Contracts of the customer worker: customers, addresses, contacts, KYC documents, risk.

Naming decisions a caller should know:
- A corporate's registered legal name goes in `last_name`; `first_name` is then optional and
  `date_of_birth` is its date of incorporation.
- `email` and `phone` are the customer's own channels and always appear in `contacts` (the phone
  as a `mobile`); `contacts` on a command lists further channels. Exactly one contact and one
  address end up primary: the flagged one, else the first (the phone, for contacts).
- Money (`annual_income`, `expected_annual_turnover`) is in minor units of the bank's one
  configured default currency (banking-rules §0), so it carries no currency of its own.
- On `update_customer` an absent or null field is left unchanged; a list given replaces the list.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from contracts.common import MAX_AMOUNT, Command, Contract, Event, Page, cursor_field, page_size

E164 = r"^\+[1-9][0-9]{1,14}$"
COUNTRY = r"^[A-Z]{2}$"  # ISO 3166-1 alpha-2


class CustomerType(StrEnum):
    individual = "individual"
    corporate = "corporate"
    joint = "joint"
    minor = "minor"


class CustomerStatus(StrEnum):
    inactive = "inactive"  # onboarding: until KYC first completes
    active = "active"
    suspended = "suspended"
    closed = "closed"  # terminal


class KycStatus(StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    rejected = "rejected"
    expired = "expired"


class DocumentStatus(StrEnum):
    pending = "pending"
    verified = "verified"
    rejected = "rejected"
    expired = "expired"


class DocumentType(StrEnum):
    national_id = "national_id"
    passport = "passport"
    drivers_license = "drivers_license"
    utility_bill = "utility_bill"
    bank_statement = "bank_statement"
    photo = "photo"
    registration_certificate = "registration_certificate"
    tax_registration = "tax_registration"
    birth_certificate = "birth_certificate"
    guardian_identity = "guardian_identity"
    joint_declaration = "joint_declaration"
    visa = "visa"
    residence_permit = "residence_permit"


class RiskCategory(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    very_high = "very_high"  # set only by a compliance officer, never by scoring


class AddressType(StrEnum):
    home = "home"
    work = "work"
    mailing = "mailing"


class ContactType(StrEnum):
    phone = "phone"
    mobile = "mobile"
    email = "email"


class CustomerError(StrEnum):
    """Stable refusal codes of the customer worker."""

    customer_not_found = "customer_not_found"
    duplicate_customer = "duplicate_customer"  # customer_id already registered
    duplicate_national_id = "duplicate_national_id"
    duplicate_email = "duplicate_email"
    invalid_name = "invalid_name"
    invalid_date_of_birth = "invalid_date_of_birth"
    customer_type_mismatch = "customer_type_mismatch"  # under 18 must be `minor`, and only then
    invalid_email = "invalid_email"
    invalid_phone = "invalid_phone"
    missing_address = "missing_address"
    multiple_primary = "multiple_primary"
    invalid_transition = "invalid_transition"
    customer_closed = "customer_closed"
    version_conflict = "version_conflict"
    close_refused_open_products = "close_refused_open_products"
    document_not_found = "document_not_found"
    duplicate_document = "duplicate_document"
    invalid_document_dates = "invalid_document_dates"
    document_expired = "document_expired"


# --- parts -------------------------------------------------------------------------------


class Address(Contract):
    street: str = Field(min_length=1, max_length=200, description="street and number")
    city: str = Field(min_length=1, max_length=100, description="city or town")
    state: str | None = Field(default=None, max_length=100, description="state, province or region")
    postal_code: str | None = Field(default=None, max_length=20, description="postal or ZIP code")
    country: str | None = Field(default=None, pattern=COUNTRY, description="ISO 3166-1 alpha-2 country")
    address_type: AddressType = Field(default=AddressType.home, description="home, work or mailing")
    is_primary: bool = Field(default=False, description="the primary address; the first one when none is flagged")


class Contact(Contract):
    contact_type: ContactType = Field(description="phone, mobile (E.164) or email")
    value: str = Field(min_length=1, max_length=254, description="E.164 number or email address")
    is_primary: bool = Field(default=False, description="the primary contact; the phone when none is flagged")


# --- commands ----------------------------------------------------------------------------


def _customer_id() -> Any:
    return Field(description="the customer's id")


class RegisterCustomer(Command):
    """Register a customer; starts `inactive` with KYC `pending`. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.register_customer"

    customer_id: UUID = Field(description="id chosen by the caller; registering it again is refused")
    customer_type: CustomerType = Field(description="individual, corporate, joint or minor (anyone under 18)")
    first_name: str | None = Field(
        default=None, min_length=1, max_length=100, description="given name; required unless corporate",
    )
    middle_name: str | None = Field(default=None, max_length=100, description="middle name(s)")
    last_name: str = Field(min_length=1, max_length=200, description="family name; a corporate's registered legal name")
    date_of_birth: date = Field(description="date of birth; a corporate's date of incorporation")
    nationality: str | None = Field(
        default=None, pattern=COUNTRY, description="ISO 3166-1 alpha-2; a corporate's country of incorporation",
    )
    occupation: str | None = Field(default=None, max_length=100, description="occupation or line of business")
    employer: str | None = Field(default=None, max_length=200, description="employer's name")
    annual_income: int | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, description="declared annual income, minor units of the default currency",
    )
    expected_annual_turnover: int | None = Field(
        default=None, ge=0, le=MAX_AMOUNT,
        description="expected annual turnover, minor units; scores risk (annual income when absent)",
    )
    source_of_funds: str | None = Field(
        default=None, max_length=500,
        description="declared source of funds; required before KYC completes at high risk",
    )
    pep: bool = Field(default=False, description="politically exposed person: always high risk")
    national_id: str | None = Field(
        default=None, min_length=1, max_length=50, description="national identity number; unique among customers",
    )
    email: str = Field(min_length=3, max_length=254, description="email address; unique among customers")
    phone: str = Field(pattern=E164, description="mobile number in E.164, e.g. +919812345678")
    addresses: list[Address] = Field(min_length=1, max_length=10, description="at least one address")
    contacts: list[Contact] = Field(default_factory=list, max_length=10, description="contacts besides email and phone")
    marketing_consent: bool = Field(default=False, description="consent to marketing messages")
    language: str = Field(default="en", pattern=r"^[a-z]{2}$", description="preferred language, ISO 639-1")


class GetCustomer(Command):
    """Read one customer. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.get_customer"
    read_only: ClassVar[bool] = True

    customer_id: UUID = _customer_id()


class UpdateCustomer(Command):
    """Change profile fields; absent or null fields stay as they are. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.update_customer"

    customer_id: UUID = _customer_id()
    expected_version: int | None = Field(
        default=None, ge=1, description="refused with version_conflict unless it is the current version",
    )
    first_name: str | None = Field(default=None, min_length=1, max_length=100, description="given name")
    middle_name: str | None = Field(default=None, max_length=100, description="middle name(s)")
    last_name: str | None = Field(default=None, min_length=1, max_length=200, description="family or legal name")
    date_of_birth: date | None = Field(default=None, description="corrected date of birth or incorporation")
    nationality: str | None = Field(default=None, pattern=COUNTRY, description="ISO 3166-1 alpha-2")
    occupation: str | None = Field(default=None, max_length=100, description="occupation or line of business")
    employer: str | None = Field(default=None, max_length=200, description="employer's name")
    annual_income: int | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, description="declared annual income, minor units",
    )
    expected_annual_turnover: int | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, description="expected annual turnover, minor units; rescores risk",
    )
    source_of_funds: str | None = Field(default=None, max_length=500, description="declared source of funds")
    pep: bool | None = Field(default=None, description="politically exposed person; rescores risk")
    national_id: str | None = Field(default=None, min_length=1, max_length=50, description="national identity number")
    email: str | None = Field(default=None, min_length=3, max_length=254, description="email address")
    phone: str | None = Field(default=None, pattern=E164, description="mobile number in E.164")
    addresses: list[Address] | None = Field(
        default=None, min_length=1, max_length=10, description="replaces every address",
    )
    contacts: list[Contact] | None = Field(
        default=None, max_length=10, description="replaces the contacts besides email and phone",
    )
    marketing_consent: bool | None = Field(default=None, description="consent to marketing messages")
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$", description="preferred language, ISO 639-1")


# The UpdateCustomer fields that are profile changes, in the order a reader expects.
UPDATABLE_FIELDS: tuple[str, ...] = tuple(
    name for name in UpdateCustomer.model_fields if name not in ("customer_id", "expected_version")
)


class SearchCustomers(Command):
    """Find customers by name, number, email, phone or national id. Result: CustomerPage."""

    routing_key: ClassVar[str] = "customer.search_customers"
    read_only: ClassVar[bool] = True

    query: str = Field(min_length=1, max_length=200, description="text to look for")
    limit: int = page_size(default=20, most=100)
    cursor: str | None = cursor_field()


class AddKycDocument(Command):
    """Submit a KYC document; it starts `pending`. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.add_kyc_document"

    customer_id: UUID = _customer_id()
    document_id: UUID = Field(description="id chosen by the caller")
    document_type: DocumentType = Field(description="what the document is")
    number: str = Field(min_length=1, max_length=100, description="number printed on the document")
    issuer: str = Field(min_length=1, max_length=200, description="issuing authority or company")
    issue_date: date = Field(description="date of issue")
    expiry_date: date | None = Field(
        default=None, description="printed expiry date; when absent the validity period of the type applies",
    )


class VerifyKycDocument(Command):
    """A reviewer accepts a pending document. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.verify_kyc_document"

    customer_id: UUID = _customer_id()
    document_id: UUID = Field(description="the document reviewed")
    reviewer: str = Field(min_length=1, max_length=200, description="who reviewed it")


class RejectKycDocument(Command):
    """A reviewer rejects a pending document; KYC becomes `rejected`. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.reject_kyc_document"

    customer_id: UUID = _customer_id()
    document_id: UUID = Field(description="the document reviewed")
    reviewer: str = Field(min_length=1, max_length=200, description="who reviewed it")
    reason: str = Field(min_length=1, max_length=1000, description="why it was rejected, shown to the customer")


class _StatusCommand(Command):
    customer_id: UUID = _customer_id()
    actor: str = Field(min_length=1, max_length=200, description="who asks for the change")
    reason: str = Field(min_length=1, max_length=1000, description="why; kept on the customer")


class SuspendCustomer(_StatusCommand):
    """active → suspended. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.suspend_customer"


class ReactivateCustomer(_StatusCommand):
    """suspended → active. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.reactivate_customer"


class CloseCustomer(_StatusCommand):
    """Any open status → closed, for good; refused while accounts or loans are open. Result: CustomerView."""

    routing_key: ClassVar[str] = "customer.close_customer"


# --- results -----------------------------------------------------------------------------


class DocumentView(Contract):
    document_id: UUID = Field(description="the document's id")
    customer_id: UUID = Field(description="whose document it is")
    document_type: DocumentType = Field(description="what the document is")
    number: str = Field(description="number printed on the document")
    issuer: str = Field(description="issuing authority or company")
    issue_date: date = Field(description="date of issue")
    expiry_date: date | None = Field(default=None, description="printed expiry date, if any")
    valid_until: date | None = Field(
        default=None, description="last valid day (printed, else from the type's validity); null: never expires",
    )
    status: DocumentStatus = Field(description="pending, verified, rejected or expired")
    reviewer: str | None = Field(default=None, description="who verified or rejected it")
    notes: str | None = Field(default=None, description="the reviewer's reason when rejected")
    submitted_at: AwareDatetime = Field(description="when it was submitted")
    reviewed_at: AwareDatetime | None = Field(default=None, description="when it was verified or rejected")


class CustomerView(Contract):
    customer_id: UUID = Field(description="the customer's id")
    customer_number: str = Field(description="the bank's customer number, assigned at registration")
    customer_type: CustomerType = Field(description="individual, corporate, joint or minor")
    first_name: str | None = Field(default=None, description="given name")
    middle_name: str | None = Field(default=None, description="middle name(s)")
    last_name: str = Field(description="family name or a corporate's legal name")
    date_of_birth: date = Field(description="date of birth or incorporation")
    nationality: str | None = Field(default=None, description="ISO 3166-1 alpha-2")
    occupation: str | None = Field(default=None, description="occupation or line of business")
    employer: str | None = Field(default=None, description="employer's name")
    annual_income: int | None = Field(default=None, description="annual income, minor units")
    expected_annual_turnover: int | None = Field(default=None, description="expected annual turnover, minor units")
    source_of_funds: str | None = Field(default=None, description="declared source of funds")
    pep: bool = Field(description="politically exposed person")
    national_id: str | None = Field(default=None, description="national identity number")
    email: str = Field(description="email address")
    phone: str = Field(description="mobile number, E.164")
    addresses: list[Address] = Field(description="addresses; exactly one is primary")
    contacts: list[Contact] = Field(description="contacts including email and phone; exactly one is primary")
    marketing_consent: bool = Field(description="consent to marketing messages")
    language: str = Field(description="preferred language, ISO 639-1")
    status: CustomerStatus = Field(description="inactive, active, suspended or closed")
    status_reason: str | None = Field(default=None, description="reason given at the last suspend, reactivate or close")
    status_changed_by: str | None = Field(default=None, description="who made the last suspend, reactivate or close")
    kyc_status: KycStatus = Field(description="pending, in_progress, completed, rejected or expired")
    risk_category: RiskCategory = Field(description="low, medium, high or very_high")
    documents: list[DocumentView] = Field(default_factory=list, description="KYC documents, oldest first")
    version: int = Field(ge=1, description="increases by one with every change; for expected_version")
    created_at: AwareDatetime = Field(description="when the customer was registered")
    updated_at: AwareDatetime = Field(description="when the customer last changed")


class CustomerSummary(Contract):
    customer_id: UUID = Field(description="the customer's id")
    customer_number: str = Field(description="the bank's customer number")
    customer_type: CustomerType = Field(description="individual, corporate, joint or minor")
    name: str = Field(description="full name or legal name")
    email: str = Field(description="email address")
    phone: str = Field(description="mobile number, E.164")
    status: CustomerStatus = Field(description="customer status")
    kyc_status: KycStatus = Field(description="KYC status")


CustomerPage = Page[CustomerSummary]


# --- events ------------------------------------------------------------------------------


class _CustomerEvent(Event):
    customer_id: UUID = Field(description="the customer's id")
    occurred_at: AwareDatetime = Field(description="when it happened, UTC")


class CustomerRegistered(_CustomerEvent):
    routing_key: ClassVar[str] = "customer.registered"

    customer_number: str = Field(description="the bank's customer number")
    customer_type: CustomerType = Field(description="individual, corporate, joint or minor")
    name: str = Field(description="full name or legal name")
    email: str = Field(description="email address")
    phone: str = Field(description="mobile number, E.164")
    language: str = Field(description="preferred language, ISO 639-1")
    status: CustomerStatus = Field(description="status at registration (inactive)")
    kyc_status: KycStatus = Field(description="KYC status at registration (pending)")
    risk_category: RiskCategory = Field(description="risk at registration")


class CustomerUpdated(_CustomerEvent):
    routing_key: ClassVar[str] = "customer.updated"

    changed_fields: list[str] = Field(description="names of the profile fields that changed")
    name: str = Field(description="full name after the change")
    email: str = Field(description="email address after the change")
    phone: str = Field(description="mobile number after the change")
    language: str = Field(description="preferred language after the change")
    version: int = Field(description="the customer's version after the change")


class CustomerKycStatusChanged(_CustomerEvent):
    routing_key: ClassVar[str] = "customer.kyc_status_changed"

    old_status: KycStatus = Field(description="KYC status before")
    new_status: KycStatus = Field(description="KYC status after")
    status: CustomerStatus = Field(description="customer status after (active when KYC first completes)")
    reason: str | None = Field(default=None, description="why, e.g. the rejection reason or the expired document type")


class _StatusEvent(_CustomerEvent):
    old_status: CustomerStatus = Field(description="customer status before")
    status: CustomerStatus = Field(description="customer status after")
    kyc_status: KycStatus = Field(description="KYC status at the time")
    actor: str = Field(description="who made the change")
    reason: str = Field(description="why")


class CustomerSuspended(_StatusEvent):
    routing_key: ClassVar[str] = "customer.suspended"


class CustomerReactivated(_StatusEvent):
    routing_key: ClassVar[str] = "customer.reactivated"


class CustomerClosed(_StatusEvent):
    routing_key: ClassVar[str] = "customer.closed"


class CustomerRiskChanged(_CustomerEvent):
    routing_key: ClassVar[str] = "customer.risk_changed"

    old_risk_category: RiskCategory = Field(description="risk before")
    new_risk_category: RiskCategory = Field(description="risk after")


class CustomerDocumentExpiring(_CustomerEvent):
    """Sent once, `notice_days` before a verified document's last valid day (by close of business)."""

    routing_key: ClassVar[str] = "customer.document_expiring"

    document_id: UUID = Field(description="the document")
    document_type: DocumentType = Field(description="what the document is")
    valid_until: date = Field(description="its last valid day")


COMMANDS: tuple[type[Command], ...] = (
    RegisterCustomer,
    GetCustomer,
    UpdateCustomer,
    SearchCustomers,
    AddKycDocument,
    VerifyKycDocument,
    RejectKycDocument,
    SuspendCustomer,
    ReactivateCustomer,
    CloseCustomer,
)

EVENTS: tuple[type[Event], ...] = (
    CustomerRegistered,
    CustomerUpdated,
    CustomerKycStatusChanged,
    CustomerSuspended,
    CustomerReactivated,
    CustomerClosed,
    CustomerRiskChanged,
    CustomerDocumentExpiring,
)

# What each command's `ok` reply carries as `result`.
RESULTS: dict[type[Command], type[Contract]] = {
    **{command: CustomerView for command in COMMANDS if command is not SearchCustomers},
    SearchCustomers: CustomerPage,
}
