"""Loan rules, pure (workers/loan/domain): banking-rules §9's loan reference values to the minor
unit, due dates, and properties of every schedule CBS can draw."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.loan import MAX_MONTHS, MAX_PRINCIPAL, MIN_PRINCIPAL, Amortization, InterestMethod, LoanType, Schedule
from workers.loan.domain import schedule as s
from workers.loan.domain import underwriting as u

DECLINING, FLAT = InterestMethod.declining, InterestMethod.flat
EQUAL_INSTALMENTS, EQUAL_PRINCIPAL = Amortization.equal_instalments, Amortization.equal_principal
DISBURSED = dt.date(2028, 1, 31)


def _declining(principal: int, rate_bps: int, months: int) -> Schedule:
    return s.schedule(principal, rate_bps, months, DECLINING, EQUAL_INSTALMENTS, DISBURSED)


# --- §9: EMI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "rate_bps", "months", "emi", "last", "total_interest"),
    [
        (10_000_000, 1_200, 12, 888_488, 888_485, 661_853),  # 100,000.00 at 12% for 12 months
        (5_000_000, 1_250, 24, 236_537, 236_526, 676_877),  # 50,000.00 at 12.5% for 24 months
        (1_000_000, 1_200, 6, 172_548, 172_551, 35_291),  # 10,000.00 at 12% for 6 months
        (100_000_000, 850, 240, 867_823, 867_966, 108_277_663),  # 1,000,000.00 at 8.5% for 240 months
        (1_000_000, 0, 3, 333_333, 333_334, 0),  # 10,000.00 at 0% for 3 months
    ],
)
def test_the_emi_reference_values(principal: int, rate_bps: int, months: int, emi: int, last: int, total_interest: int) -> None:
    assert s.emi_minor(principal, rate_bps, months) == emi
    drawn = _declining(principal, rate_bps, months)
    assert drawn.emi == emi and drawn.instalments[-1].amount == last
    assert drawn.total_interest == total_interest and drawn.total_payable == principal + total_interest
    assert all(i.amount == emi for i in drawn.instalments[:-1])


def test_the_monthly_rate() -> None:
    assert s.monthly_rate(1_200) == Decimal("0.01")
    assert s.monthly_rate(0) == 0
    assert s.monthly_rate(1_250).quantize(Decimal("1e-12")) == Decimal("0.010416666667")


def test_the_six_month_schedule_table() -> None:
    drawn = _declining(1_000_000, 1_200, 6)
    rows = [(i.number, i.amount, i.principal, i.interest, i.balance_after) for i in drawn.instalments]
    assert rows == [
        (1, 172_548, 162_548, 10_000, 837_452),
        (2, 172_548, 164_173, 8_375, 673_279),
        (3, 172_548, 165_815, 6_733, 507_464),
        (4, 172_548, 167_473, 5_075, 339_991),
        (5, 172_548, 169_148, 3_400, 170_843),
        (6, 172_551, 170_843, 1_708, 0),  # the principal is the remainder: 1,708.43
    ]
    assert drawn.currency == "INR" and drawn.method == DECLINING and drawn.amortization == EQUAL_INSTALMENTS
    assert drawn.maturity_date == dt.date(2028, 7, 31) == drawn.instalments[-1].due_date


def test_flat_interest() -> None:
    # 100,000.00 at 12% flat for 12 months: I = 12,000.00; 9,333.33 a month, the 12th 9,333.37.
    assert s.flat_interest_minor(10_000_000, 1_200, 12) == 1_200_000
    drawn = s.schedule(10_000_000, 1_200, 12, FLAT, EQUAL_INSTALMENTS, DISBURSED)
    assert drawn.emi == 933_333 and drawn.total_interest == 1_200_000 and drawn.total_payable == 11_200_000
    assert all((i.principal, i.interest, i.amount) == (833_333, 100_000, 933_333) for i in drawn.instalments[:-1])
    last = drawn.instalments[-1]
    assert (last.principal, last.interest, last.amount, last.balance_after) == (833_337, 100_000, 933_337, 0)


def test_equal_principal() -> None:
    # 12,000.00 at 12% for 3 months: 4,120.00, 4,080.00, 4,040.00.
    drawn = s.schedule(1_200_000, 1_200, 3, DECLINING, EQUAL_PRINCIPAL, DISBURSED)
    assert [(i.amount, i.principal, i.interest) for i in drawn.instalments] == [
        (412_000, 400_000, 12_000), (408_000, 400_000, 8_000), (404_000, 400_000, 4_000),
    ]  # fmt: skip
    assert drawn.emi == 412_000 and drawn.total_interest == 24_000


def test_equal_principal_the_last_takes_the_remainder() -> None:
    drawn = s.schedule(1_000_000, 1_200, 3, DECLINING, EQUAL_PRINCIPAL, DISBURSED)
    assert [i.principal for i in drawn.instalments] == [333_333, 333_333, 333_334]


def test_flat_interest_too_small_to_share_rounds_the_shares_down() -> None:
    # 1,000.00 at 0.01% flat for 360 months: I = 3.00; round(300 / 360) = 1 each would need 3.59.
    drawn = s.schedule(MIN_PRINCIPAL, 1, MAX_MONTHS, FLAT, EQUAL_INSTALMENTS, DISBURSED)
    assert drawn.total_interest == 300
    assert all(i.interest == 0 for i in drawn.instalments[:-1]) and drawn.instalments[-1].interest == 300


def test_an_emi_that_would_repay_early_stops_at_the_balance() -> None:
    # 1,000.00 at 18.99% for 321 months: the EMI (15.93) is almost all interest, and its rounding,
    # compounded for 26 years, repays the principal in 320 instalments; nobody pays past the balance.
    drawn = _declining(MIN_PRINCIPAL, 1_899, 321)
    assert drawn.emi == 1_593 and all(i.amount == 1_593 for i in drawn.instalments[:319])
    clearing, after = drawn.instalments[319], drawn.instalments[320]
    assert (clearing.principal, clearing.interest, clearing.amount, clearing.balance_after) == (1_202, 19, 1_221, 0)
    assert (after.principal, after.interest, after.amount) == (0, 0, 0) and drawn.maturity_date == after.due_date


def test_flat_with_equal_principal_is_not_drawn() -> None:
    with pytest.raises(AssertionError):
        s.schedule(1_000_000, 1_200, 3, FLAT, EQUAL_PRINCIPAL, DISBURSED)


# --- due dates --------------------------------------------------------------------------------


def test_due_dates_keep_the_disbursement_day_clamped_to_the_months_end() -> None:
    assert s.due_dates(dt.date(2028, 1, 31), 3) == [dt.date(2028, 2, 29), dt.date(2028, 3, 31), dt.date(2028, 4, 30)]
    assert s.due_dates(dt.date(2027, 1, 31), 2) == [dt.date(2027, 2, 28), dt.date(2027, 3, 31)]
    assert s.due_dates(dt.date(2027, 11, 15), 3) == [dt.date(2027, 12, 15), dt.date(2028, 1, 15), dt.date(2028, 2, 15)]
    assert s.due_dates(dt.date(2028, 2, 29), 12)[-1] == dt.date(2029, 2, 28)


# --- §9: penalty, foreclosure, disbursement ---------------------------------------------------


def test_penalty_reference_values() -> None:
    overdue = 888_488  # 8,884.88 at 2% a year
    assert s.penalty_minor(overdue, 200, 30) == 1_461
    assert s.penalty_minor(overdue, 200, 8) == 389  # past the grace: all 8 days count
    assert s.penalty_minor(overdue, 200, 91) == 4_430
    assert s.penalty_minor(overdue, 200, 7) == 0  # paid on day 7: within the grace
    assert [s.penalty_addition_minor(overdue, 200, day) for day in (1, 2, 3)] == [49, 48, 49]


@pytest.mark.parametrize("days", [1, 8, 30, 91, 365])
def test_the_daily_penalty_additions_sum_to_the_rounded_total(days: int) -> None:
    additions = [s.penalty_addition_minor(888_488, 200, day) for day in range(1, days + 1)]
    assert sum(additions) == s.simple_interest_minor(888_488, 200, days) == s.penalty_minor(888_488, 200, days, grace_days=0)


def test_foreclosure_reference_values() -> None:
    balance = _declining(10_000_000, 1_200, 12).instalments[5].balance_after
    assert balance == 5_149_209  # 51,492.09 right after instalment 6
    right_after = s.foreclosure_quote(balance, 1_200, 0)
    parts = right_after.interest_minor, right_after.prepayment_charge_minor, right_after.total_minor
    assert parts == (0, 102_984, 5_252_193)  # 51,492.09 + 1,029.84 = 52,521.93
    later = s.foreclosure_quote(balance, 1_200, 15)
    assert (later.interest_minor, later.total_minor) == (25_393, 5_277_586)  # + 253.93: 52,775.86


def test_foreclosure_adds_arrears_penalties_and_charges() -> None:
    quote = s.foreclosure_quote(5_149_209, 1_200, 15, arrears_minor=888_488, penalties_minor=1_461, charges_minor=500)
    assert quote.total_minor == 5_277_586 + 888_488 + 1_461 + 500
    assert s.foreclosure_quote(5_149_209, 1_200, 0, prepayment_charge_bps=0).total_minor == 5_149_209


def test_disbursement_net_of_the_processing_fee() -> None:
    assert s.net_disbursement(10_000_000, 100) == (9_900_000, 100_000)  # 100,000.00 with 1%: 99,000.00
    assert s.net_disbursement(10_000_000, 100, charges=50_000) == (9_850_000, 100_000)
    assert s.net_disbursement(12_345, 50) == (12_283, 62)  # 61.725 → 62, half-up


# --- §9: underwriting -------------------------------------------------------------------------


def _application(loan_type: LoanType, amount: int, income: int, existing: int, credit: int | None, years: str,
                 collateral: int | None) -> u.Application:  # fmt: skip
    """Major units, as §9 writes them."""
    return u.Application(loan_type, amount * 100, 12, income * 100, existing * 100, credit, Decimal(years),
                         None if collateral is None else collateral * 100)  # fmt: skip


@pytest.mark.parametrize(
    ("application", "emi", "dti", "score", "band", "rate_bps", "outcome", "reasons"),
    [
        (_application(LoanType.business, 300_000, 60_000, 10_000, 760, "6", None),
         667_333, "0.2779", -25, u.Band.low, 1_000, u.Outcome.recommend, ()),
        (_application(LoanType.auto, 200_000, 20_000, 0, None, "3", 300_000),
         444_889, "0.2224", 10, u.Band.low, 1_100, u.Outcome.recommend, ()),
        (_application(LoanType.business, 400_000, 30_000, 3_000, 640, "2", None),
         889_778, "0.3966", 55, u.Band.high, 1_550, u.Outcome.manual_review, ()),
        (_application(LoanType.home, 800_000, 40_000, 6_000, 680, "0.5", 850_000),  # 19.0% → the home cap, 12%
         1_779_556, "0.5949", 90, u.Band.very_high, 1_200, u.Outcome.refused,
         (u.Reason.score_above_limit, u.Reason.dti_above_limit)),
    ],
)  # fmt: skip
def test_the_underwriting_reference_values(application: u.Application, emi: int, dti: str, score: int, band: u.Band,
                                           rate_bps: int, outcome: u.Outcome, reasons: tuple[u.Reason, ...]) -> None:  # fmt: skip
    got = u.assess(application)
    assert got.assessment_emi_minor == emi
    assert got.dti.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) == Decimal(dti)
    assert (got.score, got.band, got.recommended_rate_bps, got.outcome, got.reasons) == (score, band, rate_bps, outcome, reasons)
    assert all(reason in u.REASON_TEXT for reason in got.reasons)


def test_ltv_is_reported_with_collateral_only() -> None:
    ltv = u.assess(_application(LoanType.auto, 200_000, 20_000, 0, None, "3", 300_000)).ltv
    assert ltv is not None and ltv.quantize(Decimal("1e-20")) == Decimal("0.66666666666666666667")  # 50 digits, not rounded
    assert u.assess(_application(LoanType.business, 300_000, 60_000, 10_000, 760, "6", None)).ltv is None


def test_dti_thresholds_are_exact() -> None:
    # Income 40,000.00 and debt + assessment EMI of exactly 14,000.00: DTI 0.35 is not "> 0.35".
    emi = u.assessment_emi_minor(10_000_000)
    at = u.Application(LoanType.personal, 10_000_000, 12, 4_000_000, 1_400_000 - emi, 720, Decimal(3))
    above = u.Application(LoanType.personal, 10_000_000, 12, 4_000_000, 1_400_000 - emi + 1, 720, Decimal(3))
    assert u.assess(at).dti == Decimal("0.35") and u.assess(at).score == 0
    assert u.assess(above).score == 20


def test_every_refusal() -> None:
    refused = u.assess(u.Application(LoanType.auto, 60_000_000, 120, 100_000, 0, 550, Decimal(0), 1_000_000))
    assert refused.outcome == u.Outcome.refused
    assert refused.reasons == (
        u.Reason.score_above_limit, u.Reason.credit_score_below_minimum, u.Reason.dti_above_limit,
        u.Reason.amount_above_cap, u.Reason.months_above_cap, u.Reason.collateral_below_80_percent,
    )  # fmt: skip
    assert set(u.REASON_TEXT) == set(u.Reason)


def test_a_secured_loan_without_collateral_is_refused_and_no_credit_score_is_not() -> None:
    got = u.assess(u.Application(LoanType.home, 1_000_000, 12, 10_000_000, 0, None, Decimal(10)))
    assert got.reasons == (u.Reason.collateral_missing,)
    unsecured = u.assess(u.Application(LoanType.personal, 1_000_000, 12, 10_000_000, 0, None, Decimal(10)))
    assert unsecured.outcome == u.Outcome.recommend and unsecured.score == 25 - 10 - 10  # no score, DTI ≤ 0.25, 10 years
    assert unsecured.band == u.Band.low


def test_collateral_of_exactly_80_percent_is_enough() -> None:
    got = u.assess(u.Application(LoanType.auto, 1_000_000, 12, 10_000_000, 0, 760, Decimal(10), 800_000))
    assert got.reasons == () and got.ltv == Decimal("1.25")


def test_bands_and_rates() -> None:
    assert [u.band(score) for score in (-25, 19, 20, 39, 40, 59, 60, 90)] == [
        u.Band.low, u.Band.low, u.Band.medium, u.Band.medium, u.Band.high, u.Band.high, u.Band.very_high, u.Band.very_high,
    ]  # fmt: skip
    assert u.recommended_rate_bps(-25, LoanType.personal) == 1_000
    assert u.recommended_rate_bps(55, LoanType.business) == 1_550
    assert u.recommended_rate_bps(55, LoanType.education) == 800  # education's cap


# --- properties -------------------------------------------------------------------------------

TERMS = {
    "principal": st.integers(MIN_PRINCIPAL, MAX_PRINCIPAL),
    "rate_bps": st.integers(0, 2_500),
    "months": st.integers(1, MAX_MONTHS),
}
KINDS = [(DECLINING, EQUAL_INSTALMENTS), (DECLINING, EQUAL_PRINCIPAL), (FLAT, EQUAL_INSTALMENTS)]


@settings(max_examples=200, deadline=None)
@given(**TERMS, kind=st.sampled_from(KINDS))
def test_every_schedule_repays_the_principal_exactly(principal: int, rate_bps: int, months: int,
                                                     kind: tuple[InterestMethod, Amortization]) -> None:  # fmt: skip
    drawn = s.schedule(principal, rate_bps, months, *kind, DISBURSED)
    assert len(drawn.instalments) == months
    assert sum(i.principal for i in drawn.instalments) == principal
    assert all(i.principal >= 0 and i.interest >= 0 and i.amount == i.principal + i.interest for i in drawn.instalments)
    balances = [principal] + [i.balance_after for i in drawn.instalments]
    assert all(later <= earlier for earlier, later in zip(balances, balances[1:])) and balances[-1] == 0
    assert drawn.total_interest == sum(i.interest for i in drawn.instalments)
    assert drawn.total_payable == principal + drawn.total_interest == sum(i.amount for i in drawn.instalments)
    assert drawn.maturity_date == drawn.instalments[-1].due_date == s.add_months(DISBURSED, months)


@settings(max_examples=200, deadline=None)
@given(**TERMS)
def test_declining_interest_is_never_more_than_flat(principal: int, rate_bps: int, months: int) -> None:
    declining = _declining(principal, rate_bps, months)
    flat = s.schedule(principal, rate_bps, months, FLAT, EQUAL_INSTALMENTS, DISBURSED)
    assert declining.total_interest <= flat.total_interest
