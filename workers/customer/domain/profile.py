"""The profile: the customer's risk category, whether phone numbers and email addresses are valid,
which address and contact is primary, whether a profile may be stored (names, date of birth, type
against age), the full name and the search summary. `Refusal` is what any rule refusing answers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from contracts.customer import (
    Address, Contact, ContactType, CustomerError, CustomerSummary, CustomerType, CustomerView, RiskCategory,
)
from workers.customer.domain.kyc import is_minor

TURNOVER_SCORE_3_ABOVE_MINOR = 100_000_000  # 1,000,000.00 in the default currency
TURNOVER_SCORE_2_ABOVE_MINOR = 10_000_000  # 100,000.00

_PHONE = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Deliberately loose: the only real proof of an address is a delivered message.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


@dataclass(frozen=True)
class Refusal:
    code: CustomerError
    message: str
    details: dict[str, Any] | None = None


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
