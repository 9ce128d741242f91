"""Underwriting (banking-rules §5 "Underwriting" and §9), pure: an application's assessment EMI,
DTI, LTV, risk score and band, the recommended rate and the outcome.

- Assessment EMI = EMI(amount, 12%, 60 months), half-up to the minor unit, whatever the product's
  own rate and term (it measures what the applicant can carry, not what the loan will cost).
- DTI = (existing EMI + assessment EMI) / monthly income; LTV = amount / collateral value. Both are
  reported as `Decimal` (50 digits) and compared against §5's thresholds exactly, by integer
  cross-multiplication: never rounded first, so 0.35 exactly is not "> 0.35".
- Recommended rate = 10% + 0.1 point per point of score above 0 (1000 + 10 × max(score, 0) bps),
  capped at the product's maximum rate (`PRODUCT_CAPS`).

Decisions where §5 is silent:
- `reasons` lists the refusal codes only (in §5's order: score, credit score, DTI, caps,
  collateral), empty unless the outcome is `refused`; every refusal found is listed, not the first.
- A secured product (home, auto, gold) applied for without collateral is refused as
  `collateral_missing`; collateral offered on an unsecured product still sets the LTV and scores.
- Monthly income must be positive (a DTI needs it) and a credit score lies in 300–850: the edge
  validates both, so anything else here is a bug (assertion).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from contracts.loan import ASSESSMENT_MONTHS, ASSESSMENT_RATE_BPS, PRODUCT_CAPS, Band, LoanType, Outcome, Reason
from workers.loan.domain.schedule import emi_minor

PRECISION = 50
CREDIT_SCORE_RANGE = (300, 850)
BASE_RATE_BPS = 1_000  # 10%
RATE_BPS_PER_POINT = 10  # 0.1 percentage point per point of score
MAX_SCORE = 80  # above it: refused
MIN_CREDIT_SCORE = 600  # below it: refused (no score is not a refusal)
INCOME_MULTIPLE = 60  # an amount above 60 months of income scores +25
COLLATERAL_MIN_PERCENT = 80  # a secured loan's collateral covers at least 80% of the amount


REASON_TEXT: dict[Reason, str] = {
    Reason.score_above_limit: "the risk score is above 80",
    Reason.credit_score_below_minimum: "the credit score is below 600",
    Reason.dti_above_limit: "existing and new instalments would take more than half the monthly income",
    Reason.amount_above_cap: "the amount is above the product's maximum",
    Reason.months_above_cap: "the tenure is longer than the product's maximum",
    Reason.collateral_missing: "a secured loan needs collateral",
    Reason.collateral_below_80_percent: "the collateral is worth less than 80% of the amount",
}


@dataclass(frozen=True, slots=True)
class Application:
    """What underwriting reads of an application; money in minor units."""

    loan_type: LoanType
    amount_minor: int
    months: int
    monthly_income_minor: int
    existing_emi_minor: int
    credit_score: int | None  # 300–850, or none (no credit history)
    employment_years: Decimal
    collateral_value_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    assessment_emi_minor: int
    dti: Decimal
    ltv: Decimal | None  # None without collateral
    score: int
    band: Band
    recommended_rate_bps: int
    outcome: Outcome
    reasons: tuple[Reason, ...]  # refusal codes; empty unless refused


def assessment_emi_minor(amount_minor: int) -> int:
    return emi_minor(amount_minor, ASSESSMENT_RATE_BPS, ASSESSMENT_MONTHS)


def _ratio(numerator: int, denominator: int) -> Decimal:
    with localcontext() as exact:
        exact.prec = PRECISION
        return Decimal(numerator) / denominator


def _dti_points(debt_minor: int, income_minor: int) -> int:
    # debt / income compared with 0.50, 0.35 and 0.25 as debt × 100 against income × 50, 35, 25: exact.
    if debt_minor * 100 > income_minor * 50:
        return 40
    if debt_minor * 100 > income_minor * 35:
        return 20
    return -10 if debt_minor * 100 <= income_minor * 25 else 0


def _credit_points(credit_score: int | None) -> int:
    if credit_score is None:
        return 25
    if credit_score < 650:
        return 35
    if credit_score < 700:
        return 15
    return 0 if credit_score < 750 else -15


def _employment_points(years: Decimal) -> int:
    if years < 1:
        return 20
    return -10 if years >= 5 else 0


def _ltv_points(amount_minor: int, collateral_minor: int) -> int:
    # amount / collateral against 0.9 and 0.7, cross-multiplied.
    if amount_minor * 10 > collateral_minor * 9:
        return 15
    return -5 if amount_minor * 10 <= collateral_minor * 7 else 0


def score(application: Application) -> int:
    """§5's score table: the sum of each factor's points (lower is safer; it may be negative)."""
    a = application
    debt = a.existing_emi_minor + assessment_emi_minor(a.amount_minor)
    points = _dti_points(debt, a.monthly_income_minor) + _credit_points(a.credit_score) + _employment_points(a.employment_years)
    if a.collateral_value_minor is not None:
        points += _ltv_points(a.amount_minor, a.collateral_value_minor)
    if a.amount_minor > INCOME_MULTIPLE * a.monthly_income_minor:
        points += 25
    return points


def band(score_: int) -> Band:
    if score_ >= 60:
        return Band.very_high
    if score_ >= 40:
        return Band.high
    return Band.medium if score_ >= 20 else Band.low


def recommended_rate_bps(score_: int, loan_type: LoanType) -> int:
    """10% + 0.1 point per point of score above 0, capped at the product's maximum rate."""
    return min(BASE_RATE_BPS + RATE_BPS_PER_POINT * max(score_, 0), PRODUCT_CAPS[loan_type].max_rate_bps)


def refusals(application: Application, score_: int) -> tuple[Reason, ...]:
    a = application
    cap = PRODUCT_CAPS[a.loan_type]
    debt = a.existing_emi_minor + assessment_emi_minor(a.amount_minor)
    found = []
    if score_ > MAX_SCORE:
        found.append(Reason.score_above_limit)
    if a.credit_score is not None and a.credit_score < MIN_CREDIT_SCORE:
        found.append(Reason.credit_score_below_minimum)
    if debt * 100 > a.monthly_income_minor * 50:  # DTI > 0.5, exact
        found.append(Reason.dti_above_limit)
    if a.amount_minor > cap.max_principal:
        found.append(Reason.amount_above_cap)
    if a.months > cap.max_months:
        found.append(Reason.months_above_cap)
    if cap.secured:
        if a.collateral_value_minor is None:
            found.append(Reason.collateral_missing)
        elif a.collateral_value_minor * 100 < a.amount_minor * COLLATERAL_MIN_PERCENT:  # exact: no ratio rounded
            found.append(Reason.collateral_below_80_percent)
    return tuple(found)


def assess(application: Application) -> Assessment:
    """The whole assessment of one application (§5): refused on any refusal; otherwise low and
    medium bands recommend approval, high and very high go to manual review."""
    a = application
    assert a.amount_minor > 0 and a.months >= 1, "an application borrows something, for a month or more"
    assert a.monthly_income_minor > 0, "a DTI needs a monthly income"
    assert a.existing_emi_minor >= 0 and a.employment_years >= 0
    assert a.credit_score is None or CREDIT_SCORE_RANGE[0] <= a.credit_score <= CREDIT_SCORE_RANGE[1], a.credit_score
    assert a.collateral_value_minor is None or a.collateral_value_minor > 0, "collateral is worth something, or is none"
    emi = assessment_emi_minor(a.amount_minor)
    score_ = score(a)
    band_ = band(score_)
    reasons = refusals(a, score_)
    if reasons:
        outcome = Outcome.refused
    else:
        outcome = Outcome.recommend if band_ in (Band.low, Band.medium) else Outcome.manual_review
    return Assessment(
        assessment_emi_minor=emi,
        dti=_ratio(a.existing_emi_minor + emi, a.monthly_income_minor),
        ltv=None if a.collateral_value_minor is None else _ratio(a.amount_minor, a.collateral_value_minor),
        score=score_,
        band=band_,
        recommended_rate_bps=recommended_rate_bps(score_, a.loan_type),
        outcome=outcome,
        reasons=reasons,
    )
