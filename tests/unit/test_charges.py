"""Monthly charges, pure (workers/account/domain/charges.py): balance-days split at month ends,
the average compared exactly, and which fees a month owes."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

from contracts.account import ChargeKind
from contracts.ledger import bank_account_id
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


def test_overdraft_interest_is_the_overdrawn_balance_days_at_the_rate_rounded_once() -> None:
    """A current account overdrawn 10,000.00 for 30 days at 12% a year: 10,000.00 × 0.12 × 30/365
    = 98.630136… → 98.63; the days above zero add nothing; to interest income under `interest`."""
    current = default_products()["current"].model_copy(update={"overdraft_limit": 5_000_000, "overdraft_rate_bps": 1_200})
    [april, may] = charges.balance_days(-1_000_000, dt.date(2027, 4, 30), dt.date(2027, 5, 3))
    assert (april.overdrawn_days, may.overdrawn_days) == (1_000_000, 2_000_000)
    assert charges.balance_days(700, dt.date(2027, 4, 30), dt.date(2027, 5, 3))[1].overdrawn_days == 0
    [odi] = charges.month_charges(current, -30_000_000, 30, overdrawn_days=30_000_000)
    assert (odi.kind, odi.amount) == (ChargeKind.overdraft_interest, 9_863)
    assert charges.month_charges(current, 0, 30, overdrawn_days=0) == []
    assert charges.month_charges(current, 0, 30, overdrawn_days=1) == []  # 0.000003… rounds to nothing: no charge
    t = charges.charge_transfer(uuid4(), uuid4(), "INR", ChargeKind.overdraft_interest, dt.date(2027, 4, 30), 9_863)
    assert (t.code, t.credit_account_id, t.flags.balancing_debit) == ("interest", bank_account_id("interest_income", "INR"), True)
    assert (t.reference, t.narration) == ("ODI-202704", "Overdraft interest 2027-04")
