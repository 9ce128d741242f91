"""Savings interest, pure (workers/account/domain/interest.py): banking-rules §9's reference values
to the minor unit, the split at period ends, and the rounding done once."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from contracts.account import InterestPosting
from workers.account.domain import interest

Q = InterestPosting.quarterly
M = InterestPosting.monthly
DAY = dt.timedelta(days=1)


def posted(*spans: tuple[int, int, int]) -> int:
    """(balance minor, rate_bps, days) spans accrued one after another, rounded once."""
    start, total = dt.date(2027, 1, 1), 0
    for balance, rate_bps, days in spans:
        total += sum(a.balance_bps_days for a in interest.accrue(balance, rate_bps, start, start + days * DAY, Q))
        start += days * DAY
    return interest.interest_minor(total)


def test_the_reference_values_of_banking_rules_9() -> None:
    assert posted((10_000_000, 400, 30)) == 32_877  # 100,000.00 at 4% for 30 days = 328.77
    # 100,000.00 for 20 days then 150,000.00 for 10 days: 219.1781… + 164.3836… = 383.56
    assert posted((10_000_000, 400, 20), (15_000_000, 400, 10)) == 38_356
    # 1,000.00 for 30 days = 3.29; rounding each day's 0.1096 to 0.11 would give 3.30
    assert posted((100_000, 400, 30)) == 329
    assert interest.interest_minor(100_000 * 400) * 30 == 330


def test_rounding_is_half_up_once() -> None:
    d = interest.DENOMINATOR
    assert [interest.interest_minor(n) for n in (0, d // 2 - 1, d // 2, d + d // 2, 3 * d - 1)] == [0, 0, 1, 2, 3]
    assert interest.exact_minor(32_876 * d + d // 4) == Decimal("32876.250000000000")


def test_a_close_covers_the_days_to_the_next_business_date_split_at_the_period_end() -> None:
    friday, monday = dt.date(2027, 3, 26), dt.date(2027, 3, 29)
    [weekend] = interest.accrue(1_000, 100, friday, monday, Q)  # Friday's balance earns Saturday and Sunday too
    assert (weekend.first, weekend.last, weekend.balance_bps_days) == (friday, monday - DAY, 1_000 * 100 * 3)
    # The last business day of March, with 1 April a holiday: March's days and April's go to their own quarters.
    march_end, april_2 = interest.accrue(1_000, 100, dt.date(2027, 3, 31), dt.date(2027, 4, 2), Q)
    assert (march_end.period_end, march_end.last) == (dt.date(2027, 3, 31), dt.date(2027, 3, 31))
    assert (april_2.period_end, april_2.first, april_2.last) == (dt.date(2027, 6, 30), dt.date(2027, 4, 1), dt.date(2027, 4, 1))
    assert interest.due(dt.date(2027, 3, 31), dt.date(2027, 4, 2)) and not interest.due(dt.date(2027, 6, 30), dt.date(2027, 4, 2))


def test_nothing_accrues_on_an_empty_or_overdrawn_balance_or_at_rate_zero() -> None:
    day = dt.date(2027, 5, 5)
    assert interest.accrue(0, 400, day, day + DAY, Q) == []
    assert interest.accrue(-5_000, 400, day, day + DAY, Q) == []
    assert interest.accrue(5_000, 0, day, day + DAY, Q) == []


def test_period_ends() -> None:
    assert interest.period_end(dt.date(2028, 2, 10), M) == dt.date(2028, 2, 29)  # a leap February
    assert interest.period_end(dt.date(2027, 2, 10), Q) == dt.date(2027, 3, 31)
    assert interest.period_end(dt.date(2027, 12, 31), Q) == dt.date(2027, 12, 31)
    assert interest.period_end(dt.date(2027, 10, 1), Q) == dt.date(2027, 12, 31)


def test_a_retry_by_a_later_close_asks_under_a_new_id_and_a_repeat_under_the_same() -> None:
    account, end = uuid4(), dt.date(2027, 3, 31)
    first = interest.interest_transfer_id(account, end, dt.date(2027, 3, 31))
    assert first == interest.interest_transfer_id(account, end, dt.date(2027, 3, 31))
    assert first != interest.interest_transfer_id(account, end, dt.date(2027, 4, 1))


@given(
    balances=st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=100),
    rate_bps=st.integers(min_value=0, max_value=100_000),
)
def test_the_posted_amount_is_the_exact_sum_of_the_days_rounded_once(balances: list[int], rate_bps: int) -> None:
    start, total = dt.date(2027, 1, 1), 0
    for i, balance in enumerate(balances):
        day = start + i * DAY
        total += sum(a.balance_bps_days for a in interest.accrue(balance, rate_bps, day, day + DAY, Q))
    with localcontext() as exact_enough:
        exact_enough.prec = 60  # 100 days of 10^13 × 10^5: far from 60 digits
        exact = sum((Decimal(b) * rate_bps / (Decimal(10_000) * 365) for b in balances), Decimal(0))
        assert interest.interest_minor(total) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
