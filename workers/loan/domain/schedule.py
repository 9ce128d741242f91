"""Loan schedules and the amounts around them (banking-rules §5 and §9), pure.

Money is integer minor units, rates basis points a year. Rounding (§0, §5): half-up to the minor
unit, once per amount a schedule shows or the ledger books, never on intermediate steps:
- the EMI, P·r·(1+r)^n / ((1+r)^n − 1) with r = rate / 12 (or P / n at 0%), in `Decimal` at 50
  digits (the only formula here with a power; the others are exact integer ratios);
- each month's interest, balance × r; the last instalment's principal is what remains, so it may
  differ from the EMI by a few minor units;
- flat interest, P × rate × n / 12, once; then its share and the principal's share per month,
  the last taking both remainders;
- simple interest by day (penalty, foreclosure), actual/365: amount × rate × days / 365.

Decisions where §5 is silent:
- a share rounded half-up can, over many months, pass the total it shares (flat interest of a few
  minor units a month over 360 months): then the shares round down instead, so the last one takes a
  positive remainder and no part of an instalment is ever negative (`_even_parts`);
- a schedule's `emi` is its first instalment's amount (equal principal: the largest);
- when EMI − interest would repay more than the balance before the last month, the instalment
  that reaches zero pays only what remains and the ones after it are 0.00. It happens only to a
  small principal over a long term (1,000.00 at 12% for 360 months clears in 359, at 18.99% for
  321 months in 320): the EMI is then almost all interest, and its half-up rounding compounds for
  decades into more principal than is left. The EMI stays §5's and nobody pays past the balance;
- a foreclosure quote is the principal not yet due, its interest since the last due date (or since
  disbursement), the arrears (instalments due and unpaid), penalties and charges, and the
  prepayment charge on the principal not yet due.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from contracts.loan import Amortization, Instalment, InterestMethod, Schedule

BPS_PER_UNIT = 10_000  # a rate of 1 (100%) in basis points
MONTHS_PER_YEAR = 12
DAY_COUNT_BASIS = 365  # actual/365 (§0)
MONTHLY_DENOMINATOR = BPS_PER_UNIT * MONTHS_PER_YEAR  # 120_000: balance × bps / this = a month's interest
DAILY_DENOMINATOR = BPS_PER_UNIT * DAY_COUNT_BASIS  # 3_650_000: amount × bps × days / this = simple interest
PRECISION = 50  # digits: far past the minor unit for any principal, rate and term CBS allows
DEFAULT_GRACE_DAYS = 7
DEFAULT_PREPAYMENT_CHARGE_BPS = 200  # 2% of the outstanding principal


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves up; exact (no Decimal context)."""
    assert numerator >= 0 and denominator > 0
    whole, rest = divmod(numerator, denominator)
    return whole + (1 if 2 * rest >= denominator else 0)


def _even_parts(total: int, parts: int) -> tuple[int, int]:
    """(each part but the last, the last): round(total / parts), the last taking the remainder (§5).
    decision: when (parts − 1) rounded-up shares would pass the total, they round down instead."""
    assert total >= 0 and parts >= 1
    regular = _round_half_up(total, parts)
    if regular * (parts - 1) > total:  # e.g. 3.00 of interest over 360 months: 0.01 each would need 3.59
        regular = total // parts
    return regular, total - regular * (parts - 1)


# --- rates and EMI ---------------------------------------------------------------------------


def monthly_rate(rate_bps: int) -> Decimal:
    """r = annual % / 12 / 100 = bps / 120,000 (12% → 0.01), to 50 significant digits."""
    assert rate_bps >= 0
    with localcontext() as exact:
        exact.prec = PRECISION
        return Decimal(rate_bps) / MONTHLY_DENOMINATOR


def emi_minor(principal: int, rate_bps: int, months: int) -> int:
    """The equal monthly instalment on a declining balance, half-up to the minor unit (§5)."""
    assert principal >= 0 and rate_bps >= 0 and months >= 1
    if rate_bps == 0:
        return _round_half_up(principal, months)
    with localcontext() as exact:
        exact.prec = PRECISION
        r = monthly_rate(rate_bps)
        growth = (1 + r) ** months
        emi = principal * r * growth / (growth - 1)
        return int(emi.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def month_interest_minor(balance: int, rate_bps: int) -> int:
    """One month's interest on a balance: round(balance × r), exact."""
    assert balance >= 0 and rate_bps >= 0
    return _round_half_up(balance * rate_bps, MONTHLY_DENOMINATOR)


def flat_interest_minor(principal: int, rate_bps: int, months: int) -> int:
    """Flat interest for the whole term: P × rate% × n / 1200 = P × bps × n / 120,000, rounded once."""
    assert principal >= 0 and rate_bps >= 0 and months >= 1
    return _round_half_up(principal * rate_bps * months, MONTHLY_DENOMINATOR)


def simple_interest_minor(amount: int, rate_bps: int, days: int) -> int:
    """amount × rate% × days / 36,500 = amount × bps × days / 3,650,000, half-up (actual/365)."""
    assert amount >= 0 and rate_bps >= 0 and days >= 0
    return _round_half_up(amount * rate_bps * days, DAILY_DENOMINATOR)


# --- due dates -------------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` later, clamped to that month's end (31 Jan + 1 = 28/29 Feb)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def due_dates(disbursed_on: dt.date, months: int) -> list[dt.date]:
    """The k-th instalment falls due k calendar months after disbursement, k = 1..months; each counts
    from the disbursement day, not the previous due date (31 Jan → 29 Feb → 31 Mar, not 29 Mar)."""
    assert months >= 1
    return [add_months(disbursed_on, k) for k in range(1, months + 1)]


# --- the schedule ----------------------------------------------------------------------------


def _declining_equal_instalments(principal: int, rate_bps: int, months: int) -> list[tuple[int, int]]:
    emi = emi_minor(principal, rate_bps, months)
    balance, parts = principal, []
    for number in range(1, months + 1):
        interest = month_interest_minor(balance, rate_bps)
        # The last clears the balance, whatever the EMI; none pays more than the balance (module docstring).
        paid = balance if number == months else min(emi - interest, balance)
        assert paid >= 0, f"an EMI of {emi} does not cover the interest {interest}"
        parts.append((paid, interest))
        balance -= paid
    return parts


def _declining_equal_principal(principal: int, rate_bps: int, months: int) -> list[tuple[int, int]]:
    regular, last = _even_parts(principal, months)
    balance, parts = principal, []
    for number in range(1, months + 1):
        paid = last if number == months else regular
        parts.append((paid, month_interest_minor(balance, rate_bps)))
        balance -= paid
    return parts


def _flat(principal: int, rate_bps: int, months: int) -> list[tuple[int, int]]:
    principal_regular, principal_last = _even_parts(principal, months)
    interest_regular, interest_last = _even_parts(flat_interest_minor(principal, rate_bps, months), months)
    return [(principal_regular, interest_regular)] * (months - 1) + [(principal_last, interest_last)]


def schedule(principal: int, rate_bps: int, months: int, method: InterestMethod, amortization: Amortization,
             disbursed_on: dt.date, currency: str = "INR") -> Schedule:  # fmt: skip
    """Every instalment of a loan disbursed on `disbursed_on` (§5). The contract validates ranges;
    what reaches here is possible, so an impossible input is a bug (assertion)."""
    assert principal > 0 and rate_bps >= 0 and months >= 1, f"no schedule for {principal} at {rate_bps} bps, {months} months"
    if method == InterestMethod.flat:
        # Flat interest is spread evenly: the contract refuses it with equal principal.
        assert amortization == Amortization.equal_instalments, "flat interest is amortised in equal instalments"
        parts = _flat(principal, rate_bps, months)
    elif amortization == Amortization.equal_instalments:
        parts = _declining_equal_instalments(principal, rate_bps, months)
    else:
        parts = _declining_equal_principal(principal, rate_bps, months)
    balance, instalments = principal, []
    for number, (due, (paid, interest)) in enumerate(zip(due_dates(disbursed_on, months), parts, strict=True), start=1):
        balance -= paid
        instalments.append(Instalment(number=number, due_date=due, principal=paid, interest=interest,
                                      amount=paid + interest, balance_after=balance))  # fmt: skip
    assert balance == 0, f"the principal parts leave {balance}"
    total_interest = sum(i.interest for i in instalments)
    return Schedule(principal=principal, currency=currency, rate_bps=rate_bps, months=months, method=method,
                    amortization=amortization, disbursed_on=disbursed_on, emi=instalments[0].amount,
                    total_interest=total_interest, total_payable=principal + total_interest,
                    maturity_date=instalments[-1].due_date, instalments=instalments)  # fmt: skip


# --- penalty ---------------------------------------------------------------------------------


def penalty_minor(overdue_minor: int, penalty_rate_bps: int, days_late: int, grace_days: int = DEFAULT_GRACE_DAYS) -> int:
    """The penalty on an amount paid `days_late` days after its due date: none within the grace;
    later, simple interest for every day from the due date (§5: 8 days late is 8 days, not 1)."""
    assert days_late >= 0 and grace_days >= 0
    if days_late <= grace_days:
        return 0
    return simple_interest_minor(overdue_minor, penalty_rate_bps, days_late)


def penalty_addition_minor(overdue_minor: int, penalty_rate_bps: int, day: int) -> int:
    """What day `day` (1 = the day after the due date) adds to the penalty due: round(total to
    `day`) − round(total to `day` − 1), so the additions sum to the rounded total of any day. The
    grace is not applied here: it waives the sum when the instalment is paid within it."""
    assert day >= 1
    return simple_interest_minor(overdue_minor, penalty_rate_bps, day) - simple_interest_minor(
        overdue_minor, penalty_rate_bps, day - 1)  # fmt: skip


# --- foreclosure and disbursement ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForeclosureQuote:
    """What closes a loan today (§5, full prepayment only), each part in minor units."""

    outstanding_principal_minor: int  # principal not yet due
    interest_minor: int  # on it, since the last due date
    arrears_minor: int  # instalments due and unpaid (their principal and interest)
    penalties_minor: int
    charges_minor: int
    prepayment_charge_minor: int  # a share of the outstanding principal
    total_minor: int


def foreclosure_quote(outstanding_principal_minor: int, rate_bps: int, days_since_last_due: int, arrears_minor: int = 0,
                      penalties_minor: int = 0, charges_minor: int = 0,
                      prepayment_charge_bps: int = DEFAULT_PREPAYMENT_CHARGE_BPS) -> ForeclosureQuote:  # fmt: skip
    """Outstanding principal + its simple interest for the days since the last due date (since
    disbursement before the first) + arrears, penalties and charges + the prepayment charge."""
    assert min(outstanding_principal_minor, arrears_minor, penalties_minor, charges_minor, prepayment_charge_bps) >= 0
    interest = simple_interest_minor(outstanding_principal_minor, rate_bps, days_since_last_due)
    charge = _round_half_up(outstanding_principal_minor * prepayment_charge_bps, BPS_PER_UNIT)
    total = outstanding_principal_minor + interest + arrears_minor + penalties_minor + charges_minor + charge
    return ForeclosureQuote(outstanding_principal_minor, interest, arrears_minor, penalties_minor, charges_minor, charge, total)


def net_disbursement(amount: int, processing_fee_bps: int, charges: int = 0) -> tuple[int, int]:
    """(net credited, processing fee), minor units: amount − fee (half-up) − other charges
    (insurance included). A disbursement its fees would swallow is a bug upstream."""
    assert amount > 0 and processing_fee_bps >= 0 and charges >= 0
    fee = _round_half_up(amount * processing_fee_bps, BPS_PER_UNIT)
    net = amount - fee - charges
    assert net >= 0, f"fees {fee} and charges {charges} exceed the amount {amount}"
    return net, fee
