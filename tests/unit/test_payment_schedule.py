"""Standing-order schedules: nominal and due dates, catch-up, retry and suspension, occurrence ids,
validation (banking-rules §4)."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.payment import Frequency, PaymentError, PaymentKind, StandingOrderStatus
from workers.payment.domain.orders import BankCalendar, Refusal
from workers.payment.domain.schedule import (
    Decision,
    Occurrence,
    Schedule,
    after_result,
    due_date,
    due_occurrences,
    next_nominal_after,
    nominal_dates,
    occurrence_payment_id,
    validate_standing_order,
)

W, M, Q = Frequency.weekly, Frequency.monthly, Frequency.quarterly
K, E = PaymentKind, PaymentError
CAL = BankCalendar()
SO = uuid.UUID("0190f0f0-0000-7000-8000-0000000000aa")


def first(start: date, frequency: Frequency, n: int) -> list[date]:
    return list(itertools.islice(nominal_dates(start, frequency), n))


def code(r: object) -> PaymentError | None:
    return r.code if isinstance(r, Refusal) else None


# --- nominal dates ---------------------------------------------------------------------------


def test_monthly_from_the_31st_clamps_per_month_and_never_drifts() -> None:
    assert first(date(2023, 1, 31), M, 5) == [
        date(2023, 1, 31), date(2023, 2, 28), date(2023, 3, 31), date(2023, 4, 30), date(2023, 5, 31)
    ]  # fmt: skip


def test_monthly_in_a_leap_year_lands_on_feb_29() -> None:
    assert first(date(2024, 1, 31), M, 3) == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]
    assert first(date(2024, 2, 29), Frequency.monthly, 2) == [date(2024, 2, 29), date(2024, 3, 29)]


def test_quarterly_clamps_likewise_and_crosses_the_year() -> None:
    assert first(date(2023, 11, 30), Q, 4) == [date(2023, 11, 30), date(2024, 2, 29), date(2024, 5, 30), date(2024, 8, 30)]
    assert first(date(2023, 8, 31), Q, 3) == [date(2023, 8, 31), date(2023, 11, 30), date(2024, 2, 29)]


def test_weekly_is_every_seven_days() -> None:
    assert first(date(2024, 12, 25), W, 3) == [date(2024, 12, 25), date(2025, 1, 1), date(2025, 1, 8)]


def test_nominal_dates_stop_at_the_end_of_the_calendar() -> None:
    assert list(nominal_dates(date(9999, 11, 30), M)) == [date(9999, 11, 30), date(9999, 12, 30)]


def test_next_nominal_after_respects_the_end_date() -> None:
    assert next_nominal_after(date(2024, 1, 31), M, None, date(2024, 1, 31)) == date(2024, 2, 29)
    assert next_nominal_after(date(2024, 1, 31), M, date(2024, 2, 29), date(2024, 1, 31)) == date(2024, 2, 29)
    assert next_nominal_after(date(2024, 1, 31), M, date(2024, 2, 28), date(2024, 1, 31)) is None


# --- due dates -------------------------------------------------------------------------------


def test_due_date_shifts_a_weekend_to_monday() -> None:
    assert due_date(date(2024, 6, 15), CAL) == date(2024, 6, 17)  # Saturday → Monday
    assert due_date(date(2024, 6, 16), CAL) == date(2024, 6, 17)  # Sunday → Monday
    assert due_date(date(2024, 6, 14), CAL) == date(2024, 6, 14)  # Friday stays


def test_due_date_shifts_over_a_holiday_and_the_weekend_after_it() -> None:
    cal = BankCalendar(holidays=frozenset({date(2024, 8, 15), date(2024, 8, 16)}))  # Thu, Fri
    assert due_date(date(2024, 8, 15), cal) == date(2024, 8, 19)  # → Monday


# --- catch-up --------------------------------------------------------------------------------


def test_catch_up_places_three_missed_weekly_occurrences_in_order() -> None:
    start = date(2024, 6, 3)  # Monday
    got = due_occurrences(start=start, frequency=W, end_date=None, next_nominal=date(2024, 6, 10),
                          today=date(2024, 6, 26), calendar=CAL, limit=10)  # fmt: skip
    assert got == [date(2024, 6, 10), date(2024, 6, 17), date(2024, 6, 24)]


def test_nothing_is_due_before_the_due_date_of_a_shifted_nominal_date() -> None:
    start = date(2024, 6, 15)  # Saturday: due Monday 17th
    kw = dict(start=start, frequency=M, end_date=None, next_nominal=start, calendar=CAL, limit=5)
    assert due_occurrences(today=date(2024, 6, 15), **kw) == []
    assert due_occurrences(today=date(2024, 6, 17), **kw) == [start]


def test_catch_up_stops_at_the_end_date() -> None:
    start = date(2024, 1, 1)
    got = due_occurrences(start=start, frequency=W, end_date=date(2024, 1, 20), next_nominal=start,
                          today=date(2024, 3, 1), calendar=CAL, limit=100)  # fmt: skip
    assert got == [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)]


def test_an_end_date_on_a_nominal_date_includes_it_even_when_due_after_it() -> None:
    start = date(2024, 6, 1)  # Saturday
    got = due_occurrences(start=start, frequency=M, end_date=start, next_nominal=start,
                          today=date(2024, 6, 3), calendar=CAL, limit=5)  # fmt: skip
    assert got == [start]


def test_catch_up_is_bounded_by_the_limit_and_resumes_after_it() -> None:
    start = date(2020, 1, 6)
    kw = dict(start=start, frequency=W, end_date=None, today=date(2024, 1, 1), calendar=CAL, limit=3)
    page1 = due_occurrences(next_nominal=start, **kw)
    assert page1 == [date(2020, 1, 6), date(2020, 1, 13), date(2020, 1, 20)]
    page2 = due_occurrences(next_nominal=next_nominal_after(start, W, None, page1[-1]), **kw)
    assert page2 == [date(2020, 1, 27), date(2020, 2, 3), date(2020, 2, 10)]
    with pytest.raises(AssertionError):
        due_occurrences(next_nominal=start, **{**kw, "limit": 0})


def test_next_nominal_off_the_schedule_starts_at_the_following_nominal_date() -> None:
    got = due_occurrences(start=date(2024, 1, 31), frequency=M, end_date=None, next_nominal=date(2024, 2, 1),
                          today=date(2024, 4, 1), calendar=CAL, limit=5)  # fmt: skip
    assert got == [date(2024, 2, 29), date(2024, 3, 31)]  # Mar 31 is a Sunday, due Monday Apr 1


# --- retry and suspension --------------------------------------------------------------------

SCHED = Schedule(date(2024, 6, 7), W)  # Fridays


def test_a_failure_on_the_due_date_retries_the_next_business_day() -> None:
    occ = Occurrence.first(date(2024, 6, 7), CAL)
    d = after_result(SCHED, occ, failures=0, succeeded=False, today=occ.due, calendar=CAL)
    assert d == Decision(failures=1, next_nominal=date(2024, 6, 14),
                         retry=Occurrence(date(2024, 6, 7), date(2024, 6, 10), 2), suspended=False, ended=False)  # fmt: skip
    assert d.status == StandingOrderStatus.active


def test_the_retry_skips_a_holiday() -> None:
    cal = BankCalendar(holidays=frozenset({date(2024, 6, 10)}))
    d = after_result(SCHED, Occurrence.first(date(2024, 6, 7), cal), failures=0, succeeded=False,
                     today=date(2024, 6, 7), calendar=cal)  # fmt: skip
    assert d.retry is not None and d.retry.due == date(2024, 6, 11)


def test_a_late_attempt_retries_the_business_day_after_it_was_tried() -> None:
    occ = Occurrence.first(date(2024, 6, 7), CAL)
    d = after_result(SCHED, occ, failures=0, succeeded=False, today=date(2024, 6, 19), calendar=CAL)
    assert d.retry == Occurrence(date(2024, 6, 7), date(2024, 6, 20), 2)


def test_a_failed_retry_is_not_retried_and_counts_as_a_failure() -> None:
    retry = Occurrence(date(2024, 6, 7), date(2024, 6, 10), 2)
    d = after_result(SCHED, retry, failures=1, succeeded=False, today=retry.due, calendar=CAL)
    assert (d.failures, d.retry, d.suspended, d.next_nominal) == (2, None, False, date(2024, 6, 14))


def test_three_failed_attempts_in_a_row_suspend_without_a_retry() -> None:
    occ = Occurrence.first(date(2024, 6, 14), CAL)
    d = after_result(SCHED, occ, failures=2, succeeded=False, today=occ.due, calendar=CAL)
    assert (d.failures, d.retry, d.suspended, d.ended, d.status) == (3, None, True, False, StandingOrderStatus.suspended)
    with pytest.raises(AssertionError):  # a suspended order places nothing more
        after_result(SCHED, occ, failures=3, succeeded=False, today=occ.due, calendar=CAL)


def test_walkthrough_fail_retry_fail_then_fail_suspends() -> None:
    cal, failures = CAL, 0
    occ = Occurrence.first(date(2024, 6, 7), cal)
    d = after_result(SCHED, occ, failures=failures, succeeded=False, today=occ.due, calendar=cal)
    assert d.retry is not None
    d = after_result(SCHED, d.retry, failures=d.failures, succeeded=False, today=d.retry.due, calendar=cal)
    assert (d.failures, d.retry, d.suspended) == (2, None, False)
    assert d.next_nominal is not None
    occ = Occurrence.first(d.next_nominal, cal)
    d = after_result(SCHED, occ, failures=d.failures, succeeded=False, today=occ.due, calendar=cal)
    assert d.suspended and d.failures == 3


def test_a_success_resets_the_failures() -> None:
    occ = Occurrence.first(date(2024, 6, 14), CAL)
    d = after_result(SCHED, occ, failures=2, succeeded=True, today=occ.due, calendar=CAL)
    assert (d.failures, d.retry, d.suspended, d.ended) == (0, None, False, False)
    retry = Occurrence(date(2024, 6, 14), date(2024, 6, 17), 2)
    assert after_result(SCHED, retry, failures=1, succeeded=True, today=retry.due, calendar=CAL).failures == 0


def test_the_last_occurrence_ends_the_order_once_its_retry_is_settled() -> None:
    sched = Schedule(date(2024, 6, 7), W, end_date=date(2024, 6, 12))
    occ = Occurrence.first(date(2024, 6, 7), CAL)
    d = after_result(sched, occ, failures=0, succeeded=True, today=occ.due, calendar=CAL)
    assert (d.next_nominal, d.ended, d.status) == (None, True, StandingOrderStatus.ended)
    d = after_result(sched, occ, failures=0, succeeded=False, today=occ.due, calendar=CAL)
    assert (d.next_nominal, d.ended) == (None, False)  # the retry is still to come
    assert d.retry is not None
    d = after_result(sched, d.retry, failures=d.failures, succeeded=False, today=d.retry.due, calendar=CAL)
    assert (d.failures, d.ended) == (2, True)


def test_an_occurrence_is_never_due_before_its_nominal_date() -> None:
    with pytest.raises(AssertionError):
        Occurrence(date(2024, 6, 7), date(2024, 6, 6), 1)
    with pytest.raises(AssertionError):
        Occurrence(date(2024, 6, 7), date(2024, 6, 7), 3)


# --- ids -------------------------------------------------------------------------------------


def test_occurrence_payment_id_is_deterministic() -> None:
    a = occurrence_payment_id(SO, date(2024, 6, 7), 1)
    assert a == occurrence_payment_id(SO, date(2024, 6, 7), 1)
    assert a.version == 5
    assert len({a, occurrence_payment_id(SO, date(2024, 6, 7), 2), occurrence_payment_id(SO, date(2024, 6, 14), 1),
                occurrence_payment_id(uuid.uuid4(), date(2024, 6, 7), 1)}) == 4  # fmt: skip


# --- validation ------------------------------------------------------------------------------

TODAY = date(2024, 6, 10)


@pytest.mark.parametrize(
    "start,end,kind,amount,expected",
    [
        (TODAY, None, K.internal, 100, None),
        (TODAY, TODAY, K.neft, 100, None),
        (TODAY + timedelta(days=1), None, K.upi, 2_500_000, None),
        (TODAY - timedelta(days=1), None, K.internal, 100, E.invalid_schedule),
        (TODAY + timedelta(days=5), TODAY + timedelta(days=4), K.internal, 100, E.invalid_schedule),
        (TODAY, None, K.cash_withdrawal, 100, E.invalid_schedule),
        (TODAY, None, K.refund, 100, E.invalid_schedule),
        (TODAY, None, K.upi, 2_500_001, E.rail_amount_above_maximum),
        (TODAY, None, K.rtgs, 100, E.rail_amount_below_minimum),
    ],
)
def test_validate_standing_order(start: date, end: date | None, kind: PaymentKind, amount: int,
                                 expected: PaymentError | None) -> None:  # fmt: skip
    assert code(validate_standing_order(start, end, TODAY, M, amount, kind)) == expected


def test_validation_names_the_field() -> None:
    r = validate_standing_order(TODAY, TODAY - timedelta(days=1), TODAY, W, 100, K.internal)
    assert isinstance(r, Refusal) and r.details == {"field": "end_date"}


# --- properties ------------------------------------------------------------------------------

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
frequencies = st.sampled_from(list(Frequency))
recurring = st.sampled_from([f for f in Frequency if f != Frequency.once])
calendars = st.frozensets(st.dates(min_value=date(2000, 1, 1), max_value=date(2101, 12, 31)), max_size=40).map(
    lambda h: BankCalendar(holidays=h)
)


@given(dates, frequencies, calendars)
def test_nominal_dates_increase_and_due_dates_are_business_days_on_or_after_them(
    start: date, frequency: Frequency, cal: BankCalendar
) -> None:
    nominals = first(start, frequency, 30)
    assert nominals[0] == start
    assert all(a < b for a, b in itertools.pairwise(nominals))
    dues = [due_date(n, cal) for n in nominals]
    assert all(d >= n and cal.is_business_day(d) for n, d in zip(nominals, dues, strict=True))
    assert all(a <= b for a, b in itertools.pairwise(dues))
    assert all(cal.is_business_day(n) or not any(cal.is_business_day(n + timedelta(days=i)) for i in range((d - n).days))
               for n, d in zip(nominals, dues, strict=True))  # fmt: skip  (the first business day, no later)


@given(dates, frequencies)
def test_due_dates_strictly_increase_without_holidays(start: date, frequency: Frequency) -> None:
    dues = [due_date(n, CAL) for n in first(start, frequency, 30)]
    assert all(a < b for a, b in itertools.pairwise(dues))


@given(dates, frequencies)
def test_monthly_and_quarterly_keep_the_start_day_whenever_the_month_has_it(start: date, frequency: Frequency) -> None:
    for n in first(start, frequency, 30):
        if frequency != W:
            assert n.day == min(start.day, (date(n.year + n.month // 12, n.month % 12 + 1, 1) - timedelta(days=1)).day)


@given(dates, frequencies, calendars, st.integers(0, 400), st.integers(1, 20), st.none() | st.integers(0, 900))
def test_catch_up_in_pages_places_every_due_nominal_date_once_in_order(
    start: date, frequency: Frequency, cal: BankCalendar, days: int, limit: int, end_days: int | None
) -> None:
    today = start + timedelta(days=days)
    end = None if end_days is None else start + timedelta(days=end_days)
    placed: list[date] = []
    nxt: date | None = start
    for _ in range(1000):
        if nxt is None:
            break
        page = due_occurrences(start=start, frequency=frequency, end_date=end, next_nominal=nxt,
                               today=today, calendar=cal, limit=limit)  # fmt: skip
        assert len(page) <= limit
        if not page:
            break
        placed += page
        nxt = next_nominal_after(start, frequency, end, page[-1])
    expected = [n for n in itertools.takewhile(lambda n: n <= today, nominal_dates(start, frequency))
                if due_date(n, cal) <= today and (end is None or n <= end)]  # fmt: skip
    assert placed == expected
    assert len(set(placed)) == len(placed)


@given(dates, recurring, st.integers(0, 2000))
def test_next_nominal_after_is_the_following_schedule_date(start: date, frequency: Frequency, offset: int) -> None:
    d = start + timedelta(days=offset)
    nxt = next_nominal_after(start, frequency, None, d)
    assert nxt is not None and nxt > d
    assert not any(d < n < nxt for n in itertools.takewhile(lambda n: n <= nxt, nominal_dates(start, frequency)))
    assert nxt in set(itertools.takewhile(lambda n: n <= nxt, nominal_dates(start, frequency)))


@given(st.lists(st.booleans(), min_size=1, max_size=40), calendars)
def test_failures_count_every_failed_attempt_and_suspend_at_three(results: list[bool], cal: BankCalendar) -> None:
    sched = Schedule(date(2024, 1, 1), W)
    failures, occ = 0, Occurrence.first(sched.start, cal)
    for ok in results:
        d = after_result(sched, occ, failures=failures, succeeded=ok, today=occ.due, calendar=cal)
        assert d.failures == (0 if ok else failures + 1)
        assert d.suspended == (d.failures == 3)
        assert (d.retry is not None) == (not ok and not d.suspended and occ.attempt == 1)
        if d.retry is not None:
            assert d.retry.due == cal.next_business_day(occ.due) and d.retry.nominal == occ.nominal
        if d.suspended:
            return
        failures = d.failures
        assert d.next_nominal is not None
        occ = d.retry or Occurrence.first(d.next_nominal, cal)


@given(st.uuids(), dates, dates, st.sampled_from([1, 2]), st.sampled_from([1, 2]))
def test_occurrence_ids_differ_per_nominal_date_and_attempt(so: uuid.UUID, a: date, b: date, x: int, y: int) -> None:
    same = (a, x) == (b, y)
    assert (occurrence_payment_id(so, a, x) == occurrence_payment_id(so, b, y)) is same


def test_a_scheduled_payment_happens_once_on_its_date_even_after_downtime() -> None:
    start = date(2026, 12, 5)  # a Saturday: due the Monday after
    once = Frequency.once
    assert list(nominal_dates(start, once)) == [start]
    assert next_nominal_after(start, once, None, start) is None
    caught_up = due_occurrences(start=start, frequency=once, end_date=None, next_nominal=start,
                                today=date(2026, 12, 20), calendar=BankCalendar(), limit=10)  # fmt: skip
    assert caught_up == [start]
    assert due_occurrences(start=start, frequency=once, end_date=None, next_nominal=start,
                           today=date(2026, 12, 6), calendar=BankCalendar(), limit=10) == []  # fmt: skip
