"""Loan products as data, pure (workers/loan/domain/products.py): the shipped ones, and the terms
an officer may not define (banking-rules §5 caps)."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.loan import PRODUCT_CAPS, LoanError, LoanProductView, LoanType
from workers.loan.domain import products

DEFAULTS = products.default_products()


def test_one_product_per_type_ships_at_its_caps_and_each_is_definable() -> None:
    assert set(DEFAULTS) == {t.value for t in LoanType}
    for code, terms in DEFAULTS.items():
        cap = PRODUCT_CAPS[LoanType(code)]
        assert (terms.max_rate_bps, terms.max_principal, terms.max_months, terms.secured) == (
            cap.max_rate_bps, cap.max_principal, cap.max_months, cap.secured)
        assert products.product_refusal(terms, None) is None
    assert DEFAULTS["home"].max_rate_bps == 1_200 and DEFAULTS["personal"].max_months == 60  # §5


@pytest.mark.parametrize(("change", "why"), [
    ({"max_rate_bps": 1_201}, "capped at 1200 bps"),
    ({"max_principal": 1_000_000_001}, "less than or equal"),  # past every cap: the contract refuses it
    ({"max_months": 361}, "less than or equal"),
    ({"secured": False}, "always secured"),
    ({"min_principal": 500_000, "max_principal": 400_000}, "smallest principal exceeds"),
    ({"min_months": 24, "max_months": 12}, "shortest term exceeds"),
])  # fmt: skip
def test_terms_beyond_the_home_loans_caps_are_refused_with_the_reason(change: dict, why: str) -> None:
    from pydantic import ValidationError

    try:
        terms = DEFAULTS["home"].model_copy(update=change)
        terms = type(terms).model_validate(terms.model_dump())
    except ValidationError as exc:
        assert why in str(exc)
        return
    refusal = products.product_refusal(terms, None)
    assert refusal is not None and refusal.code == LoanError.invalid_product and why in refusal.message


def test_a_product_keeps_its_type_and_currency() -> None:
    newest = LoanProductView(**DEFAULTS["personal"].model_dump(), code="personal", version=1, defined_by="system",
                             defined_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))  # fmt: skip
    refusal = products.product_refusal(DEFAULTS["business"], newest)
    assert refusal is not None and "keeps its type" in refusal.message
    assert products.product_refusal(DEFAULTS["personal"].model_copy(update={"max_rate_bps": 1_800}), newest) is None
    assert products.terms_of(newest) == DEFAULTS["personal"]
