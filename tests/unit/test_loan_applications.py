"""Loan applications, pure (workers/loan/domain/applications.py): where each action leads, an
application within its product, eligibility, maker-checker, and underwriting's view."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from uuid import uuid4

import pytest

from contracts.ledger import bank_account_id
from contracts.loan import ApplicationStatus as S
from contracts.loan import Band, LoanApplicationView, LoanError, LoanProductView, Outcome
from workers.loan.domain import applications as domain
from workers.loan.domain.accrual import Receipt
from workers.loan.domain.applications import LinkedAccount, Refusal, Standing
from workers.loan.domain.products import default_products

NOW = dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)
CUSTOMER = uuid4()


def product(code: str = "business", **changes: object) -> LoanProductView:
    terms = default_products()[code].model_copy(update=changes)
    return LoanProductView(**terms.model_dump(), code=code, version=1, defined_by="system", defined_at=NOW)


def application(**changes: object) -> LoanApplicationView:
    """§9's first underwriting row: business 300,000.00; income 60,000.00; EMI 10,000.00; 760; 6 years."""
    fields = dict(application_id=uuid4(), customer_id=CUSTOMER, product_code="business", product_version=1,
                  linked_account_id=uuid4(), purpose="working capital", principal=30_000_000, currency="INR", months=36,
                  monthly_income=6_000_000, existing_emi=1_000_000, credit_score=760, employment_months=72, collateral=[],
                  status=S.submitted, created_by="cust-1", submitted_by="cust-1", created_at=NOW, updated_at=NOW)  # fmt: skip
    return LoanApplicationView(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "action", "to"), [
    (S.draft, "submit", S.submitted), (S.submitted, "underwrite", S.under_review), (S.submitted, "approve", S.approved),
    (S.under_review, "approve", S.approved), (S.under_review, "reject", S.rejected), (S.approved, "cancel", S.cancelled),
    (S.draft, "cancel", S.cancelled),
])  # fmt: skip
def test_each_action_leads_where_section_5_says(status: S, action: domain.Action, to: S) -> None:
    assert domain.transition(status, action) == to


@pytest.mark.parametrize(("status", "action"), [
    (S.draft, "approve"), (S.draft, "underwrite"), (S.approved, "approve"), (S.rejected, "cancel"), (S.cancelled, "submit"),
    (S.under_review, "underwrite"), (S.approved, "reject"),
])  # fmt: skip
def test_an_action_out_of_turn_is_refused(status: S, action: domain.Action) -> None:
    refused = domain.transition(status, action)
    assert isinstance(refused, Refusal) and refused.code == LoanError.invalid_transition


def test_an_application_fits_its_product() -> None:
    narrow = product(max_principal=20_000_000, min_months=12, max_months=60)
    assert domain.terms_refusal(narrow, 20_000_000, 12, "INR") is None
    assert "lends 100000 to 20000000" in domain.terms_refusal(narrow, 20_000_001, 12, "INR").message  # type: ignore[union-attr]
    assert "runs 12 to 60 months" in domain.terms_refusal(narrow, 1_000_000, 6, "INR").message  # type: ignore[union-attr]
    assert "lends in INR" in domain.terms_refusal(narrow, 1_000_000, 12, "USD").message  # type: ignore[union-attr]


def test_only_an_active_customer_with_kyc_and_their_own_active_account_is_eligible() -> None:
    ok, account = Standing("active", "completed"), LinkedAccount(CUSTOMER, "INR", "active")
    assert domain.eligibility_refusal(CUSTOMER, "INR", ok, account) is None
    for standing, linked in ((None, account), (Standing("inactive", "pending"), account), (Standing("active", "expired"), account),
                             (ok, None), (ok, LinkedAccount(uuid4(), "INR", "active")), (ok, LinkedAccount(CUSTOMER, "USD", "active")),
                             (ok, LinkedAccount(CUSTOMER, "INR", "frozen"))):  # fmt: skip
        refused = domain.eligibility_refusal(CUSTOMER, "INR", standing, linked)
        assert refused is not None and refused.code == LoanError.not_eligible


def test_approval_is_maker_checker_within_what_was_asked_and_the_products_rate() -> None:
    app, business = application(), product()
    allowed = ["loans:approve"]
    assert domain.approval_refusal(app, "officer-2", allowed, 30_000_000, 1_000, business) is None
    assert domain.approval_refusal(app, "officer-2", [], 30_000_000, 1_000, business).code == LoanError.forbidden  # type: ignore[union-attr]
    same = domain.approval_refusal(app.model_copy(update={"submitted_by": "officer-2"}), "officer-2", allowed, 1, 1, business)
    assert same is not None and same.code == LoanError.same_maker
    assert domain.approval_refusal(app, "officer-2", allowed, 30_000_001, 1_000, business).code == LoanError.invalid_approval  # type: ignore[union-attr]
    assert domain.approval_refusal(app, "officer-2", allowed, 30_000_000, 2_001, business).code == LoanError.invalid_approval  # type: ignore[union-attr]


def test_underwriting_reads_the_application_and_caps_the_rate_at_the_products_own_maximum() -> None:
    view = domain.assessment_view(domain.assessment_of(application(), product()))
    assert (view.assessment_emi, view.dti[:6], view.score, view.band, view.recommended_rate_bps, view.outcome) == (
        667_333, "0.2778", -25, Band.low, 1_000, Outcome.recommend)  # §9's first row
    # §9's third row (score 55, 15.5%) under a business product capped at 12%: recommended 12%.
    risky = application(principal=40_000_000, monthly_income=3_000_000, existing_emi=300_000, credit_score=640,
                        employment_months=24)  # fmt: skip
    capped = domain.assessment_view(domain.assessment_of(risky, product(max_rate_bps=1_200)))
    assert (capped.score, capped.band, capped.recommended_rate_bps, capped.outcome) == (55, Band.high, 1_200, Outcome.manual_review)


def test_a_disbursement_is_one_linked_chain_from_the_loans_own_account() -> None:
    from contracts.ledger import bank_account_id
    from workers.loan.domain import disbursement
    from workers.loan.domain.schedule import net_disbursement

    loan_id, linked = uuid4(), uuid4()
    net, fee = net_disbursement(10_000_000, 100)
    assert (net, fee) == (9_900_000, 100_000)  # §9: 100,000.00 with a 1% processing fee
    to_customer, to_fees = disbursement.transfers(loan_id, linked, "INR", net, fee, "LN0000000001")
    assert (to_customer.debit_account_id, to_customer.credit_account_id, to_customer.amount, to_customer.flags.linked) == (
        loan_id, linked, 9_900_000, True)
    assert (to_fees.credit_account_id, to_fees.amount, to_fees.flags.linked) == (bank_account_id("fee_income", "INR"), 100_000, False)
    assert [t.id for t in disbursement.transfers(loan_id, linked, "INR", net, fee, "x")] == [to_customer.id, to_fees.id]  # a retry: exists
    [alone] = disbursement.transfers(loan_id, linked, "INR", 1_000_000, 0, "LN0000000002")
    assert not alone.flags.linked  # no fee: a chain of one
    account = disbursement.ledger_account(loan_id, CUSTOMER, "INR", "LN0000000001")
    assert (account.code, account.flags.credits_must_not_exceed_debits, account.owner_id, account.title) == (
        "loan_principal", True, CUSTOMER, "LN0000000001")
    approved = application(status=S.approved)
    assert disbursement.disbursement_refusal(approved) is None
    assert disbursement.disbursement_refusal(approved.model_copy(update={"loan_id": uuid4()})) is not None
    assert disbursement.disbursement_refusal(application()).code == LoanError.invalid_transition  # type: ignore[union-attr]


def test_an_instalment_is_two_balancing_debits_interest_first_and_a_shortfall_leaves_it_partly_paid() -> None:
    from contracts.ledger import bank_account_id
    from contracts.loan import InstalmentStatus
    from workers.loan.domain import repayment

    due = repayment.Due(loan_id=uuid4(), number=2, principal=164_173, interest=8_375, linked_account_id=uuid4(), currency="INR",
                        loan_number="LN0000000007", receivable=8_375)  # fmt: skip
    interest, principal = repayment.transfers(due)
    assert (interest.credit_account_id, interest.amount, interest.code) == (
        bank_account_id("loan_interest_receivable", "INR"), 8_375, "loan_interest")  # accrued by its due date: the receivable clears
    before_accrual, _ = repayment.transfers(repayment.Due(**{**{f: getattr(due, f) for f in due.__slots__}, "receivable": 0}))
    assert before_accrual.credit_account_id == bank_account_id("interest_income", "INR") and before_accrual.id != interest.id
    assert (principal.credit_account_id, principal.amount, principal.code) == (due.loan_id, 164_173, "loan_repayment")
    assert all(t.flags.balancing_debit and not t.flags.linked and t.debit_account_id == due.linked_account_id
               for t in (interest, principal))  # fmt: skip
    assert [t.id for t in repayment.transfers(due)] == [interest.id, principal.id]  # asked again: the same ids
    assert repayment.settled(due, 8_375, 164_173) == InstalmentStatus.paid
    assert repayment.settled(due, 8_375, 41_625) == InstalmentStatus.partially_paid
    assert repayment.transfers(repayment.Due(due.loan_id, 6, 0, 0, due.linked_account_id, "INR", "LN1")) == []  # a 0.00 tail


def test_a_payment_goes_to_the_oldest_due_first_interest_before_principal_and_no_more_or_less_than_allowed() -> None:
    from workers.loan.domain import repayment
    from workers.loan.domain.repayment import Owed, Share

    owed = [Owed(2, 0, 122_548), Owed(3, 6_733, 165_815)]  # 2: partly paid (interest in); 3: due whole
    assert repayment.allocate(owed, 122_548) == [Share(2, 0, 122_548)]
    assert repayment.allocate(owed, 130_000) == [Share(2, 0, 122_548), Share(3, 6_733, 719)]  # interest before principal
    assert repayment.allocate(owed, 100)[0] == LoanError.amount_below_due  # type: ignore[index]
    assert repayment.allocate(owed, 295_097)[0] == LoanError.overpayment_refused  # type: ignore[index]
    assert repayment.allocate(owed, 295_096) == [Share(2, 0, 122_548), Share(3, 6_733, 165_815)]
    assert repayment.allocate([], 1)[0] == LoanError.nothing_due  # type: ignore[index]
    loan_id, payment_id, linked = uuid4(), uuid4(), uuid4()
    accrued = Receipt(to_receivable=6_733, to_income=0, released=0)
    interest, principal = repayment.payment_transfers(loan_id, payment_id, linked, "INR", "LN1", repayment.allocate(owed, 130_000), accrued)  # type: ignore[arg-type]
    assert (interest.amount, principal.amount, principal.credit_account_id) == (6_733, 123_267, loan_id)
    assert interest.credit_account_id == bank_account_id("loan_interest_receivable", "INR")  # accrued: the receivable clears
    assert interest.flags.linked and not principal.flags.linked and not principal.flags.balancing_debit  # whole or nothing
    # A defaulted loan's interest (accrued to suspense) is income once received: one more leg, bank-side.
    *_, released = repayment.payment_transfers(loan_id, payment_id, linked, "INR", "LN1", repayment.allocate(owed, 130_000),  # type: ignore[arg-type]
                                               Receipt(6_733, 0, released=6_733))  # fmt: skip
    assert (released.debit_account_id, released.credit_account_id, released.amount) == (
        bank_account_id("interest_suspense", "INR"), bank_account_id("interest_income", "INR"), 6_733)
    assert not released.flags.linked  # the chain's last


@pytest.mark.parametrize(("dpd", "bucket"), [(0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"),
                                             (61, "61-90"), (90, "61-90"), (91, "91+"), (400, "91+")])  # fmt: skip
def test_days_past_due_fall_in_section_5s_buckets(dpd: int, bucket: str) -> None:
    from workers.loan.domain import repayment

    assert repayment.bucket(dpd).value == bucket


def test_a_loan_turns_overdue_then_defaulted_from_day_91_and_active_only_once_nothing_is_past_due() -> None:
    from contracts.loan import LoanStatus as L
    from workers.loan.domain import repayment

    assert repayment.days_past_due(None, dt.date(2029, 3, 9)) == 0
    assert repayment.days_past_due(dt.date(2029, 3, 8), dt.date(2029, 3, 8)) == 0  # due today: not past due yet
    assert repayment.days_past_due(dt.date(2029, 3, 8), dt.date(2029, 3, 9)) == 1
    assert [repayment.delinquent_status(L.active, d) for d in (0, 1, 90, 91)] == [L.active, L.overdue, L.overdue, L.defaulted]
    assert repayment.delinquent_status(L.defaulted, 5) == L.defaulted  # partly caught up: still NPA
    assert repayment.delinquent_status(L.defaulted, 0) == L.active


def test_penalties_add_up_day_by_day_to_the_rounded_total_and_are_waived_within_the_grace() -> None:
    """§9: 8,884.88 overdue at 2% a year: days 1–3 add 0.49, 0.48, 0.49; 30 days come to 14.61."""
    from workers.loan.domain import repayment
    from workers.loan.domain.repayment import Owed, Share
    from workers.loan.domain.schedule import penalty_minor

    due = dt.date(2029, 4, 8)
    assert repayment.penalty_additions(888_488, 200, due, None, due + dt.timedelta(days=3)) == 49 + 48 + 49
    by_closes = repayment.penalty_additions(888_488, 200, due, None, due + dt.timedelta(days=12)) + repayment.penalty_additions(
        888_488, 200, due, due + dt.timedelta(days=12), due + dt.timedelta(days=30))  # fmt: skip
    assert by_closes == penalty_minor(888_488, 200, 30) == 1_461  # accrued at any closes, the same total
    assert repayment.penalty_additions(888_488, 200, due, None, due) == 0 and repayment.penalty_additions(0, 200, due, None, due + dt.timedelta(days=9)) == 0
    assert repayment.penalty_owed(389, 0, days_late=7, grace_days=7) == 0  # paid on day 7: none
    assert repayment.penalty_owed(389, 100, days_late=8, grace_days=7) == 289
    owed = [Owed(3, 6_733, 84_994, penalty=63)]
    assert repayment.allocate(owed, 84_994)[0] == LoanError.amount_below_due  # type: ignore[index]
    assert repayment.allocate(owed, 91_790) == [Share(3, 6_733, 84_994, 63)]  # penalty, then interest, then principal
    [penalty, interest, principal] = repayment.payment_transfers(uuid4(), uuid4(), uuid4(), "INR", "LN1", [Share(3, 6_733, 84_994, 63)],
                                                                 Receipt(0, 6_733, 0))  # from before accrual: income at once
    assert interest.credit_account_id == bank_account_id("interest_income", "INR")
    assert (penalty.amount, penalty.code, interest.amount, principal.amount) == (63, "penalty", 6_733, 84_994)


def test_the_foreclosure_quote_reproduces_section_9_and_its_chain_leaves_the_loan_owing_nothing() -> None:
    """§9: 100,000.00 at 12% for 12 months, right after instalment 6: 51,492.09 + 2% = 52,521.93;
    15 days later + 253.93 interest = 52,775.86."""
    from contracts.ledger import bank_account_id
    from contracts.loan import Amortization, InterestMethod
    from workers.loan.domain import foreclosure
    from workers.loan.domain.foreclosure import Line
    from workers.loan.domain.schedule import schedule

    disbursed = dt.date(2029, 1, 15)
    drawn = schedule(10_000_000, 1_200, 12, InterestMethod.declining, Amortization.equal_instalments, disbursed)
    lines = [Line(i.number, i.due_date, i.principal, i.interest, i.principal if i.number <= 6 else 0,
                  i.interest if i.number <= 6 else 0, 0, 0, "paid" if i.number <= 6 else "pending")
             for i in drawn.instalments]  # fmt: skip
    sixth = drawn.instalments[5].due_date
    at_once = foreclosure.quote(lines, sixth, disbursed, 1_200, 200, 7)
    assert (at_once.outstanding_principal, at_once.prepayment_charge, at_once.interest, at_once.total) == (5_149_209, 102_984, 0, 5_252_193)
    later = foreclosure.quote(lines, sixth + dt.timedelta(days=15), disbursed, 1_200, 200, 7)
    assert (later.interest, later.total) == (25_393, 5_277_586)
    loan_id = uuid4()
    chain = foreclosure.transfers(loan_id, uuid4(), uuid4(), "INR", "LN1", later, lines)  # a loan from before accrual
    assert [(t.credit_account_id, t.amount) for t in chain] == [(bank_account_id("interest_income", "INR"), 25_393),
                                                                (bank_account_id("fee_income", "INR"), 102_984), (loan_id, 5_149_209)]
    assert [t.flags.linked for t in chain] == [True, True, False] and sum(t.amount for t in chain) == later.total
    # Accrued: 15 of the 7th period's 31 days (its 514.92 interest at 16.61 a day = 249.15) sit in the
    # receivable; the quote's 253.93 clears them and the 4.78 beyond is income at once.
    seventh = drawn.instalments[6]
    assert (seventh.interest, (seventh.due_date - sixth).days) == (51_492, 31)
    accruing = [x if x.number != 7 else replace(x, accrued_interest=15 * (51_492 // 31)) for x in lines]
    accruing = [replace(x, accrued_interest=x.interest) if x.number <= 6 else x for x in accruing]
    chain = foreclosure.transfers(loan_id, uuid4(), customer := uuid4(), "INR", "LN1", later, accruing)
    legs = [(t.debit_account_id == customer, t.credit_account_id, t.amount) for t in chain]
    assert legs == [(True, bank_account_id("loan_interest_receivable", "INR"), 24_915), (True, bank_account_id("interest_income", "INR"), 478),
                    (True, bank_account_id("fee_income", "INR"), 102_984), (True, loan_id, 5_149_209)]  # fmt: skip
    # Defaulted (its accrual in suspense) and foreclosed the day after the due date: the period's
    # accrual of one day is written back from suspense, none of it received.
    suspended = [replace(x, accrued_interest=1_661, suspended_interest=1_661) if x.number == 7 else x for x in accruing]
    next_day = foreclosure.quote(suspended, sixth, disbursed, 1_200, 200, 7)
    *_, back = foreclosure.transfers(loan_id, uuid4(), customer, "INR", "LN1", next_day, suspended)
    assert (back.debit_account_id, back.credit_account_id, back.amount) == (
        bank_account_id("interest_suspense", "INR"), bank_account_id("loan_interest_receivable", "INR"), 1_661)


# --- the review: documents, collateral, stages, a co-applicant (workers/loan/domain/review.py) ----------

REVIEWER = ["loans:review"]


def _document(kind: str, status: str = "pending", added_by: str = "cust-1") -> object:
    from contracts.loan import ApplicationDocument

    return ApplicationDocument(document_id=uuid4(), kind=kind, name=f"{kind} scan", sha256="a" * 64, status=status,
                               added_by=added_by, added_at=NOW)  # type: ignore[arg-type]  # fmt: skip


def test_the_review_moves_one_stage_at_a_time_never_back_never_skipping_with_who_and_when() -> None:
    from contracts.loan import ReviewStage as R
    from workers.loan.domain import review

    verified = [_document(k, "verified") for k in ("identity", "income_proof")]
    at = application(status=S.under_review, documents=verified, **review.first_stage("officer-2", NOW))
    assert [s.value for s in review.STAGES] == ["documents", "credit_check", "valuation", "legal", "committee", "agreement"]
    for to in review.STAGES[1:]:
        at = review.advanced(at, product(), to, "officer-2", REVIEWER, NOW)  # type: ignore[assignment]
        assert isinstance(at, LoanApplicationView) and at.stage == to
    assert [(e.stage, e.by) for e in at.stage_history] == [(s, "officer-2") for s in review.STAGES]
    assert review.advanced(at, product(), R.agreement, "officer-3", REVIEWER, NOW) is at  # there already: unchanged
    past = review.advanced(at, product(), R.documents, "officer-2", REVIEWER, NOW)
    assert isinstance(past, Refusal) and past.code == LoanError.invalid_transition and "last" in past.message
    start = application(status=S.under_review, documents=verified, **review.first_stage("officer-2", NOW))
    for to in (R.valuation, R.agreement):
        skipped = review.advanced(start, product(), to, "officer-2", REVIEWER, NOW)
        assert isinstance(skipped, Refusal) and skipped.code == LoanError.invalid_transition
        assert "after documents comes credit_check" in skipped.message
    on = review.advanced(start, product(), R.credit_check, "officer-2", REVIEWER, NOW)
    back = review.advanced(on, product(), R.documents, "officer-2", REVIEWER, NOW)  # type: ignore[arg-type]
    assert isinstance(back, Refusal) and back.code == LoanError.invalid_transition
    legacy = application(status=S.under_review, documents=verified)  # put under review before stages existed
    assert review.stage_of(legacy) == R.documents
    for status in (S.submitted, S.approved, S.draft):
        refused = review.advanced(application(status=status), product(), R.credit_check, "officer-2", REVIEWER, NOW)
        assert isinstance(refused, Refusal) and refused.code == LoanError.invalid_transition
    unpermitted = review.advanced(start, product(), R.credit_check, "teller-1", ["loans:apply"], NOW)
    assert isinstance(unpermitted, Refusal) and unpermitted.code == LoanError.forbidden


@pytest.mark.parametrize(("code", "kinds"), [
    ("personal", ["identity", "income_proof"]), ("business", ["identity", "income_proof"]),
    ("home", ["identity", "income_proof", "property_papers", "valuation_report"]),
    ("auto", ["identity", "income_proof", "vehicle_papers", "valuation_report"]),
    ("gold", ["identity", "income_proof", "valuation_report"]),
])  # fmt: skip
def test_each_product_requires_its_document_kinds(code: str, kinds: list[str]) -> None:
    from workers.loan.domain import review

    assert [k.value for k in review.required_kinds(product(code))] == kinds
    assert "valuation_report" in [k.value for k in review.required_kinds(product("business", secured=True))]  # defined secured


def test_the_documents_stage_is_left_only_with_nothing_pending_and_each_required_kind_verified() -> None:
    from contracts.loan import ReviewStage as R
    from workers.loan.domain import review

    home = product("home")
    needed = [_document(k, "verified") for k in ("identity", "income_proof", "property_papers", "valuation_report")]
    assert review.documents_refusal(needed, home) is None
    assert review.documents_refusal([*needed, _document("other", "rejected")], home) is None  # a rejected one holds nothing back
    waiting = _document("bank_statement")
    pending = review.documents_refusal([*needed, waiting], home)
    assert pending is not None and pending.code == LoanError.documents_incomplete
    assert pending.details == {"pending": [str(waiting.document_id)], "missing": []}  # type: ignore[attr-defined]
    rejected_papers = [*needed[:2], _document("property_papers", "rejected"), needed[3]]
    missing = review.documents_refusal(rejected_papers, home)
    assert missing is not None and missing.details == {"pending": [], "missing": ["property_papers"]}
    at = application(status=S.under_review, product_code="home", documents=rejected_papers, **review.first_stage("o", NOW))
    refused = review.advanced(at, home, R.credit_check, "officer-2", REVIEWER, NOW)
    assert isinstance(refused, Refusal) and refused.code == LoanError.documents_incomplete


def test_a_secured_product_leaves_valuation_only_with_collateral() -> None:
    from contracts.loan import Collateral, CollateralType
    from contracts.loan import ReviewStage as R
    from workers.loan.domain import review

    needed = [_document(k, "verified") for k in ("identity", "income_proof", "property_papers", "valuation_report")]
    at = application(status=S.under_review, product_code="home", documents=needed, stage=R.valuation)
    refused = review.advanced(at, product("home"), R.legal, "officer-2", REVIEWER, NOW)
    assert isinstance(refused, Refusal) and refused.code == LoanError.collateral_missing
    flat = Collateral(type=CollateralType.property, description="flat 4B", value=85_000_000)
    moved = review.advanced(at.model_copy(update={"collateral": [flat]}), product("home"), R.legal, "officer-2", REVIEWER, NOW)
    assert isinstance(moved, LoanApplicationView) and moved.stage == R.legal
    assert isinstance(review.advanced(at, product("personal"), R.legal, "officer-2", REVIEWER, NOW), LoanApplicationView)  # unsecured


def test_documents_are_bounded_added_only_before_a_decision_and_reviewed_by_another_officer_with_the_permission() -> None:
    from contracts.loan import MAX_DOCUMENTS, DocumentDecision, DocumentStatus
    from workers.loan.domain import review

    assert review.adding_refusal(application(status=S.draft)) is None
    full = application(documents=[_document("other") for _ in range(MAX_DOCUMENTS)])
    assert review.adding_refusal(full).code == LoanError.too_many_documents  # type: ignore[union-attr]
    for status in (S.approved, S.rejected, S.cancelled, S.disbursed):
        assert review.adding_refusal(application(status=status)).code == LoanError.invalid_transition  # type: ignore[union-attr]
    doc = _document("identity", added_by="officer-1")
    assert review.reviewed(doc, DocumentDecision.verified, "officer-1", REVIEWER, None, NOW).code == LoanError.same_maker  # type: ignore[union-attr]
    assert review.reviewed(doc, DocumentDecision.verified, "cust-1", [], None, NOW).code == LoanError.forbidden  # type: ignore[union-attr]
    rejected = review.reviewed(doc, DocumentDecision.rejected, "officer-2", REVIEWER, "blurred", NOW)
    assert (rejected.status, rejected.reviewed_by, rejected.rejection_reason) == (DocumentStatus.rejected, "officer-2", "blurred")  # type: ignore[union-attr]
    assert review.reviewed(rejected, DocumentDecision.rejected, "officer-3", REVIEWER, "again", NOW) is rejected  # type: ignore[arg-type]
    other_way = review.reviewed(rejected, DocumentDecision.verified, "officer-3", REVIEWER, None, NOW)  # type: ignore[arg-type]
    assert other_way.code == LoanError.document_already_reviewed and other_way.details == {"status": "rejected"}  # type: ignore[union-attr]


def test_document_and_collateral_fields_are_bounded_and_one_line() -> None:
    from pydantic import ValidationError

    from contracts.loan import AddApplicationDocument, Collateral, SetApplicationCollateral, VerifyApplicationDocument

    fields = dict(application_id=uuid4(), actor="cust-1", document_id=uuid4(), kind="identity", name="passport", sha256="0f" * 32)
    AddApplicationDocument(**fields)  # type: ignore[arg-type]
    for bad in ({"name": "x" * 141}, {"name": "pass\nport"}, {"name": "\x1b[31m"}, {"name": ""}, {"sha256": "0F" * 32},
                {"sha256": "0f" * 31}, {"kind": "selfie"}, {"uploaded": True}):  # fmt: skip
        with pytest.raises(ValidationError):
            AddApplicationDocument(**{**fields, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):  # a rejection says why
        VerifyApplicationDocument(application_id=uuid4(), actor="o", document_id=uuid4(), decision="rejected")  # type: ignore[arg-type]
    flat = Collateral(type="property", description="flat 4B", value=1, valuer="Acme Valuers")  # type: ignore[arg-type]
    SetApplicationCollateral(application_id=uuid4(), actor="o", collateral=[flat] * 5)
    for bad_list in ([flat] * 6, [flat.model_copy(update={"description": "flat\r\n4B"})]):
        with pytest.raises(ValidationError):
            SetApplicationCollateral(application_id=uuid4(), actor="o", collateral=bad_list)
    with pytest.raises(ValidationError):
        Collateral(type="property", description="flat", value=1, valuer="a\tb")  # type: ignore[arg-type]


def test_collateral_is_the_owners_while_a_draft_then_an_officers_and_never_valued_in_the_future() -> None:
    from contracts.loan import Collateral
    from workers.loan.domain import review

    today = dt.date(2026, 12, 7)
    valued = [Collateral(type="property", description="flat", value=1, valued_on=today)]  # type: ignore[arg-type]
    assert review.collateral_refusal(S.draft, ["loans:apply"], valued, today) is None
    assert review.collateral_refusal(S.submitted, ["loans:apply"], valued, today).code == LoanError.forbidden  # type: ignore[union-attr]
    assert review.collateral_refusal(S.under_review, REVIEWER, valued, today) is None
    assert review.collateral_refusal(S.approved, REVIEWER, valued, today).code == LoanError.invalid_transition  # type: ignore[union-attr]
    assert review.collateral_refusal(S.draft, [], valued, today - dt.timedelta(days=1)).code == LoanError.invalid_collateral  # type: ignore[union-attr]
    assert review.collateral_refusal(S.draft, [], valued, None) is None  # no business date learnt yet


def test_a_co_applicant_is_another_active_customer_with_kyc_and_their_income_counts_in_underwriting() -> None:
    from workers.loan.domain import review

    ok = Standing("active", "completed")
    assert review.co_applicant_refusal(application(), None) is None  # none named
    partner = uuid4()
    assert review.co_applicant_refusal(application(co_applicant_id=partner), ok) is None
    for app, standing in ((application(co_applicant_id=CUSTOMER), ok), (application(co_applicant_id=partner), None),
                          (application(co_applicant_id=partner), Standing("active", "pending")),
                          (application(co_applicant_id=partner), Standing("suspended", "completed"))):  # fmt: skip
        refused = review.co_applicant_refusal(app, standing)
        assert refused is not None and refused.code == LoanError.not_eligible and "co-applicant" in refused.message
    # §9's first row with its 60,000.00 income split between the two: the same assessment.
    alone = domain.assessment_of(application(), product())
    together = domain.assessment_of(application(monthly_income=4_000_000, co_applicant_id=partner,
                                                co_applicant_monthly_income=2_000_000), product())  # fmt: skip
    assert (together.dti, together.score) == (alone.dti, alone.score) == (alone.dti, -25)
    assert domain.assessment_of(application(monthly_income=4_000_000), product()).score > -25  # without the co-applicant's
    from pydantic import ValidationError

    from contracts.loan import CreateLoanApplication

    with pytest.raises(ValidationError, match="co_applicant_id"):  # an income needs its earner
        CreateLoanApplication(application_id=uuid4(), customer_id=CUSTOMER, product_code="business", linked_account_id=uuid4(),
                              purpose="x", principal=100_000, currency="INR", months=12, monthly_income=1, employment_months=0,
                              co_applicant_monthly_income=1, actor="cust-1")  # fmt: skip


def test_underwriting_reads_the_collateral_the_application_holds_now() -> None:
    from contracts.loan import Collateral

    home = application(product_code="home", principal=80_000_000, months=240, monthly_income=4_000_000, existing_emi=600_000,
                       credit_score=680, employment_months=6)  # fmt: skip
    missing = domain.assessment_of(home, product("home"))
    assert missing.ltv is None and "collateral_missing" in missing.reasons
    flat = Collateral(type="property", description="flat 4B", value=85_000_000)  # type: ignore[arg-type]
    valued = domain.assessment_of(home.model_copy(update={"collateral": [flat]}), product("home"))
    assert valued.ltv is not None and str(valued.ltv)[:6] == "0.9411" and valued.score == 90  # §9's fourth row
