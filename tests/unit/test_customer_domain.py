"""Customer rules: status, KYC and document machines, required documents, validity, risk."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import product
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.customer import (
    AddKycDocument,
    Address,
    CloseCustomer,
    Contact,
    ContactType,
    CustomerClosed,
    CustomerError,
    CustomerKycStatusChanged,
    CustomerRegistered,
    CustomerRiskChanged,
    CustomerStatus,
    CustomerSuspended,
    CustomerType,
    CustomerUpdated,
    CustomerView,
    DocumentStatus,
    DocumentType,
    KycStatus,
    ReactivateCustomer,
    RegisterCustomer,
    RejectKycDocument,
    RiskCategory,
    SuspendCustomer,
    UpdateCustomer,
    VerifyKycDocument,
)
from workers.customer.domain.decisions import (
    Change,
    decide_add_document,
    decide_close,
    decide_expiry,
    decide_reactivate,
    decide_registration,
    decide_reject_document,
    decide_suspend,
    decide_update,
    decide_verify_document,
    expiry_notices,
)
from workers.customer.domain.kyc import (
    CUSTOMER_TRANSITIONS,
    DOCUMENT_TRANSITIONS,
    KYC_TRANSITIONS,
    KycTrigger,
    add_months,
    age_years,
    can_transition,
    is_expired,
    is_minor,
    missing_documents,
    next_kyc_status,
    valid_until,
)
from workers.customer.domain.profile import (
    Refusal,
    assess_risk,
    is_valid_email,
    is_valid_phone,
    merge_contacts,
    summary,
    with_one_primary,
)

S, K, D, DT = CustomerStatus, KycStatus, DocumentStatus, DocumentType
TODAY = date(2025, 6, 15)
NOW = datetime(2025, 6, 15, 9, 30, tzinfo=UTC)
NO_HIGH_RISK: frozenset[str] = frozenset()
INDIVIDUAL_DOCS = (DT.passport, DT.utility_bill, DT.photo)


def register_cmd(**overrides: object) -> RegisterCustomer:
    fields: dict[str, object] = {
        "customer_id": uuid4(),
        "customer_type": CustomerType.individual,
        "first_name": "Asha",
        "last_name": "Rao",
        "date_of_birth": date(1990, 4, 1),
        "nationality": "IN",
        "email": "asha@example.in",
        "phone": "+919812345678",
        "addresses": [Address(street="1 MG Road", city="Pune", country="IN")],
        "expected_annual_turnover": 5_000_000,
    }
    return RegisterCustomer(**{**fields, **overrides})


def ok(result: Change | Refusal) -> Change:
    assert isinstance(result, Change), result
    return result


def refused(result: Change | Refusal, code: CustomerError) -> None:
    assert isinstance(result, Refusal), result
    assert result.code == code


def registered(**overrides: object) -> CustomerView:
    return ok(decide_registration(register_cmd(**overrides), "C0000001", TODAY, NOW, NO_HIGH_RISK)).customer


def add_doc(
    c: CustomerView, doc_type: DocumentType, issue: date = date(2025, 5, 1), **kw: object
) -> tuple[CustomerView, UUID]:
    doc_id = uuid4()
    cmd = AddKycDocument(
        customer_id=c.customer_id, document_id=doc_id, document_type=doc_type, number="X1", issuer="Gov",
        issue_date=issue, **kw,
    )
    return ok(decide_add_document(c, cmd, TODAY, NOW)).customer, doc_id


def verify(c: CustomerView, doc_id: UUID, today: date = TODAY) -> Change | Refusal:
    cmd = VerifyKycDocument(customer_id=c.customer_id, document_id=doc_id, reviewer="officer")
    return decide_verify_document(c, cmd, today, NOW)


def reject(c: CustomerView, doc_id: UUID) -> Change | Refusal:
    cmd = RejectKycDocument(customer_id=c.customer_id, document_id=doc_id, reviewer="officer", reason="blurred")
    return decide_reject_document(c, cmd, TODAY, NOW)


def update(c: CustomerView, **fields: object) -> Change | Refusal:
    return decide_update(c, UpdateCustomer(customer_id=c.customer_id, **fields), TODAY, NOW, NO_HIGH_RISK)


def with_verified(c: CustomerView, doc_types: tuple[DocumentType, ...]) -> CustomerView:
    for doc_type in doc_types:
        c, doc_id = add_doc(c, doc_type)
        c = ok(verify(c, doc_id)).customer
    return c


def kyc_events(change: Change) -> list[tuple[KycStatus, KycStatus, CustomerStatus]]:
    return [(e.old_status, e.new_status, e.status) for e in change.events if isinstance(e, CustomerKycStatusChanged)]


# --- machines --------------------------------------------------------------------------------

CUSTOMER_LEGAL = {
    (S.inactive, S.active), (S.inactive, S.closed), (S.active, S.suspended), (S.active, S.closed),
    (S.suspended, S.active), (S.suspended, S.closed),
}
KYC_LEGAL = {
    (K.pending, K.in_progress), (K.in_progress, K.completed), (K.in_progress, K.rejected),
    (K.rejected, K.in_progress), (K.completed, K.expired), (K.expired, K.in_progress),
}
DOCUMENT_LEGAL = {(D.pending, D.verified), (D.pending, D.rejected), (D.verified, D.expired)}


@pytest.mark.parametrize("current, target", list(product(CustomerStatus, repeat=2)))
def test_customer_transitions_are_exactly_the_rules(current: CustomerStatus, target: CustomerStatus) -> None:
    assert can_transition(CUSTOMER_TRANSITIONS, current, target) == ((current, target) in CUSTOMER_LEGAL)


@pytest.mark.parametrize("current, target", list(product(KycStatus, repeat=2)))
def test_kyc_transitions_are_exactly_the_rules(current: KycStatus, target: KycStatus) -> None:
    assert can_transition(KYC_TRANSITIONS, current, target) == ((current, target) in KYC_LEGAL)


@pytest.mark.parametrize("current, target", list(product(DocumentStatus, repeat=2)))
def test_document_transitions_are_exactly_the_rules(current: DocumentStatus, target: DocumentStatus) -> None:
    assert can_transition(DOCUMENT_TRANSITIONS, current, target) == ((current, target) in DOCUMENT_LEGAL)


KYC_MOVES = {
    (K.pending, KycTrigger.document_added): K.in_progress,
    (K.rejected, KycTrigger.document_added): K.in_progress,
    (K.expired, KycTrigger.document_added): K.in_progress,
    (K.expired, KycTrigger.document_verified): K.in_progress,
    (K.in_progress, KycTrigger.document_rejected): K.rejected,
    (K.in_progress, KycTrigger.requirements_met): K.completed,
    (K.completed, KycTrigger.requirement_lapsed): K.expired,
}


@pytest.mark.parametrize("current, trigger", list(product(KycStatus, KycTrigger)))
def test_kyc_trigger_moves_only_where_the_rules_say(current: KycStatus, trigger: KycTrigger) -> None:
    assert next_kyc_status(current, trigger) == KYC_MOVES.get((current, trigger), current)


@given(st.lists(st.sampled_from(list(KycTrigger)), max_size=40))
def test_any_trigger_sequence_stays_on_legal_transitions(triggers: list[KycTrigger]) -> None:
    status, moved = K.pending, False
    for trigger in triggers:
        new = next_kyc_status(status, trigger)
        assert new in set(KycStatus)
        assert new == status or (status, new) in KYC_LEGAL
        moved |= new != status
        status = new
        assert not (moved and status is K.pending)  # pending is only ever the start


# --- the KYC journey ---------------------------------------------------------------------------


def test_registration_starts_inactive_pending_with_one_primary_and_an_event() -> None:
    change = ok(decide_registration(register_cmd(), "C0000001", TODAY, NOW, NO_HIGH_RISK))
    c = change.customer
    assert (c.status, c.kyc_status, c.risk_category, c.version) == (S.inactive, K.pending, RiskCategory.low, 1)
    assert [a.is_primary for a in c.addresses] == [True]
    contacts = [(x.contact_type, x.is_primary) for x in c.contacts]
    assert contacts == [(ContactType.mobile, True), (ContactType.email, False)]
    (event,) = change.events
    assert isinstance(event, CustomerRegistered)
    assert (event.status, event.kyc_status, event.risk_category) == (S.inactive, K.pending, RiskCategory.low)
    assert (event.name, event.customer_number) == ("Asha Rao", "C0000001")


def test_first_document_starts_kyc_and_verifying_the_set_completes_and_activates() -> None:
    c, passport = add_doc(registered(), DT.passport)
    assert c.kyc_status is K.in_progress and c.documents[0].status is D.pending
    c = ok(verify(c, passport)).customer
    c, bill = add_doc(c, DT.utility_bill)
    c = ok(verify(c, bill)).customer
    assert (c.kyc_status, c.status) == (K.in_progress, S.inactive)  # the photo is still missing
    c, photo = add_doc(c, DT.photo)
    change = ok(verify(c, photo))
    assert (change.customer.kyc_status, change.customer.status) == (K.completed, S.active)
    assert kyc_events(change) == [(K.in_progress, K.completed, S.active)]
    assert change.customer.version == c.version + 1


def test_rejecting_a_document_rejects_kyc_and_resubmission_resumes_it() -> None:
    c, passport = add_doc(registered(), DT.passport)
    change = ok(reject(c, passport))
    assert change.customer.kyc_status is K.rejected
    assert change.customer.documents[0].notes == "blurred"
    assert kyc_events(change) == [(K.in_progress, K.rejected, S.inactive)]
    c, national_id = add_doc(change.customer, DT.national_id)
    assert c.kyc_status is K.in_progress
    c = with_verified(c, (DT.bank_statement, DT.photo))
    assert c.kyc_status is K.in_progress  # the resubmitted identity is not verified yet
    assert ok(verify(c, national_id)).customer.kyc_status is K.completed


@pytest.mark.parametrize("act", [verify, reject])
def test_only_a_pending_document_can_be_reviewed(act) -> None:  # type: ignore[no-untyped-def]
    c, doc_id = add_doc(registered(), DT.passport)
    c = ok(verify(c, doc_id)).customer
    refused(act(c, doc_id), CustomerError.invalid_transition)
    refused(act(c, uuid4()), CustomerError.document_not_found)


def test_document_submission_refusals() -> None:
    c, doc_id = add_doc(registered(), DT.passport)
    again = AddKycDocument(
        customer_id=c.customer_id, document_id=doc_id, document_type=DT.passport, number="X", issuer="Gov",
        issue_date=date(2020, 1, 1),
    )
    refused(decide_add_document(c, again, TODAY, NOW), CustomerError.duplicate_document)
    fresh = again.model_copy(update={"document_id": uuid4()})
    refused(decide_add_document(c, fresh.model_copy(update={"issue_date": TODAY + timedelta(days=1)}), TODAY, NOW),
            CustomerError.invalid_document_dates)
    refused(decide_add_document(c, fresh.model_copy(update={"expiry_date": date(2019, 1, 1)}), TODAY, NOW),
            CustomerError.invalid_document_dates)
    # a bill issued 15 Dec 2024 is valid through 14 Jun 2025, the day before TODAY
    stale_bill = fresh.model_copy(update={"document_type": DT.utility_bill, "issue_date": date(2024, 12, 15)})
    refused(decide_add_document(c, stale_bill, TODAY, NOW), CustomerError.document_expired)
    assert ok(decide_add_document(c, stale_bill.model_copy(update={"issue_date": date(2024, 12, 16)}), TODAY, NOW))


def test_a_document_that_expired_while_pending_cannot_be_verified() -> None:
    c, bill = add_doc(registered(), DT.utility_bill, issue=date(2025, 1, 1))  # last valid day 30 Jun 2025
    assert ok(verify(c, bill, today=date(2025, 6, 30)))
    refused(verify(c, bill, today=date(2025, 7, 1)), CustomerError.document_expired)


def test_expiry_of_a_required_document_expires_kyc_and_a_new_one_restores_it() -> None:
    c = with_verified(registered(), INDIVIDUAL_DOCS)
    assert (c.kyc_status, c.status) == (K.completed, S.active)
    assert decide_expiry(c, date(2025, 10, 31), NOW) is None  # the bill (1 May) is valid through 31 Oct
    change = decide_expiry(c, date(2025, 11, 1), NOW)
    assert change is not None
    assert [d.status for d in change.customer.documents] == [D.verified, D.expired, D.verified]
    assert kyc_events(change) == [(K.completed, K.expired, S.active)]
    c, statement = add_doc(change.customer, DT.bank_statement, issue=date(2025, 6, 1))
    assert c.kyc_status is K.in_progress
    change = ok(verify(c, statement))
    assert (change.customer.kyc_status, change.customer.status) == (K.completed, S.active)


def test_kyc_completing_again_never_reactivates_a_suspended_customer() -> None:
    c = with_verified(registered(), INDIVIDUAL_DOCS)
    c = ok(decide_suspend(c, SuspendCustomer(customer_id=c.customer_id, actor="ops", reason="aml"), NOW)).customer
    expired = decide_expiry(c, date(2025, 11, 1), NOW)
    assert expired is not None
    c, statement = add_doc(expired.customer, DT.bank_statement, issue=date(2025, 6, 1))
    change = ok(verify(c, statement))
    assert kyc_events(change) == [(K.in_progress, K.completed, S.suspended)]


def test_verifying_a_document_submitted_before_kyc_expired_resumes_and_completes_it() -> None:
    c = with_verified(registered(), INDIVIDUAL_DOCS)
    c, statement = add_doc(c, DT.bank_statement, issue=date(2025, 6, 1))
    expired = decide_expiry(c, date(2025, 11, 1), NOW)
    assert expired is not None and expired.customer.kyc_status is K.expired
    change = ok(verify(expired.customer, statement, today=date(2025, 11, 1)))
    assert kyc_events(change) == [(K.expired, K.in_progress, S.active), (K.in_progress, K.completed, S.active)]


def test_expiry_of_an_extra_document_leaves_kyc_completed() -> None:
    c = with_verified(registered(), (*INDIVIDUAL_DOCS, DT.visa))  # visa issued 1 May 2025: valid through 30 Apr 2026
    c = c.model_copy(update={"documents": [d.model_copy(update={"valid_until": date(2027, 1, 1)})
                                           if d.document_type is not DT.visa else d for d in c.documents]})
    change = decide_expiry(c, date(2026, 5, 1), NOW)
    assert change is not None and change.customer.kyc_status is K.completed and change.events == ()
    assert change.customer.documents[-1].status is D.expired


def test_expiry_notices_are_sent_once_for_the_notice_day_window() -> None:
    c = with_verified(registered(), INDIVIDUAL_DOCS)  # bill valid through 31 Oct 2025: notice day 1 Oct
    assert expiry_notices(c, date(2025, 9, 29), date(2025, 9, 30), NOW) == ()
    (notice,) = expiry_notices(c, date(2025, 9, 26), date(2025, 10, 1), NOW)  # a weekend was skipped
    assert (notice.document_type, notice.valid_until) == (DT.utility_bill, date(2025, 10, 31))
    assert expiry_notices(c, date(2025, 10, 1), date(2025, 10, 2), NOW) == ()


# --- required documents --------------------------------------------------------------------


def _docs(c: CustomerView, doc_types: tuple[DocumentType, ...]) -> list:  # type: ignore[type-arg]
    return with_verified(c, doc_types).documents


@pytest.mark.parametrize(
    "customer_type, dob, doc_types, missing",
    [
        (CustomerType.individual, date(1990, 1, 1), (), ("identity", "proof_of_address", "photo")),
        (CustomerType.individual, date(1990, 1, 1), (DT.national_id, DT.bank_statement, DT.photo), ()),
        (CustomerType.individual, date(1990, 1, 1), (DT.drivers_license, DT.utility_bill, DT.photo), ("identity",)),
        (CustomerType.corporate, date(2001, 1, 1), (), ("registration_certificate", "tax_registration", "identity")),
        (CustomerType.corporate, date(2001, 1, 1), (DT.registration_certificate, DT.tax_registration, DT.passport), ()),
        (CustomerType.joint, date(1990, 1, 1), INDIVIDUAL_DOCS, ("joint_declaration",)),
        (CustomerType.joint, date(1990, 1, 1), (*INDIVIDUAL_DOCS, DT.joint_declaration), ()),
        (CustomerType.minor, date(2015, 1, 1), INDIVIDUAL_DOCS, ("birth_certificate", "guardian_identity")),
        (CustomerType.minor, date(2015, 1, 1), (DT.birth_certificate, DT.guardian_identity, DT.photo), ()),
    ],
)
def test_required_document_sets(customer_type, dob, doc_types, missing) -> None:  # type: ignore[no-untyped-def]
    c = registered(customer_type=customer_type, date_of_birth=dob)
    assert missing_documents(customer_type, _docs(c, doc_types), TODAY) == missing


def test_pending_rejected_and_expired_documents_do_not_count() -> None:
    c, _ = add_doc(registered(), DT.passport)
    c, bill = add_doc(c, DT.utility_bill)
    c = ok(reject(c, bill)).customer
    c = with_verified(c, (DT.photo,))
    assert missing_documents(CustomerType.individual, c.documents, TODAY) == ("identity", "proof_of_address")
    c = with_verified(c, (DT.passport, DT.utility_bill))
    assert missing_documents(CustomerType.individual, c.documents, TODAY) == ()
    assert missing_documents(CustomerType.individual, c.documents, date(2025, 11, 1)) == ("proof_of_address",)


# --- risk (banking-rules §9) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "customer_type, turnover, pep, expected",
    [
        (CustomerType.individual, 5_000_000, False, RiskCategory.low),  # 50,000.00
        (CustomerType.individual, 15_000_000, False, RiskCategory.medium),  # 150,000.00
        (CustomerType.corporate, 15_000_000, False, RiskCategory.high),
        (CustomerType.individual, 5_000_000, True, RiskCategory.high),
        (CustomerType.individual, 10_000_000, False, RiskCategory.low),  # 100,000.00 is not above
        (CustomerType.individual, 10_000_001, False, RiskCategory.medium),
        (CustomerType.individual, 100_000_000, False, RiskCategory.medium),
        (CustomerType.individual, 100_000_001, False, RiskCategory.high),
        (CustomerType.corporate, 5_000_000, False, RiskCategory.medium),
        (CustomerType.individual, None, False, RiskCategory.low),
    ],
)
def test_risk_reference_values(customer_type, turnover, pep, expected) -> None:  # type: ignore[no-untyped-def]
    assert assess_risk(customer_type, turnover, pep, ["IN"], NO_HIGH_RISK) is expected


def test_a_high_risk_country_of_nationality_or_address_is_high() -> None:
    assert assess_risk(CustomerType.individual, 0, False, ["IN", None, "KP"], frozenset({"KP"})) is RiskCategory.high
    assert registered(nationality="KP").risk_category is RiskCategory.low  # not configured high risk
    c = ok(decide_registration(register_cmd(nationality="KP"), "C1", TODAY, NOW, frozenset({"KP"}))).customer
    assert c.risk_category is RiskCategory.high


def test_annual_income_scores_when_no_turnover_is_declared() -> None:
    assert registered(expected_annual_turnover=None, annual_income=15_000_000).risk_category is RiskCategory.medium


def test_high_risk_corporate_completes_kyc_only_with_source_of_funds() -> None:
    c = registered(customer_type=CustomerType.corporate, first_name=None, last_name="Acme Pvt Ltd",
                   date_of_birth=date(2001, 1, 1), expected_annual_turnover=15_000_000)
    assert c.risk_category is RiskCategory.high
    c = with_verified(c, (DT.registration_certificate, DT.tax_registration, DT.passport))
    assert (c.kyc_status, c.status) == (K.in_progress, S.inactive)
    change = ok(update(c, source_of_funds="trade"))
    assert (change.customer.kyc_status, change.customer.status) == (K.completed, S.active)
    assert [type(e) for e in change.events] == [CustomerUpdated, CustomerKycStatusChanged]


def test_becoming_pep_rescores_to_high_but_never_scores_away_very_high() -> None:
    c = registered()
    change = ok(update(c, pep=True))
    assert change.customer.risk_category is RiskCategory.high
    (risk,) = [e for e in change.events if isinstance(e, CustomerRiskChanged)]
    assert (risk.old_risk_category, risk.new_risk_category) == (RiskCategory.low, RiskCategory.high)
    officer_set = c.model_copy(update={"risk_category": RiskCategory.very_high})
    change = ok(update(officer_set, expected_annual_turnover=1))
    assert change.customer.risk_category is RiskCategory.very_high
    assert not any(isinstance(e, CustomerRiskChanged) for e in change.events)


# --- age and dates ---------------------------------------------------------------------------


def test_minor_until_the_18th_birthday() -> None:
    dob = date(2007, 6, 15)
    assert is_minor(dob, date(2025, 6, 14)) and age_years(dob, date(2025, 6, 14)) == 17
    assert not is_minor(dob, date(2025, 6, 15)) and age_years(dob, date(2025, 6, 15)) == 18
    leapling = date(2008, 2, 29)
    assert is_minor(leapling, date(2026, 2, 28)) and not is_minor(leapling, date(2026, 3, 1))


def test_customer_type_must_match_age() -> None:
    seventeen = date(2007, 6, 16)
    refused(decide_registration(register_cmd(date_of_birth=seventeen), "C1", TODAY, NOW, NO_HIGH_RISK),
            CustomerError.customer_type_mismatch)
    refused(decide_registration(register_cmd(customer_type=CustomerType.minor), "C1", TODAY, NOW, NO_HIGH_RISK),
            CustomerError.customer_type_mismatch)
    assert registered(customer_type=CustomerType.minor, date_of_birth=seventeen).customer_type is CustomerType.minor
    assert registered(date_of_birth=date(2007, 6, 15)).customer_type is CustomerType.individual
    assert registered(customer_type=CustomerType.corporate, date_of_birth=date(2020, 1, 1)).status is S.inactive


@pytest.mark.parametrize(
    "doc_type, issue, expiry, last_day",
    [
        (DT.passport, date(2015, 3, 10), None, date(2025, 3, 9)),
        (DT.national_id, date(2016, 2, 29), None, date(2026, 2, 27)),
        (DT.drivers_license, date(2020, 7, 1), None, date(2025, 6, 30)),
        (DT.utility_bill, date(2024, 1, 10), None, date(2024, 7, 9)),
        (DT.bank_statement, date(2024, 8, 31), None, date(2025, 2, 27)),
        (DT.visa, date(2025, 1, 1), None, date(2025, 12, 31)),
        (DT.residence_permit, date(2024, 5, 20), None, date(2026, 5, 19)),
        (DT.passport, date(2015, 3, 10), date(2030, 1, 1), date(2030, 1, 1)),  # a printed date wins
        (DT.photo, date(2000, 1, 1), None, None),
        (DT.birth_certificate, date(2010, 1, 1), None, None),
    ],
)
def test_document_validity(doc_type, issue, expiry, last_day) -> None:  # type: ignore[no-untyped-def]
    assert valid_until(doc_type, issue, expiry) == last_day


def test_expired_only_after_the_last_valid_day() -> None:
    assert not is_expired(date(2025, 3, 9), date(2025, 3, 9))
    assert is_expired(date(2025, 3, 9), date(2025, 3, 10))
    assert not is_expired(None, date(9999, 1, 1))
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, valid",
    [("+919812345678", True), ("+14155552671", True), ("+12", True), ("+123456789012345", True),
     ("+1234567890123456", False), ("919812345678", False), ("+0123456", False), ("+1", False),
     ("+91 98123 45678", False), ("", False)],
)
def test_phone_must_be_e164(value: str, valid: bool) -> None:
    assert is_valid_phone(value) is valid


@pytest.mark.parametrize(
    "value, valid",
    [("a@b.in", True), ("first.last+tag@mail.example.com", True), ("a@b", False), ("a@.com", False),
     ("a@b..com", False), ("a b@c.com", False), ("@c.com", False), ("a@@c.com", False), ("x" * 250 + "@c.com", False)],
)
def test_email_syntax(value: str, valid: bool) -> None:
    assert is_valid_email(value) is valid


def test_exactly_one_primary_address() -> None:
    home, work = Address(street="1 A St", city="Pune"), Address(street="2 B St", city="Pune", is_primary=True)
    assert [a.is_primary for a in with_one_primary([home, home])] == [True, False]  # type: ignore[union-attr]
    assert [a.is_primary for a in with_one_primary([home, work])] == [False, True]  # type: ignore[union-attr]
    refused(with_one_primary([work, work]), CustomerError.multiple_primary)  # type: ignore[arg-type]
    refused(with_one_primary([]), CustomerError.missing_address)  # type: ignore[arg-type]


def test_contacts_merge_email_and_phone_without_repeats() -> None:
    extra = [Contact(contact_type=ContactType.email, value="a@b.in", is_primary=True),
             Contact(contact_type=ContactType.phone, value="+912012345678")]
    merged = merge_contacts("a@b.in", "+919812345678", extra)
    assert isinstance(merged, list)
    assert [(c.contact_type, c.value, c.is_primary) for c in merged] == [
        (ContactType.mobile, "+919812345678", False),
        (ContactType.email, "a@b.in", True),
        (ContactType.phone, "+912012345678", False),
    ]
    refused(merge_contacts("a@b.in", "+919812345678", [Contact(contact_type=ContactType.phone, value="020 1234")]),
            CustomerError.invalid_phone)
    refused(merge_contacts("a@b.in", "+919812345678", [Contact(contact_type=ContactType.email, value="nope")]),
            CustomerError.invalid_email)


@pytest.mark.parametrize(
    "overrides, code",
    [
        ({"first_name": None}, CustomerError.invalid_name),
        ({"last_name": "  "}, CustomerError.invalid_name),
        ({"date_of_birth": TODAY + timedelta(days=1)}, CustomerError.invalid_date_of_birth),
        ({"email": "not-an-email"}, CustomerError.invalid_email),
        ({"addresses": [Address(street="a", city="b", is_primary=True)] * 2}, CustomerError.multiple_primary),
    ],
)
def test_registration_refusals(overrides: dict[str, object], code: CustomerError) -> None:
    refused(decide_registration(register_cmd(**overrides), "C1", TODAY, NOW, NO_HIGH_RISK), code)


# --- update ------------------------------------------------------------------------------------


def test_update_refuses_a_stale_version_and_ignores_a_no_op() -> None:
    c = registered()
    refused(update(c, expected_version=2, occupation="x"), CustomerError.version_conflict)
    same = ok(update(c, expected_version=1, first_name="Asha"))
    assert same.customer == c and same.events == ()


def test_changing_the_email_rewrites_its_contact_and_keeps_other_contacts() -> None:
    extra = Contact(contact_type=ContactType.phone, value="+912012345678", is_primary=True)
    c = registered(contacts=[extra])
    change = ok(update(c, email="new@example.in"))
    assert [(x.value, x.is_primary) for x in change.customer.contacts] == [
        ("+919812345678", False), ("new@example.in", False), ("+912012345678", True),
    ]
    phoned = ok(update(change.customer, phone="+919800000000")).customer
    assert [x.value for x in phoned.contacts] == ["+919800000000", "new@example.in", "+912012345678"]
    (event,) = change.events
    assert isinstance(event, CustomerUpdated)
    assert event.changed_fields == ["email", "contacts"] and event.version == 2 == change.customer.version


def test_update_revalidates_the_profile() -> None:
    c = registered()
    refused(update(c, date_of_birth=date(2010, 1, 1)), CustomerError.customer_type_mismatch)
    refused(update(c, email="bad@"), CustomerError.invalid_email)
    refused(update(c, addresses=[Address(street="a", city="b", is_primary=True)] * 2), CustomerError.multiple_primary)


# --- customer status -------------------------------------------------------------------------


def _cmd(kind: type, c: CustomerView):  # type: ignore[no-untyped-def]
    return kind(customer_id=c.customer_id, actor="ops", reason="because")


def test_suspend_reactivate_close() -> None:
    inactive = registered()
    refused(decide_suspend(inactive, _cmd(SuspendCustomer, inactive), NOW), CustomerError.invalid_transition)
    # Reactivation must not let an officer skip onboarding: only KYC completion activates.
    refused(decide_reactivate(inactive, _cmd(ReactivateCustomer, inactive), NOW), CustomerError.invalid_transition)
    active = with_verified(inactive, INDIVIDUAL_DOCS)
    refused(decide_reactivate(active, _cmd(ReactivateCustomer, active), NOW), CustomerError.invalid_transition)
    change = ok(decide_suspend(active, _cmd(SuspendCustomer, active), NOW))
    suspended = change.customer
    assert (suspended.status, suspended.status_changed_by, suspended.status_reason) == (S.suspended, "ops", "because")
    (event,) = change.events
    assert isinstance(event, CustomerSuspended)
    assert (event.old_status, event.status, event.kyc_status) == (S.active, S.suspended, K.completed)
    assert ok(decide_reactivate(suspended, _cmd(ReactivateCustomer, suspended), NOW)).customer.status is S.active
    refused(decide_close(suspended, _cmd(CloseCustomer, suspended), 2, NOW), CustomerError.close_refused_open_products)
    change = ok(decide_close(suspended, _cmd(CloseCustomer, suspended), 0, NOW))
    assert change.customer.status is S.closed and isinstance(change.events[0], CustomerClosed)


def test_inactive_customer_can_be_closed_and_a_closed_customer_refuses_everything() -> None:
    c, doc_id = add_doc(registered(), DT.passport)
    closed = ok(decide_close(c, _cmd(CloseCustomer, c), 0, NOW)).customer
    for result in (
        decide_close(closed, _cmd(CloseCustomer, closed), 0, NOW),
        decide_suspend(closed, _cmd(SuspendCustomer, closed), NOW),
        decide_reactivate(closed, _cmd(ReactivateCustomer, closed), NOW),
        update(closed, occupation="x"),
        verify(closed, doc_id),
        reject(closed, doc_id),
        decide_add_document(closed, AddKycDocument(customer_id=closed.customer_id, document_id=uuid4(),
                            document_type=DT.photo, number="1", issuer="x", issue_date=TODAY), TODAY, NOW),
    ):
        refused(result, CustomerError.customer_closed)
    assert decide_expiry(closed, date(2040, 1, 1), NOW) is None


def test_summary_carries_the_full_name() -> None:
    s = summary(registered(middle_name="K"))
    assert (s.name, s.status, s.kyc_status) == ("Asha K Rao", S.inactive, K.pending)


# --- property: any sequence of commands keeps the customer consistent -------------------------

ACTIONS = st.lists(
    st.tuples(st.sampled_from(["add", "add", "verify", "verify", "verify", "verify", "reject", "expire"]),
              st.sampled_from([*INDIVIDUAL_DOCS, DT.national_id, DT.bank_statement, DT.visa]), st.integers(0, 200)),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(ACTIONS)
def test_any_document_journey_keeps_kyc_and_status_consistent(actions: list[tuple[str, DocumentType, int]]) -> None:
    c, today, was_completed = registered(), TODAY, False
    for doc_type in INDIVIDUAL_DOCS:  # submitted up front, so that completion is often reached
        c, _ = add_doc(c, doc_type)
    for action, doc_type, n in actions:
        pending = [d.document_id for d in c.documents if d.status is D.pending]
        result: Change | Refusal | None
        if action == "add":
            cmd = AddKycDocument(
                customer_id=c.customer_id, document_id=uuid4(), document_type=doc_type, number="1", issuer="x",
                issue_date=today - timedelta(days=n % 30),
            )
            result = decide_add_document(c, cmd, today, NOW)
        elif action in ("verify", "reject") and pending:
            target = pending[n % len(pending)]
            result = verify(c, target, today) if action == "verify" else reject(c, target)
        elif action == "expire":
            today += timedelta(days=n)
            result = decide_expiry(c, today, NOW)
        else:
            continue
        if not isinstance(result, Change):
            continue
        before, c = c, result.customer
        assert c.version in (before.version, before.version + 1)
        for old_doc in before.documents:
            new_doc = next(d for d in c.documents if d.document_id == old_doc.document_id)
            assert new_doc.status == old_doc.status or (old_doc.status, new_doc.status) in DOCUMENT_LEGAL
        steps = kyc_events(result)
        assert all((old, new) in KYC_LEGAL for old, new, _ in steps)
        assert (steps[-1][1] if steps else before.kyc_status) == c.kyc_status
        if c.kyc_status is K.completed and before.kyc_status is not K.completed:
            assert missing_documents(c.customer_type, c.documents, today) == ()
        was_completed |= c.kyc_status is K.completed
        assert (c.status is S.active) == was_completed  # active only once KYC has completed, and then for good
