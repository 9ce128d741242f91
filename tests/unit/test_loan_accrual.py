"""Interest accrual and its booking, pure (workers/loan/domain/accrual.py; banking-rules §5 "Accrual")."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from workers.loan.domain import accrual as a

JAN_31, FEB_29 = dt.date(2028, 1, 31), dt.date(2028, 2, 29)


def test_a_period_accrues_evenly_by_day_and_the_last_day_takes_the_remainder() -> None:
    # 100,000.00 at 12% for 12 months, disbursed 2028-01-31: the first instalment's interest is
    # 1,000.00 over the 29 days to 2028-02-29: 34.48 a day (floor), the last day 34.56.
    first = a.Period(1, JAN_31, FEB_29, 100_000, 0)
    days = [a.accrual(first, JAN_31 + dt.timedelta(days=k)) - a.accrual(first, JAN_31 + dt.timedelta(days=k - 1)) for k in range(1, 30)]
    assert days[:28] == [3_448] * 28 and days[28] == 100_000 - 28 * 3_448 == 3_456
    assert a.accrual(first, FEB_29) == 100_000 and a.accrual(first, dt.date(2028, 3, 5)) == 100_000
    assert a.accrual(first, JAN_31) == 0 and a.accrual(first, dt.date(2027, 12, 1)) == 0


def test_what_is_accrued_already_is_not_accrued_again() -> None:
    half = a.Period(1, JAN_31, FEB_29, 100_000, accrued=10 * 3_448)
    assert a.accrual(half, dt.date(2028, 2, 10)) == 0
    assert a.accrual(half, dt.date(2028, 2, 12)) == 2 * 3_448
    assert a.accrual(half, FEB_29) == 100_000 - 10 * 3_448


@given(interest=st.integers(0, 10**9), days=st.integers(1, 31))
def test_the_days_of_a_period_sum_to_its_interest_and_none_is_negative(interest: int, days: int) -> None:
    by_day = [a.accrued_by(interest, days, k) - a.accrued_by(interest, days, k - 1) for k in range(1, days + 1)]
    assert sum(by_day) == interest and min(by_day) >= 0
    assert by_day[:-1] == [interest // days] * (days - 1)


def test_interest_received_clears_the_receivable_and_what_was_never_accrued_is_income() -> None:
    assert a.receipt(5_000, receivable=5_000, suspended=0) == a.Receipt(5_000, 0, 0)
    assert a.receipt(2_000, receivable=5_000, suspended=0) == a.Receipt(2_000, 0, 0)
    assert a.receipt(7_000, receivable=5_000, suspended=0) == a.Receipt(5_000, 2_000, 0)  # a foreclosure's extra days


def test_a_defaulted_loans_interest_is_income_only_when_received() -> None:
    assert a.receipt(2_000, receivable=5_000, suspended=5_000) == a.Receipt(2_000, 0, 2_000)
    assert a.receipt(7_000, receivable=5_000, suspended=3_000) == a.Receipt(5_000, 2_000, 3_000)


def test_what_will_never_be_received_is_written_back_suspense_first() -> None:
    assert a.write_back(receivable=5_000, suspended=5_000) == a.WriteBack(from_suspense=5_000, from_income=0)
    assert a.write_back(receivable=5_000, suspended=0, received=3_000) == a.WriteBack(0, 2_000)
    assert a.write_back(receivable=5_000, suspended=4_000, received=3_000) == a.WriteBack(1_000, 1_000)
    assert a.write_back(receivable=5_000, suspended=0, received=9_000) == a.WriteBack(0, 0)


@given(received=st.integers(0, 10**7), receivable=st.integers(0, 10**7), share=st.floats(0, 1))
def test_receipt_and_write_back_account_for_every_minor_unit(received: int, receivable: int, share: float) -> None:
    suspended = int(receivable * share)
    r, w = a.receipt(received, receivable, suspended), a.write_back(receivable, suspended, received)
    assert r.to_receivable + r.to_income == received
    assert r.to_receivable + w.from_suspense + w.from_income == receivable  # the receivable ends at zero
    assert r.released + w.from_suspense == suspended  # and so does the suspense
    assert min(r.to_receivable, r.to_income, r.released, w.from_suspense, w.from_income) >= 0
