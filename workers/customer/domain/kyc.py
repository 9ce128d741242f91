"""KYC: which status, KYC and document moves are allowed, how long a document stays valid, who is
a minor, which documents each customer type requires and what still blocks KYC completion."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from enum import StrEnum
from typing import TypeVar

from contracts.customer import (
    CustomerStatus, CustomerType, CustomerView, DocumentStatus, DocumentType, DocumentView, KycStatus, RiskCategory,
)

ADULT_AGE_YEARS = 18

S, K, D, DT = CustomerStatus, KycStatus, DocumentStatus, DocumentType


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
