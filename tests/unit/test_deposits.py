"""Fixed deposits, pure (workers/account/domain/deposits.py): banking-rules §9's reference values
to the minor unit, and what a deposit may be."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from contracts.account import AccountError
from workers.account.domain import deposits
from workers.account.domain.accounts import default_products

FD = default_products()["fixed_deposit"]


def test_the_reference_values_of_banking_rules_9() -> None:
    assert deposits.compound_interest(10_000_000, 700, 365) == 700_000  # 7,000.00
    assert deposits.compound_interest(10_000_000, 700, 730) == 1_449_000  # 14,490.00
    assert deposits.compound_interest(10_000_000, 700, 400) == 769_645  # 7,696.45: maturity 107,696.45
    # Premature closure after 200 days: 7% − 1 point = 6%.
    assert deposits.premature_rate_bps(700, FD.premature_penalty_bps) == 600
    assert deposits.compound_interest(10_000_000, 600, 200) == 324_433  # 3,244.33


def test_a_deposit_matures_at_the_first_close_on_or_after_its_maturity_date() -> None:
    start = dt.date(2027, 1, 4)
    maturity = deposits.maturity_date(start, 365)
    assert maturity == dt.date(2028, 1, 4)
    assert not deposits.matured(maturity, dt.date(2028, 1, 3)) and deposits.matured(maturity, dt.date(2028, 1, 4))


def test_what_a_fixed_deposit_may_be() -> None:
    assert deposits.deposit_refusal(FD, 100_000, 365) is None  # 1,000.00 for a year
    for amount, days, words in ((99_999, 365, "at least 100000"), (100_000, 6, "7 to 3650 days"),
                                (100_000, 3_651, "7 to 3650 days")):  # fmt: skip
        refusal = deposits.deposit_refusal(FD, amount, days)
        assert refusal is not None and refusal.code == AccountError.invalid_deposit and words in refusal.message
    savings = deposits.deposit_refusal(default_products()["savings"], 100_000, 365)
    assert savings is not None and "not a fixed deposit" in savings.message


@given(principal=st.integers(1, 10**12), rate_bps=st.integers(0, 2_000), days=st.integers(0, 3_650))
def test_interest_grows_with_the_days_and_is_never_negative(principal: int, rate_bps: int, days: int) -> None:
    now = deposits.compound_interest(principal, rate_bps, days)
    assert 0 <= now <= deposits.compound_interest(principal, rate_bps, days + 1)


RD = default_products()["recurring_deposit"]


def test_a_recurring_deposits_instalments_fall_on_the_same_day_each_month() -> None:
    assert deposits.add_months(dt.date(2027, 1, 31), 1) == dt.date(2027, 2, 28)
    assert deposits.add_months(dt.date(2027, 11, 8), 6) == dt.date(2028, 5, 8)
    assert deposits.instalment_due_dates(dt.date(2027, 11, 30), 4) == [
        dt.date(2027, 11, 30), dt.date(2027, 12, 30), dt.date(2028, 1, 30), dt.date(2028, 2, 29)]


def test_each_instalment_earns_the_fixed_deposit_interest_for_its_own_days() -> None:
    maturity = dt.date(2028, 5, 8)
    paid = [(100_000, dt.date(2027, 11, 8)), (100_000, dt.date(2028, 1, 3))]
    expected = deposits.compound_interest(100_000, 700, 182) + deposits.compound_interest(100_000, 700, 126)
    assert deposits.recurring_interest(paid, 700, maturity) == expected
    assert deposits.recurring_interest([], 700, maturity) == 0


def test_what_a_recurring_deposit_may_be() -> None:
    assert deposits.recurring_refusal(RD, 10_000, 6) is None and deposits.recurring_refusal(RD, 10_000, 120) is None
    for instalment, months, words in ((9_999, 12, "at least 10000"), (10_000, 5, "6 to 120"), (10_000, 121, "6 to 120")):
        refusal = deposits.recurring_refusal(RD, instalment, months)
        assert refusal is not None and refusal.code == AccountError.invalid_deposit and words in refusal.message
    assert deposits.recurring_refusal(FD, 10_000, 12) is not None
