"""Monthly charges, pure (workers/account/domain/charges.py): balance-days split at month ends,
the average compared exactly, and which fees a month owes."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

from contracts.account import ChargeKind
from workers.account.domain import charges
from workers.account.domain.accounts import default_products

SAVINGS = default_products()["savings"].model_copy(update={"maintenance_fee": 5_000, "shortfall_fee": 10_000})


def test_a_close_over_a_month_end_splits_the_balance_days_between_the_months() -> None:
    # Friday 29 January 2027's close covers Friday to Sunday 31 January: all January.
    [jan] = charges.balance_days(20_000, dt.date(2027, 1, 29), dt.date(2027, 2, 1))
    assert (jan.month_end, jan.first, jan.last, jan.balance_days) == (dt.date(2027, 1, 31), dt.date(2027, 1, 29), dt.date(2027, 1, 31), 60_000)
    # Friday 30 April to Monday 3 May: a day of April, two of May.
    april, may = charges.balance_days(-5, dt.date(2027, 4, 30), dt.date(2027, 5, 3))
    assert (april.balance_days, may.balance_days, may.month_end) == (-5, -10, dt.date(2027, 5, 31))
    assert charges.balance_days(0, dt.date(2027, 4, 30), dt.date(2027, 5, 3)) == []
    assert charges.month_ends_covered(dt.date(2027, 4, 30), dt.date(2027, 5, 3)) == [dt.date(2027, 4, 30)]
    assert charges.month_ends_covered(dt.date(2027, 4, 28), dt.date(2027, 4, 29)) == []


def test_the_days_open_count_from_the_opening_in_the_month() -> None:
    end = dt.date(2027, 2, 28)
    assert charges.days_open(end, dt.date(2026, 12, 1)) == 28
    assert charges.days_open(end, dt.date(2027, 2, 21)) == 8
    assert charges.days_open(end, dt.date(2027, 3, 1)) == 0


def test_the_shortfall_fee_is_owed_when_the_average_day_end_balance_is_below_the_minimum() -> None:
    minimum, days = SAVINGS.minimum_balance, 30
    at_minimum = charges.month_charges(SAVINGS, minimum * days, days)
    assert [c.kind for c in at_minimum] == [ChargeKind.maintenance]  # the average equals the minimum: no shortfall
    one_short = charges.month_charges(SAVINGS, minimum * days - 1, days)
    assert [(c.kind, c.amount) for c in one_short] == [(ChargeKind.maintenance, 5_000), (ChargeKind.shortfall, 10_000)]
    assert charges.month_charges(SAVINGS, 0, 0) == []  # not open that month
    assert charges.month_charges(default_products()["savings"], 0, 30) == []  # the shipped savings charge nothing


def test_ids_and_narrations() -> None:
    account, end = uuid4(), dt.date(2027, 1, 31)
    first = charges.charge_transfer_id(account, ChargeKind.maintenance, end, dt.date(2027, 1, 29))
    assert first == charges.charge_transfer_id(account, ChargeKind.maintenance, end, dt.date(2027, 1, 29))
    assert first != charges.charge_transfer_id(account, ChargeKind.shortfall, end, dt.date(2027, 1, 29))
    assert first != charges.charge_transfer_id(account, ChargeKind.maintenance, end, dt.date(2027, 2, 1))
    assert charges.narration(ChargeKind.shortfall, end) == "Minimum balance shortfall fee 2027-01"
    assert charges.reference(ChargeKind.maintenance, end) == "FEE-MAINTENANCE-202701"
