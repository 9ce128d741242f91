"""Loan products as data (banking-rules §5), pure: the shipped ones, and which terms an officer
may define.

Each type's caps bound its products: the highest rate, principal and term (`contracts.loan.
PRODUCT_CAPS`); home, auto and gold are secured (a decision of §5), the others may be. A product
keeps its type and currency across versions: a loan's nature never changes under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.loan import PRODUCT_CAPS, LoanError, LoanProductTerms, LoanProductView, LoanType

_NAMES = {LoanType.personal: "Personal Loan", LoanType.home: "Home Loan", LoanType.auto: "Auto Loan",
          LoanType.education: "Education Loan", LoanType.business: "Business Loan", LoanType.gold: "Gold Loan"}  # fmt: skip
DEFAULT_PROCESSING_FEE_BPS = 100  # 1% (§9's disbursement example)


@dataclass(frozen=True, slots=True)
class Refusal:
    code: LoanError
    message: str


def default_products(currency: str = "INR") -> dict[str, LoanProductTerms]:
    """Version 1 of one product per type, at its caps: an officer narrows them."""
    return {
        t.value: LoanProductTerms(name=_NAMES[t], type=t, currency=currency, max_rate_bps=cap.max_rate_bps,
                                  min_principal=100_000, max_principal=cap.max_principal, max_months=cap.max_months,
                                  processing_fee_bps=DEFAULT_PROCESSING_FEE_BPS, secured=cap.secured)  # fmt: skip
        for t, cap in PRODUCT_CAPS.items()
    }


def terms_of(product: LoanProductTerms) -> LoanProductTerms:
    """The terms alone (a view or a command carries more)."""
    return LoanProductTerms.model_validate(product.model_dump(include=set(LoanProductTerms.model_fields)))


def product_refusal(terms: LoanProductTerms, newest: LoanProductView | None) -> Refusal | None:
    """Terms an officer may define: None, or why not (the first reason found)."""
    cap = PRODUCT_CAPS[terms.type]
    checks = (
        (newest is not None and (newest.type, newest.currency) != (terms.type, terms.currency),
         f"a product keeps its type and currency: {newest.type if newest else ''} in {newest.currency if newest else ''}"),
        (terms.max_rate_bps > cap.max_rate_bps, f"a {terms.type} loan's rate is capped at {cap.max_rate_bps} bps"),
        (terms.max_principal > cap.max_principal, f"a {terms.type} loan is capped at {cap.max_principal} minor units"),
        (terms.max_months > cap.max_months, f"a {terms.type} loan runs at most {cap.max_months} months"),
        (terms.min_principal > terms.max_principal, "the smallest principal exceeds the largest"),
        (terms.min_months > terms.max_months, "the shortest term exceeds the longest"),
        (cap.secured and not terms.secured, f"a {terms.type} loan is always secured"),
    )  # fmt: skip
    return next((Refusal(LoanError.invalid_product, why) for failed, why in checks if failed), None)
