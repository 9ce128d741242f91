"""Customer decisions (banking-rules §1): the status, KYC and document machines, required
documents, document validity, risk scoring and profile validation.

Pure: no I/O. The business date (`today`), the clock (`now`) and the bank's settings come in as
arguments. A `decide_*` function answers a `Change` (the customer as it should be stored, with
its version bumped, and the events for the outbox) or a `Refusal`; it never raises for a
business reason.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from contracts.common import Event
from contracts.customer import (
    UPDATABLE_FIELDS, AddKycDocument, Address, CloseCustomer, Contact, ContactType, CustomerClosed,
    CustomerDocumentExpiring, CustomerError, CustomerKycStatusChanged, CustomerReactivated, CustomerRegistered,
    CustomerRiskChanged, CustomerStatus, CustomerSummary, CustomerSuspended, CustomerType, CustomerUpdated,
    CustomerView, DocumentStatus, DocumentType, DocumentView, KycStatus, ReactivateCustomer, RegisterCustomer,
    RejectKycDocument, RiskCategory, SuspendCustomer, UpdateCustomer, VerifyKycDocument,
)

ADULT_AGE_YEARS = 18
TURNOVER_SCORE_3_ABOVE_MINOR = 100_000_000  # 1,000,000.00 in the default currency
TURNOVER_SCORE_2_ABOVE_MINOR = 10_000_000  # 100,000.00
EXPIRY_NOTICE_DAYS = 30

_PHONE = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Deliberately loose: the only real proof of an address is a delivered message.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")

S, K, D, DT = CustomerStatus, KycStatus, DocumentStatus, DocumentType


@dataclass(frozen=True)
class Refusal:
    code: CustomerError
    message: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    customer: CustomerView  # unchanged (and no events) when the command changed nothing
    events: tuple[Event, ...] = ()


# --- machines ------------------------------------------------------------------------------

CUSTOMER_TRANSITIONS: Mapping[CustomerStatus, frozenset[CustomerStatus]] = {
    S.inactive: frozenset({S.active, S.closed}),
    S.active: frozenset({S.suspended, S.closed}),
    S.suspended: frozenset({S.active, S.closed}),
    S.closed: frozenset(),
}
KYC_TRANSITIONS: Mapping[KycStatus, frozenset[KycStatus]] = {
    K.pending: frozenset({K.in_progress}),
    K.in_progress: frozenset({K.completed, K.rejected}),
    K.rejected: frozenset({K.in_progress}),
    K.completed: frozenset({K.expired}),
    K.expired: frozenset({K.in_progress}),
}
DOCUMENT_TRANSITIONS: Mapping[DocumentStatus, frozenset[DocumentStatus]] = {
    D.pending: frozenset({D.verified, D.rejected}),
    D.verified: frozenset({D.expired}),
    D.rejected: frozenset(),
    D.expired: frozenset(),
}

State = TypeVar("State", CustomerStatus, KycStatus, DocumentStatus)


def can_transition(table: Mapping[State, frozenset[State]], current: State, target: State) -> bool:
    return target in table[current]


class KycTrigger(StrEnum):
    document_added = "document_added"
    document_verified = "document_verified"  # review resumes an expired KYC
    document_rejected = "document_rejected"
    requirements_met = "requirements_met"
    requirement_lapsed = "requirement_lapsed"  # a required document expired


_KYC_MOVES: Mapping[KycTrigger, Mapping[KycStatus, KycStatus]] = {
    KycTrigger.document_added: {K.pending: K.in_progress, K.rejected: K.in_progress, K.expired: K.in_progress},
    KycTrigger.document_verified: {K.expired: K.in_progress},
    KycTrigger.document_rejected: {K.in_progress: K.rejected},
    KycTrigger.requirements_met: {K.in_progress: K.completed},
    KycTrigger.requirement_lapsed: {K.completed: K.expired},
}


def next_kyc_status(current: KycStatus, trigger: KycTrigger) -> KycStatus:
    """The status after `trigger`; a trigger that does not apply leaves the status as it is."""
    return _KYC_MOVES[trigger].get(current, current)


# --- dates ---------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Aug + 6 → 28/29 Feb)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


VALIDITY_MONTHS: Mapping[DocumentType, int] = {
    DT.national_id: 120,
    DT.passport: 120,
    DT.guardian_identity: 120,  # a guardian's identity is a national id or passport
    DT.drivers_license: 60,
    DT.utility_bill: 6,
    DT.bank_statement: 6,
    DT.visa: 12,
    DT.residence_permit: 24,
}


def valid_until(document_type: DocumentType, issue_date: date, expiry_date: date | None = None) -> date | None:
    """Last valid day: the printed expiry, else the type's period from issue, minus the issue day
    itself (as printed: a passport issued 10 Mar 2015 expires 9 Mar 2025). None: never expires."""
    if expiry_date is not None:
        return expiry_date
    months = VALIDITY_MONTHS.get(document_type)
    return None if months is None else add_months(issue_date, months) - timedelta(days=1)


def is_expired(last_valid_day: date | None, today: date) -> bool:
    return last_valid_day is not None and today > last_valid_day


def age_years(date_of_birth: date, today: date) -> int:
    return today.year - date_of_birth.year - ((today.month, today.day) < (date_of_birth.month, date_of_birth.day))


def is_minor(date_of_birth: date, today: date) -> bool:
    return age_years(date_of_birth, today) < ADULT_AGE_YEARS


# --- required documents and KYC completion --------------------------------------------------

IDENTITY = frozenset({DT.national_id, DT.passport})
PROOF_OF_ADDRESS = frozenset({DT.utility_bill, DT.bank_statement})
_INDIVIDUAL = (("identity", IDENTITY), ("proof_of_address", PROOF_OF_ADDRESS), ("photo", frozenset({DT.photo})))
# Each requirement is met by a verified, unexpired document of any of its types.
REQUIRED_DOCUMENTS: Mapping[CustomerType, tuple[tuple[str, frozenset[DocumentType]], ...]] = {
    CustomerType.individual: _INDIVIDUAL,
    CustomerType.corporate: (
        ("registration_certificate", frozenset({DT.registration_certificate})),
        ("tax_registration", frozenset({DT.tax_registration})),
        ("identity", IDENTITY),
    ),
    CustomerType.joint: (*_INDIVIDUAL, ("joint_declaration", frozenset({DT.joint_declaration}))),
    CustomerType.minor: (
        ("birth_certificate", frozenset({DT.birth_certificate})),
        ("guardian_identity", frozenset({DT.guardian_identity})),
        ("photo", frozenset({DT.photo})),
    ),
}


def missing_documents(customer_type: CustomerType, documents: Iterable[DocumentView], today: date) -> tuple[str, ...]:
    """Names of the requirements no verified, unexpired document meets."""
    held = {d.document_type for d in documents if d.status is D.verified and not is_expired(d.valid_until, today)}
    return tuple(name for name, accepted in REQUIRED_DOCUMENTS[customer_type] if not held & accepted)


def kyc_blockers(customer: CustomerView, today: date) -> tuple[str, ...]:
    """What still stands before KYC may complete; empty when nothing does."""
    high = customer.risk_category in (RiskCategory.high, RiskCategory.very_high)
    funds = ("source_of_funds",) if high and not customer.source_of_funds else ()
    return missing_documents(customer.customer_type, customer.documents, today) + funds


# --- risk ------------------------------------------------------------------------------------


def turnover_score(turnover_minor: int) -> int:
    if turnover_minor > TURNOVER_SCORE_3_ABOVE_MINOR:
        return 3
    return 2 if turnover_minor > TURNOVER_SCORE_2_ABOVE_MINOR else 1


def assess_risk(
    customer_type: CustomerType,
    turnover_minor: int | None,
    pep: bool,
    countries: Iterable[str | None],
    high_risk_countries: frozenset[str],
) -> RiskCategory:
    if pep or any(country in high_risk_countries for country in countries if country):
        return RiskCategory.high
    score = turnover_score(turnover_minor or 0) + (customer_type is CustomerType.corporate)
    return RiskCategory.high if score >= 3 else RiskCategory.medium if score == 2 else RiskCategory.low


def customer_risk(customer: CustomerView, high_risk_countries: frozenset[str]) -> RiskCategory:
    """The scored risk; a compliance officer's `very_high` is never scored away."""
    if customer.risk_category is RiskCategory.very_high:
        return RiskCategory.very_high
    turnover = customer.expected_annual_turnover
    turnover = customer.annual_income if turnover is None else turnover
    countries = [customer.nationality, *(address.country for address in customer.addresses)]
    return assess_risk(customer.customer_type, turnover, customer.pep, countries, high_risk_countries)


# --- profile validation ----------------------------------------------------------------------


def is_valid_phone(value: str) -> bool:
    return bool(_PHONE.fullmatch(value))


def is_valid_email(value: str) -> bool:
    return len(value) <= 254 and bool(_EMAIL.fullmatch(value))


Item = TypeVar("Item", Address, Contact)


def with_one_primary(items: Sequence[Item]) -> list[Item] | Refusal:
    """Exactly one primary: the flagged one, else the first. Only addresses can be empty here:
    contacts always hold the customer's own phone and email."""
    flagged = [index for index, item in enumerate(items) if item.is_primary]
    if not items:
        return Refusal(CustomerError.missing_address, "at least one address is required")
    if len(flagged) > 1:
        return Refusal(CustomerError.multiple_primary, "only one may be primary", {"count": len(flagged)})
    primary = flagged[0] if flagged else 0
    return [item.model_copy(update={"is_primary": index == primary}) for index, item in enumerate(items)]


def merge_contacts(email: str, phone: str, extra: Sequence[Contact]) -> list[Contact] | Refusal:
    """The phone (as mobile), the email, then `extra`, without repeats; the phone is primary
    unless another contact is flagged."""
    for contact in extra:
        if contact.contact_type is ContactType.email and not is_valid_email(contact.value):
            return Refusal(CustomerError.invalid_email, f"not an email address: {contact.value}")
        if contact.contact_type is not ContactType.email and not is_valid_phone(contact.value):
            return Refusal(CustomerError.invalid_phone, f"not an E.164 number: {contact.value}")
    flagged = {(contact.contact_type, contact.value) for contact in extra if contact.is_primary}
    merged: dict[tuple[ContactType, str], Contact] = {}
    own = (Contact(contact_type=ContactType.mobile, value=phone), Contact(contact_type=ContactType.email, value=email))
    for contact in (*own, *extra):
        key = (contact.contact_type, contact.value)
        merged.setdefault(key, contact.model_copy(update={"is_primary": key in flagged}))
    return with_one_primary(list(merged.values()))


def check_profile(customer: CustomerView, today: date) -> Refusal | None:
    corporate = customer.customer_type is CustomerType.corporate
    if not customer.last_name.strip() or (not corporate and not (customer.first_name or "").strip()):
        return Refusal(CustomerError.invalid_name, "first and last name are required (a corporate: its legal name)")
    if customer.date_of_birth > today:
        return Refusal(CustomerError.invalid_date_of_birth, "date of birth is in the future")
    if not corporate and is_minor(customer.date_of_birth, today) != (customer.customer_type is CustomerType.minor):
        return Refusal(CustomerError.customer_type_mismatch, "anyone under 18, and only they, is of type minor")
    if not is_valid_email(customer.email):
        return Refusal(CustomerError.invalid_email, f"not an email address: {customer.email}")
    if not is_valid_phone(customer.phone):
        return Refusal(CustomerError.invalid_phone, f"not an E.164 number: {customer.phone}")
    return None


def full_name(customer: CustomerView) -> str:
    return " ".join(part for part in (customer.first_name, customer.middle_name, customer.last_name) if part)


def summary(customer: CustomerView) -> CustomerSummary:
    fields = customer.model_dump(include=set(CustomerSummary.model_fields) - {"name"})
    return CustomerSummary(**fields, name=full_name(customer))


# --- decisions -------------------------------------------------------------------------------


def decide_registration(
    cmd: RegisterCustomer, customer_number: str, today: date, now: datetime, high_risk_countries: frozenset[str]
) -> Change | Refusal:
    """Duplicate customer_id, email and national_id are the store's to refuse: they need a lookup."""
    addresses = with_one_primary(cmd.addresses)
    if isinstance(addresses, Refusal):
        return addresses
    contacts = merge_contacts(cmd.email, cmd.phone, cmd.contacts)
    if isinstance(contacts, Refusal):
        return contacts
    customer = CustomerView(
        **cmd.model_dump(exclude={"addresses", "contacts"}), customer_number=customer_number,
        addresses=addresses, contacts=contacts, status=S.inactive, kyc_status=K.pending,
        risk_category=RiskCategory.low, version=1, created_at=now, updated_at=now,
    )
    if refusal := check_profile(customer, today):
        return refusal
    customer = customer.model_copy(update={"risk_category": customer_risk(customer, high_risk_countries)})
    registered = CustomerRegistered(
        customer_id=customer.customer_id, occurred_at=now, customer_number=customer_number,
        customer_type=customer.customer_type, name=full_name(customer), email=customer.email,
        phone=customer.phone, language=customer.language, status=customer.status,
        kyc_status=customer.kyc_status, risk_category=customer.risk_category,
    )
    return Change(customer, (registered,))


def decide_update(
    customer: CustomerView, cmd: UpdateCustomer, today: date, now: datetime, high_risk_countries: frozenset[str]
) -> Change | Refusal:
    if refusal := _refuse_closed(customer):
        return refusal
    if cmd.expected_version is not None and cmd.expected_version != customer.version:
        return Refusal(CustomerError.version_conflict, "the customer changed meanwhile", {"version": customer.version})
    asked = {name: getattr(cmd, name) for name in UPDATABLE_FIELDS if getattr(cmd, name) is not None}
    if "addresses" in asked:
        addresses = with_one_primary(asked["addresses"])
        if isinstance(addresses, Refusal):
            return addresses
        asked["addresses"] = addresses
    if asked.keys() & {"email", "phone", "contacts"}:
        extra = asked.get("contacts", _extra_contacts(customer))
        contacts = merge_contacts(asked.get("email", customer.email), asked.get("phone", customer.phone), extra)
        if isinstance(contacts, Refusal):
            return contacts
        asked["contacts"] = contacts
    changed = {name: value for name, value in asked.items() if getattr(customer, name) != value}
    if not changed:
        return Change(customer)
    updated = customer.model_copy(update=changed)
    if refusal := check_profile(updated, today):
        return refusal
    events: list[Event] = [
        CustomerUpdated(
            customer_id=customer.customer_id, occurred_at=now, changed_fields=list(changed), name=full_name(updated),
            email=updated.email, phone=updated.phone, language=updated.language, version=customer.version + 1,
        )
    ]
    risk = customer_risk(updated, high_risk_countries)
    if risk != customer.risk_category:
        updated = updated.model_copy(update={"risk_category": risk})
        events.append(CustomerRiskChanged(
            customer_id=customer.customer_id, occurred_at=now,
            old_risk_category=customer.risk_category, new_risk_category=risk,
        ))
    updated, kyc_events = _advance_kyc(updated, (), today, now)
    return Change(_bump(updated, now), (*events, *kyc_events))


def decide_add_document(customer: CustomerView, cmd: AddKycDocument, today: date, now: datetime) -> Change | Refusal:
    if refusal := _refuse_closed(customer):
        return refusal
    if any(document.document_id == cmd.document_id for document in customer.documents):
        return Refusal(CustomerError.duplicate_document, f"document {cmd.document_id} already exists")
    if cmd.issue_date > today or (cmd.expiry_date is not None and cmd.expiry_date < cmd.issue_date):
        return Refusal(CustomerError.invalid_document_dates, "issued in the future or expiring before issue")
    last_day = valid_until(cmd.document_type, cmd.issue_date, cmd.expiry_date)
    if is_expired(last_day, today):
        return Refusal(CustomerError.document_expired, f"the document expired after {last_day}")
    document = DocumentView(**cmd.model_dump(), valid_until=last_day, status=D.pending, submitted_at=now)
    updated = customer.model_copy(update={"documents": [*customer.documents, document]})
    updated, events = _advance_kyc(updated, (KycTrigger.document_added,), today, now)
    return Change(_bump(updated, now), tuple(events))


def decide_verify_document(
    customer: CustomerView, cmd: VerifyKycDocument, today: date, now: datetime
) -> Change | Refusal:
    document = _reviewable(customer, cmd.document_id, D.verified)
    if isinstance(document, Refusal):
        return document
    if is_expired(document.valid_until, today):
        return Refusal(CustomerError.document_expired, f"the document expired after {document.valid_until}")
    reviewed = document.model_copy(update={"status": D.verified, "reviewer": cmd.reviewer, "reviewed_at": now})
    updated, events = _advance_kyc(_with_document(customer, reviewed), (KycTrigger.document_verified,), today, now)
    return Change(_bump(updated, now), tuple(events))


def decide_reject_document(
    customer: CustomerView, cmd: RejectKycDocument, today: date, now: datetime
) -> Change | Refusal:
    document = _reviewable(customer, cmd.document_id, D.rejected)
    if isinstance(document, Refusal):
        return document
    review = {"status": D.rejected, "reviewer": cmd.reviewer, "notes": cmd.reason, "reviewed_at": now}
    updated = _with_document(customer, document.model_copy(update=review))
    updated, events = _advance_kyc(updated, (KycTrigger.document_rejected,), today, now, cmd.reason)
    return Change(_bump(updated, now), tuple(events))


def decide_suspend(customer: CustomerView, cmd: SuspendCustomer, now: datetime) -> Change | Refusal:
    return _move_status(customer, S.suspended, cmd.actor, cmd.reason, now)


def decide_reactivate(customer: CustomerView, cmd: ReactivateCustomer, now: datetime) -> Change | Refusal:
    # inactive → active is KYC completion's move, never an officer's: it would skip onboarding.
    if customer.status is S.inactive:
        return Refusal(CustomerError.invalid_transition, "an inactive customer becomes active only when KYC completes")
    return _move_status(customer, S.active, cmd.actor, cmd.reason, now)


def decide_close(customer: CustomerView, cmd: CloseCustomer, open_products: int, now: datetime) -> Change | Refusal:
    """`open_products`: accounts and loans still open, as counted from account.* and loan.* events."""
    assert open_products >= 0, open_products
    if open_products and customer.status is not S.closed:
        details = {"open_products": open_products}
        return Refusal(CustomerError.close_refused_open_products, "accounts or loans are still open", details)
    return _move_status(customer, S.closed, cmd.actor, cmd.reason, now)


def decide_expiry(customer: CustomerView, today: date, now: datetime) -> Change | None:
    """Close of business: verified documents past their last day expire, and completed KYC
    expires with a required one. None when nothing expires."""
    lapsed = {
        d.document_id: d.document_type
        for d in customer.documents
        if d.status is D.verified and is_expired(d.valid_until, today)
    }
    if not lapsed or customer.status is S.closed:
        return None
    documents = [
        d.model_copy(update={"status": D.expired}) if d.document_id in lapsed else d for d in customer.documents
    ]
    updated = customer.model_copy(update={"documents": documents})
    triggers = (KycTrigger.requirement_lapsed,) if missing_documents(customer.customer_type, documents, today) else ()
    reason = "expired: " + ", ".join(sorted(set(lapsed.values())))
    updated, events = _advance_kyc(updated, triggers, today, now, reason)
    return Change(_bump(updated, now), tuple(events))


def expiry_notices(
    customer: CustomerView, last_run: date, today: date, now: datetime
) -> tuple[CustomerDocumentExpiring, ...]:
    """Notices for verified documents whose notice day falls in (last_run, today]: each is sent
    once however many days close of business skipped."""
    return tuple(
        CustomerDocumentExpiring(
            customer_id=customer.customer_id, occurred_at=now, document_id=d.document_id,
            document_type=d.document_type, valid_until=d.valid_until,
        )
        for d in customer.documents
        if d.status is D.verified and d.valid_until is not None
        and last_run < d.valid_until - timedelta(days=EXPIRY_NOTICE_DAYS) <= today
    )


# --- helpers ---------------------------------------------------------------------------------


def _bump(customer: CustomerView, now: datetime) -> CustomerView:
    return customer.model_copy(update={"version": customer.version + 1, "updated_at": now})


def _refuse_closed(customer: CustomerView) -> Refusal | None:
    if customer.status is S.closed:
        return Refusal(CustomerError.customer_closed, "the customer is closed")
    return None


def _extra_contacts(customer: CustomerView) -> list[Contact]:
    own = {(ContactType.mobile, customer.phone), (ContactType.email, customer.email)}
    return [contact for contact in customer.contacts if (contact.contact_type, contact.value) not in own]


def _reviewable(customer: CustomerView, document_id: UUID, target: DocumentStatus) -> DocumentView | Refusal:
    if refusal := _refuse_closed(customer):
        return refusal
    document = next((d for d in customer.documents if d.document_id == document_id), None)
    if document is None:
        return Refusal(CustomerError.document_not_found, f"no document {document_id}")
    if not can_transition(DOCUMENT_TRANSITIONS, document.status, target):
        return Refusal(CustomerError.invalid_transition, f"a {document.status} document cannot become {target}")
    return document


def _with_document(customer: CustomerView, document: DocumentView) -> CustomerView:
    documents = [document if d.document_id == document.document_id else d for d in customer.documents]
    return customer.model_copy(update={"documents": documents})


def _advance_kyc(
    customer: CustomerView, triggers: Sequence[KycTrigger], today: date, now: datetime, reason: str | None = None
) -> tuple[CustomerView, list[Event]]:
    """Apply `triggers`, then complete KYC if nothing blocks it; one event per step. A new
    customer becomes active when KYC first completes."""
    events: list[Event] = []
    for trigger in (*triggers, KycTrigger.requirements_met):
        if trigger is KycTrigger.requirements_met and kyc_blockers(customer, today):
            continue
        old, new = customer.kyc_status, next_kyc_status(customer.kyc_status, trigger)
        if new == old:
            continue
        assert can_transition(KYC_TRANSITIONS, old, new), (old, new)
        status = S.active if new is K.completed and customer.status is S.inactive else customer.status
        customer = customer.model_copy(update={"kyc_status": new, "status": status})
        events.append(CustomerKycStatusChanged(
            customer_id=customer.customer_id, occurred_at=now,
            old_status=old, new_status=new, status=status, reason=reason,
        ))
    return customer, events


def _move_status(
    customer: CustomerView, target: CustomerStatus, actor: str, reason: str, now: datetime
) -> Change | Refusal:
    if refusal := _refuse_closed(customer):
        return refusal
    if not can_transition(CUSTOMER_TRANSITIONS, customer.status, target):
        return Refusal(CustomerError.invalid_transition, f"a {customer.status} customer cannot become {target}")
    event_type = {S.suspended: CustomerSuspended, S.active: CustomerReactivated, S.closed: CustomerClosed}[target]
    event = event_type(
        customer_id=customer.customer_id, occurred_at=now, old_status=customer.status, status=target,
        kyc_status=customer.kyc_status, actor=actor, reason=reason,
    )
    updated = customer.model_copy(update={"status": target, "status_reason": reason, "status_changed_by": actor})
    return Change(_bump(updated, now), (event,))
