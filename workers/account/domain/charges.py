"""Monthly charges (banking-rules §2): the product's maintenance fee, its minimum-balance
shortfall fee for a month whose average day-end balance fell below the minimum balance, and a
current account's overdraft interest. All are charged by the close of business that covers the
month's last day, as balancing debits: the ledger takes what the account holds above its floor,
up to the charge, so a charge never breaks the floor and is never refused for want of money; what
it could not take is recorded, not chased.

The average day-end balance is exact: Σ day-end balance × days over the month's days the account
was open, divided by those days (kept as the sum and the days; compared without dividing).
Overdraft interest is exact the same way: Σ overdrawn day-end balance × days × the product's
overdraft rate (basis points a year, actual/365), rounded once, half-up, when it is charged
(`interest.interest_minor`); it goes to interest income (code `interest`), the fees to fee income.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from contracts import ledger
from contracts.account import ChargeKind, ProductTerms
from workers.account.domain.interest import interest_minor

ONE_DAY = dt.timedelta(days=1)


def month_end(day: dt.date) -> dt.date:
    return dt.date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


@dataclass(frozen=True, slots=True)
class BalanceDays:
    """Days `first`..`last` (inclusive) of the month ending `month_end` at one day-end balance."""

    month_end: dt.date
    first: dt.date
    last: dt.date
    balance_days: int
    overdrawn_days: int = 0  # Σ overdrawn balance × days (minor units, ≥ 0): what overdraft interest accrues on


def balance_days(balance: int, first: dt.date, until: dt.date) -> list[BalanceDays]:
    """A day-end balance (minor units, negative when overdrawn) held for the calendar days `first`
    up to `until` (exclusive), split where a month ends. A zero balance adds nothing."""
    assert first < until, f"a close covers at least its own date: {first} .. {until}"
    if balance == 0:
        return []
    spans = []
    day = first
    while day < until:
        end = month_end(day)
        last = min(end, until - ONE_DAY)
        days = (last - day).days + 1
        spans.append(BalanceDays(end, day, last, balance * days, max(-balance, 0) * days))
        day = last + ONE_DAY
    return spans


def month_ends_covered(first: dt.date, until: dt.date) -> list[dt.date]:
    """The month ends among the calendar days a close covers: the months it charges."""
    ends, day = [], first
    while day < until:
        end = month_end(day)
        if end < until:
            ends.append(end)
        day = end + ONE_DAY
    return ends


def days_open(month_end_: dt.date, opened_on: dt.date) -> int:
    """The month's days the account was open (0: it opened after the month)."""
    month_start = month_end_.replace(day=1)
    return max(0, (month_end_ - max(month_start, opened_on)).days + 1)


@dataclass(frozen=True, slots=True)
class Charge:
    kind: ChargeKind
    amount: int  # minor units: the most the balancing debit may take


def month_charges(terms: ProductTerms, month_balance_days: int, open_days: int, overdrawn_days: int = 0) -> list[Charge]:
    """The charges a month owes: none for a month the account was not open in."""
    assert overdrawn_days >= 0
    if open_days == 0:
        return []
    charges = []
    if terms.maintenance_fee:
        charges.append(Charge(ChargeKind.maintenance, terms.maintenance_fee))
    # average < minimum  ⇔  Σ balance × days < minimum × days (no division, no rounding)
    if terms.shortfall_fee and month_balance_days < terms.minimum_balance * open_days:
        charges.append(Charge(ChargeKind.shortfall, terms.shortfall_fee))
    if terms.overdraft_rate_bps and (owed := interest_minor(overdrawn_days * terms.overdraft_rate_bps)):
        charges.append(Charge(ChargeKind.overdraft_interest, owed))
    return charges


# Where each charge goes, and the ledger code it moves under.
INCOME = {ChargeKind.maintenance: ("fee_income", "fee"), ChargeKind.shortfall: ("fee_income", "fee"),
          ChargeKind.overdraft_interest: ("interest_income", "interest")}  # fmt: skip


def charge_transfer_id(account_id: UUID, kind: ChargeKind, month_end_: dt.date, business_date: dt.date) -> UUID:
    """One per account, fee, month and close that asks (a later close retrying a refused debit
    needs a new id: the ledger keeps a failed id failed)."""
    return uuid5(NAMESPACE_URL, f"cbs.account.charge.{account_id}.{kind}.{month_end_.isoformat()}.{business_date.isoformat()}")


def narration(kind: ChargeKind, month_end_: dt.date) -> str:
    what = {ChargeKind.maintenance: "Maintenance fee", ChargeKind.shortfall: "Minimum balance shortfall fee",
            ChargeKind.overdraft_interest: "Overdraft interest"}[kind]  # fmt: skip
    return f"{what} {month_end_:%Y-%m}"


def reference(kind: ChargeKind, month_end_: dt.date) -> str:
    """The charge's reference on a statement: which, which month (e.g. FEE-MAINTENANCE-202603, ODI-202603)."""
    prefix = "ODI" if kind == ChargeKind.overdraft_interest else f"FEE-{kind.value.upper()}"
    return f"{prefix}-{month_end_:%Y%m}"


def closure_charge_transfer_id(account_id: UUID, kind: ChargeKind, month_end_: dt.date) -> UUID:
    """A charge a closing settles: once per account, fee and month (a refused close writes nothing)."""
    return uuid5(NAMESPACE_URL, f"cbs.account.charge.{account_id}.{kind}.{month_end_.isoformat()}.closure")


def charge_transfer(transfer_id: UUID, ledger_account_id: UUID, currency: str, kind: ChargeKind, month_end_: dt.date,
                    amount: int) -> ledger.NewTransfer:  # fmt: skip
    """A balancing debit: what the account holds above its floor, up to the charge, to its income."""
    income, code = INCOME[kind]
    return ledger.NewTransfer(
        id=transfer_id, debit_account_id=ledger_account_id, credit_account_id=ledger.bank_account_id(income, currency),
        amount=amount, currency=currency, code=code, flags=ledger.TransferFlags(balancing_debit=True),
        reference=reference(kind, month_end_), narration=narration(kind, month_end_),
    )  # fmt: skip
