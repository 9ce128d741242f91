"""Decisions: what registering, updating, adding and reviewing a KYC document, suspending,
reactivating and closing do to a customer, what close of business expires and which expiry notices
it sends. A `decide_*` answers a `Change` (the customer to store, version bumped, and the events
for the outbox) or a `Refusal`; it never raises for a business reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from contracts.common import Event
from contracts.customer import (
    UPDATABLE_FIELDS, AddKycDocument, CloseCustomer, Contact, ContactType, CustomerClosed, CustomerDocumentExpiring,
    CustomerError, CustomerKycStatusChanged, CustomerReactivated, CustomerRegistered, CustomerRiskChanged,
    CustomerStatus, CustomerSuspended, CustomerUpdated, CustomerView, DocumentStatus, DocumentView, KycStatus,
    ReactivateCustomer, RegisterCustomer, RejectKycDocument, RiskCategory, SuspendCustomer, UpdateCustomer,
    VerifyKycDocument,
)
from workers.customer.domain.kyc import (
    CUSTOMER_TRANSITIONS, DOCUMENT_TRANSITIONS, KYC_TRANSITIONS, KycTrigger, can_transition, is_expired, kyc_blockers,
    missing_documents, next_kyc_status, valid_until,
)
from workers.customer.domain.profile import (
    Refusal, check_profile, customer_risk, full_name, merge_contacts, with_one_primary,
)

EXPIRY_NOTICE_DAYS = 30

S, K, D = CustomerStatus, KycStatus, DocumentStatus


@dataclass(frozen=True)
class Change:
    customer: CustomerView  # unchanged (and no events) when the command changed nothing
    events: tuple[Event, ...] = ()


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
