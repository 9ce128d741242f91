"""Fixed deposits (banking-rules §2 and §9): interest compounds over the days held,
P × (1 + rate)^(days/365) − P, computed in `Decimal` and rounded once, half-up, when it posts: at
maturity (paid out with the principal, or added to it when the deposit renews at the rate then in
force) or on a premature closure, which earns the contract rate less a penalty (1 percentage
point) for the days held. Nothing leaves the deposit before that: its ledger account's floor
keeps every unit in (`LOCKED_FLOOR`), and only the closing chain lifts it.
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext
from uuid import NAMESPACE_URL, UUID, uuid5

from contracts.account import AccountError, ProductTerms, ProductType
from contracts.common import MAX_AMOUNT
from workers.account.domain.accounts import Refusal

DAY_COUNT_BASIS = 365  # actual/365 (§0)
BPS_PER_UNIT = 10_000
LOCKED_FLOOR = -MAX_AMOUNT  # the ledger's overdraft_limit of a deposit: no debit ever fits above it
MAX_TERM_DAYS = 3_650


def compound_interest(principal: int, rate_bps: int, days: int) -> int:
    """P × (1 + rate)^(days/365) − P in minor units, rounded once, half-up."""
    assert principal >= 0 and rate_bps >= 0 and days >= 0
    with localcontext() as exact:
        exact.prec = 50  # far past the minor unit for any amount and term CBS allows
        rate = Decimal(rate_bps) / BPS_PER_UNIT
        grown = Decimal(principal) * (1 + rate) ** (Decimal(days) / DAY_COUNT_BASIS)
        return int((grown - principal).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def premature_rate_bps(contract_rate_bps: int, penalty_bps: int) -> int:
    """§2 decision: a deposit closed before maturity earns the contract rate less the penalty."""
    return max(0, contract_rate_bps - penalty_bps)


def maturity_date(start: dt.date, term_days: int) -> dt.date:
    return start + dt.timedelta(days=term_days)


def matured(maturity: dt.date, business_date: dt.date) -> bool:
    """A deposit matures at the first close on or after its maturity date (a maturity on a
    holiday is paid the next business day; the interest is the term's, not a day more)."""
    return maturity <= business_date


def deposit_refusal(terms: ProductTerms, amount: int, term_days: int) -> Refusal | None:
    if terms.type != ProductType.fixed_deposit:
        return Refusal(AccountError.invalid_deposit, f"{terms.name} is a {terms.type} product, not a fixed deposit")
    if amount < terms.minimum_balance:
        return Refusal(AccountError.invalid_deposit, f"a deposit of this product is at least {terms.minimum_balance}")
    if not terms.min_term_days <= term_days <= terms.max_term_days:
        return Refusal(AccountError.invalid_deposit,
                       f"the term is {terms.min_term_days} to {terms.max_term_days} days, not {term_days}")  # fmt: skip
    return None


# --- recurring deposits (§2 decision: a fixed monthly instalment for 6–120 months; each earns the
# fixed-deposit interest for its days to maturity; one unpaid at maturity is missed) -------------


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later (31 January + 1 month = 28 or 29 February)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def instalment_due_dates(start: dt.date, instalments: int) -> list[dt.date]:
    """The first is paid at opening (`start`); the k-th falls k months later."""
    return [add_months(start, k) for k in range(instalments)]


def recurring_interest(paid: list[tuple[int, dt.date]], rate_bps: int, until: dt.date) -> int:
    """Σ each paid instalment's compound interest for its days to `until`, each rounded once."""
    return sum(compound_interest(amount, rate_bps, max(0, (until - paid_on).days)) for amount, paid_on in paid)


def recurring_refusal(terms: ProductTerms, instalment: int, instalments: int) -> Refusal | None:
    if terms.type != ProductType.recurring_deposit:
        return Refusal(AccountError.invalid_deposit, f"{terms.name} is a {terms.type} product, not a recurring deposit")
    if instalment < terms.minimum_balance:
        return Refusal(AccountError.invalid_deposit, f"an instalment of this product is at least {terms.minimum_balance}")
    if not terms.min_instalments <= instalments <= terms.max_instalments:
        return Refusal(AccountError.invalid_deposit,
                       f"{terms.min_instalments} to {terms.max_instalments} monthly instalments, not {instalments}")  # fmt: skip
    return None


def instalment_transfer_id(account_id: UUID, seq: int, business_date: dt.date) -> UUID:
    """One per instalment and close that asks (a refused one is asked again under a new id)."""
    return uuid5(NAMESPACE_URL, f"cbs.account.deposit.{account_id}.instalment.{seq}.{business_date.isoformat()}")


def funding_transfer_id(account_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"cbs.account.deposit.{account_id}.funding")


def interest_transfer_id(account_id: UUID, maturity: dt.date, kind: str) -> UUID:
    """One per deposit, term and way it ends (`maturity`, `renewal` or `premature`)."""
    return uuid5(NAMESPACE_URL, f"cbs.account.deposit.{account_id}.{maturity.isoformat()}.{kind}")
