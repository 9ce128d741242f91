"""Accounts (banking-rules §2): products, numbers, eligibility and the status machine.

Pure: no I/O, no clock, no id generation. Refusals are returned as `Refusal` values; a broken
precondition the caller controls (an out-of-range sequence, a frozen row without its previous
status) is a bug and fails an assertion.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from contracts.account import AccountError, AccountStatus, AccountView, ProductTerms, ProductType, ProductView
from contracts.common import CURRENCY_EXPONENTS

DEFAULT_CURRENCY = "INR"
SAVINGS_CODE = "savings"
CURRENT_CODE = "current"
FIXED_DEPOSIT_CODE = "fixed_deposit"
RECURRING_DEPOSIT_CODE = "recurring_deposit"
TERM_DEPOSITS = frozenset({ProductType.fixed_deposit, ProductType.recurring_deposit})
# Savings credit interest is a product setting the rules leave open; current accounts earn none.
DEFAULT_SAVINGS_RATE_BPS = 350

# Ledger account code and flags of a customer deposit (banking-rules §3): a liability, so the
# ledger refuses a debit beyond credits + overdraft_limit; history keeps balances as of any time.
CUSTOMER_DEPOSIT_CODE = "customer_deposit"
DEPOSIT_LEDGER_FLAGS = frozenset({"debits_must_not_exceed_credits", "history"})


@dataclass(frozen=True, slots=True)
class Refusal:
    code: AccountError
    message: str


# --- products --------------------------------------------------------------------------------


# A product is data (`ProductTerms`, versioned by the store as `ProductView`): an officer defines
# it; these rules say which terms may be defined, and what the shipped defaults are.


def to_minor(major: int, currency: str) -> int:
    """The rules write whole major units; the configured currency's exponent decides the scale."""
    assert currency in CURRENCY_EXPONENTS, f"unknown currency {currency}"
    return major * 10 ** CURRENCY_EXPONENTS[currency]


def default_products(
    currency: str = DEFAULT_CURRENCY,
    *,
    current_overdraft_limit: int = 0,
    savings_rate_bps: int = DEFAULT_SAVINGS_RATE_BPS,
) -> dict[str, ProductTerms]:
    """Savings and current with the §2 defaults, keyed by product code: version 1 of each on a new
    installation. `current_overdraft_limit` is in minor units; savings never overdraws."""
    assert current_overdraft_limit >= 0 and savings_rate_bps >= 0
    savings = ProductTerms(
        name="Savings",
        type=ProductType.savings,
        currency=currency,
        minimum_balance=to_minor(100, currency),
        daily_cash_withdrawal_limit=to_minor(50_000, currency),
        daily_payments_out_limit=to_minor(100_000, currency),
        monthly_debit_limit=to_minor(1_000_000, currency),
        overdraft_limit=0,
        rate_bps=savings_rate_bps,
        free_atm_withdrawals=5,
        atm_fee=to_minor(20, currency),
    )
    # §2 decision: current = 10 × savings for the cash, payment and monthly limits.
    current = ProductTerms(
        name="Current",
        type=ProductType.current,
        currency=currency,
        minimum_balance=to_minor(500, currency),
        daily_cash_withdrawal_limit=10 * savings.daily_cash_withdrawal_limit,
        daily_payments_out_limit=10 * savings.daily_payments_out_limit,
        monthly_debit_limit=10 * savings.monthly_debit_limit,
        overdraft_limit=current_overdraft_limit,
        rate_bps=0,
        free_atm_withdrawals=10,
        atm_fee=to_minor(10, currency),
    )
    fixed_deposit = ProductTerms(
        name="Fixed Deposit",
        type=ProductType.fixed_deposit,
        currency=currency,
        rate_bps=700,
        minimum_balance=to_minor(1_000, currency),  # the smallest deposit (§2)
        daily_cash_withdrawal_limit=0,
        daily_payments_out_limit=0,
        monthly_debit_limit=0,
        overdraft_limit=0,
        min_term_days=7,
        max_term_days=3_650,
        premature_penalty_bps=100,  # §2 decision: 1 percentage point
    )
    recurring_deposit = fixed_deposit.model_copy(update={
        "name": "Recurring Deposit", "type": ProductType.recurring_deposit,
        "minimum_balance": to_minor(100, currency),  # the smallest instalment (§2)
        "min_term_days": 0, "max_term_days": 0, "min_instalments": 6, "max_instalments": 120,
    })  # fmt: skip
    return {SAVINGS_CODE: savings, CURRENT_CODE: current, FIXED_DEPOSIT_CODE: fixed_deposit,
            RECURRING_DEPOSIT_CODE: recurring_deposit}  # fmt: skip


def terms_of(product: ProductTerms) -> ProductTerms:
    """The terms alone (a view or a command carries more)."""
    return ProductTerms.model_validate(product.model_dump(include=set(ProductTerms.model_fields)))


def product_refusal(terms: ProductTerms, newest: ProductView | None) -> Refusal | None:
    """Terms an officer may define: None, or why not."""
    def refused(message: str) -> Refusal:
        return Refusal(AccountError.invalid_product, message)

    if terms.currency not in CURRENCY_EXPONENTS:
        return refused(f"{terms.currency} is not a currency CBS knows")
    if newest is not None and (terms.type, terms.currency) != (newest.type, newest.currency):
        return refused(f"a product keeps its type and currency: {newest.type} in {newest.currency}")
    if terms.type == ProductType.savings and (terms.overdraft_limit or terms.overdraft_rate_bps):
        return refused("a savings account never overdraws (banking-rules §2)")
    if terms.type == ProductType.current and terms.rate_bps:
        return refused("current accounts earn no credit interest (banking-rules §2)")
    if terms.type in TERM_DEPOSITS and (terms.overdraft_limit or terms.maintenance_fee or terms.shortfall_fee):
        return refused("a term deposit neither overdraws nor pays monthly fees")
    if terms.type == ProductType.fixed_deposit and not 1 <= terms.min_term_days <= terms.max_term_days:
        return refused("a fixed deposit needs its shortest and longest term, 1 day or more, the shortest first")
    if terms.type == ProductType.recurring_deposit and not 6 <= terms.min_instalments <= terms.max_instalments:
        return refused("a recurring deposit runs 6 to 120 monthly instalments (banking-rules §2), the fewest first")
    if terms.type != ProductType.fixed_deposit and (terms.min_term_days or terms.max_term_days):
        return refused("terms in days are a fixed deposit's")
    if terms.type != ProductType.recurring_deposit and (terms.min_instalments or terms.max_instalments):
        return refused("instalments are a recurring deposit's")
    if terms.type not in TERM_DEPOSITS and terms.premature_penalty_bps:
        return refused("a premature penalty is a term deposit's")
    if max(terms.daily_cash_withdrawal_limit, terms.daily_payments_out_limit) > terms.monthly_debit_limit:
        return refused("a daily limit cannot exceed the monthly debit limit")
    return None


def find_product(product: ProductView | None, code: str) -> ProductView | Refusal:
    if product is None:
        return Refusal(AccountError.product_not_found, f"no product with code {code!r}")
    return product


def ledger_overdraft_limit(minimum_balance: int, overdraft: int) -> int:
    """§2 decision: the ledger enforces the floor, so every worker's debit respects it.

    Negative when the minimum balance exceeds the overdraft: the ledger then keeps that much in.
    """
    return overdraft - minimum_balance


def overdraft_refusal(terms: ProductTerms, overdraft: int) -> Refusal | None:
    """An officer lets a current account overdraw, within its product version's ceiling."""
    if terms.type != ProductType.current:
        return Refusal(AccountError.invalid_overdraft, f"a {terms.type} account never overdraws (banking-rules §2)")
    if overdraft > terms.overdraft_limit:
        return Refusal(AccountError.invalid_overdraft,
                       f"the product allows an overdraft of at most {terms.overdraft_limit}, not {overdraft}")  # fmt: skip
    return None


@dataclass(frozen=True, slots=True)
class LedgerAccountSpec:
    code: str
    currency: str
    flags: frozenset[str]
    overdraft_limit: int


def ledger_account_spec(product: ProductTerms) -> LedgerAccountSpec:
    """What the ledger account behind a new account of `product` must look like."""
    return LedgerAccountSpec(
        code=CUSTOMER_DEPOSIT_CODE,
        currency=product.currency,
        flags=DEPOSIT_LEDGER_FLAGS,
        overdraft_limit=ledger_overdraft_limit(product.minimum_balance, 0),  # an officer may raise it (set_overdraft)
    )


def ledger_flags(status: AccountStatus) -> frozenset[str]:
    """Ledger flags for an account status: §2 decision, a freeze is total and closed refuses all."""
    if status == AccountStatus.frozen:
        return DEPOSIT_LEDGER_FLAGS | {"frozen"}
    if status == AccountStatus.closed:
        return DEPOSIT_LEDGER_FLAGS | {"closed"}
    return DEPOSIT_LEDGER_FLAGS


# --- account numbers -------------------------------------------------------------------------

ACCOUNT_PREFIXES: dict[ProductType, str] = {ProductType.savings: "SAV", ProductType.current: "CUR",
                                            ProductType.fixed_deposit: "FD", ProductType.recurring_deposit: "RD"}  # fmt: skip
MAX_BRANCH_SEQUENCE = 99_999_999  # 8 digits
_NUMBER_RE = re.compile(r"^(?P<prefix>[A-Z]{2,3})(?P<digits>[0-9]{12})$")


# Check digit: Luhn (mod 10) over the 11 digits of branch + sequence. Chosen over ISO 7064
# MOD 97-10 because one digit keeps the §2 shape plus one character, and Luhn still catches every
# single-digit error and every adjacent transposition except 09 ↔ 90. The letter prefix is not
# covered: it is checked against the known prefixes instead.
def luhn_check_digit(digits: str) -> int:
    assert digits.isdigit(), "Luhn runs over decimal digits only"
    total = 0
    # The check digit will take the rightmost place, so the payload's rightmost digit is doubled.
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10


def luhn_is_valid(digits: str) -> bool:
    if len(digits) < 2 or not digits.isdigit():
        return False
    return luhn_check_digit(digits[:-1]) == int(digits[-1])


def account_number(product_type: ProductType, branch: str, sequence: int) -> str:
    """E.g. savings, "000", 1234 → `SAV00000001234` + check digit."""
    assert re.fullmatch(r"[0-9]{3}", branch), f"branch must be 3 digits, got {branch!r}"
    assert 1 <= sequence <= MAX_BRANCH_SEQUENCE, f"branch sequence out of range: {sequence}"
    payload = f"{branch}{sequence:08d}"
    return f"{ACCOUNT_PREFIXES[product_type]}{payload}{luhn_check_digit(payload)}"


def is_valid_account_number(s: str) -> bool:
    m = _NUMBER_RE.fullmatch(s)
    if m is None or m["prefix"] not in ACCOUNT_PREFIXES.values():
        return False
    return int(m["digits"][3:11]) >= 1 and luhn_is_valid(m["digits"])


# --- eligibility -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerStanding:
    """What the account worker knows of a customer from `customer.*` events."""

    status: str  # inactive, active, suspended, closed
    kyc_status: str  # pending, in_progress, completed, rejected, expired


def check_eligibility(customer: CustomerStanding | None) -> Refusal | None:
    """§1: a new account needs an active customer with completed KYC. None = eligible."""
    if customer is None:
        return Refusal(AccountError.customer_unknown, "no customer with this id is known")
    if customer.status != "active":
        return Refusal(AccountError.customer_not_eligible, f"customer is {customer.status}, not active")
    if customer.kyc_status != "completed":
        return Refusal(AccountError.customer_not_eligible, f"customer KYC is {customer.kyc_status}, not completed")
    return None


def decide_opening(
    customer: CustomerStanding | None, product_code: str, product: ProductView | None
) -> ProductView | Refusal:
    """The product (its newest version) to open under, or why not."""
    product = find_product(product, product_code)
    if isinstance(product, Refusal):
        return product
    refusal = check_eligibility(customer)
    return refusal if refusal is not None else product


def opening_status(product_type: ProductType) -> AccountStatus:
    # Every account waits for the ledger to create its ledger account; until then no money could
    # reach it.
    return AccountStatus.opening


def ledger_account_created(status: AccountStatus, product_type: ProductType = ProductType.savings) -> StatusChange | Refusal:
    """Savings and current become active (an initial deposit is optional, §2); a fixed deposit
    `inactive` until its money is in."""
    if status != AccountStatus.opening:
        return Refusal(AccountError.invalid_transition, f"account is {status}, not opening")
    return StatusChange(AccountStatus.inactive if product_type in TERM_DEPOSITS else AccountStatus.active)


def deposit_funded(status: AccountStatus) -> StatusChange | Refusal:
    if status != AccountStatus.inactive:
        return Refusal(AccountError.invalid_transition, f"account is {status}, not inactive")
    return StatusChange(AccountStatus.active)


def deposit_unfunded(status: AccountStatus) -> StatusChange:
    """The funding account could not pay: the deposit's account closes unused."""
    assert status == AccountStatus.inactive, f"only an unfunded deposit closes unused, not a {status} one"
    return StatusChange(AccountStatus.closed)


def ledger_account_refused(status: AccountStatus) -> StatusChange:
    """The ledger would not create the ledger account: the account is closed, never usable."""
    assert status == AccountStatus.opening, f"only an opening account can fail to open, not {status}"
    return StatusChange(AccountStatus.closed)


# --- status machine --------------------------------------------------------------------------

_OPEN = (AccountStatus.active, AccountStatus.dormant)


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: AccountStatus
    status_before_freeze: AccountStatus | None = None


def _closed() -> Refusal:
    return Refusal(AccountError.account_closed, "the account is closed")


def freeze(status: AccountStatus) -> StatusChange | Refusal:
    if status == AccountStatus.closed:
        return _closed()
    if status not in _OPEN:
        return Refusal(AccountError.invalid_transition, f"cannot freeze an account that is {status}")
    return StatusChange(AccountStatus.frozen, status_before_freeze=AccountStatus(status))


def unfreeze(status: AccountStatus, status_before_freeze: AccountStatus | None) -> StatusChange | Refusal:
    if status == AccountStatus.closed:
        return _closed()
    if status != AccountStatus.frozen:
        return Refusal(AccountError.invalid_transition, f"cannot unfreeze an account that is {status}")
    assert status_before_freeze in _OPEN, f"frozen account remembers {status_before_freeze!r}"
    return StatusChange(AccountStatus(status_before_freeze))


def close(status: AccountStatus, *, balance: int, pending: int = 0) -> StatusChange | Refusal:
    """Close at zero balance only. `pending` = the ledger's debits + credits pending (holds)."""
    assert pending >= 0, "pending amounts are never negative"
    if status == AccountStatus.closed:
        return _closed()
    if status == AccountStatus.frozen:
        return Refusal(AccountError.account_frozen, "unfreeze the account before closing it")
    if status not in _OPEN:
        return Refusal(AccountError.invalid_transition, f"cannot close an account that is {status}")
    if balance != 0:
        return Refusal(AccountError.close_refused_nonzero_balance, f"balance is {balance}, must be 0")
    if pending != 0:
        return Refusal(AccountError.close_refused_pending_transfers, "holds or pending transfers remain")
    return StatusChange(AccountStatus.closed)


def migration_refusal(account: AccountView, to: ProductView | None) -> Refusal | None:
    """An account moves to another version of its own product, keeping an overdraft it allows."""
    if to is None:
        return Refusal(AccountError.product_not_found, f"no version of {account.product_code!r} with that number")
    if account.status == AccountStatus.closed:
        return _closed()
    if to.version == account.product_version:
        return Refusal(AccountError.invalid_transition, f"the account is on version {to.version} already")
    return overdraft_refusal(to, account.overdraft_limit) if account.overdraft_limit else None


# --- dormancy ------------------------------------------------------------------------------------

DORMANT_AFTER_MONTHS = 12  # without customer-initiated activity (banking-rules §2)


def dormancy_cutoff(business_date: dt.date) -> dt.date:
    """The last activity date that makes an active account dormant at this date's close: twelve
    calendar months before it (29 February's year-later twin is 28 February)."""
    year, month = divmod(business_date.year * 12 + business_date.month - 1 - DORMANT_AFTER_MONTHS, 12)
    month += 1
    return dt.date(year, month, min(business_date.day, calendar.monthrange(year, month)[1]))


def go_dormant(status: AccountStatus) -> StatusChange | Refusal:
    if status != AccountStatus.active:
        return Refusal(AccountError.invalid_transition, f"only an active account turns dormant, not a {status} one")
    return StatusChange(AccountStatus.dormant)


def reactivate(status: AccountStatus, customer: CustomerStanding | None) -> StatusChange | Refusal:
    """§2: dormant → active on the customer's request, with valid KYC."""
    if status == AccountStatus.closed:
        return _closed()
    if status != AccountStatus.dormant:
        return Refusal(AccountError.invalid_transition, f"only a dormant account is reactivated, not a {status} one")
    if refusal := check_eligibility(customer):
        return refusal
    return StatusChange(AccountStatus.active)


# --- checks before asking the ledger ------------------------------------------------------------
# The account changes only after the ledger has applied the flag; these say beforehand whether
# the change is legal at all, so an illegal one never reaches the ledger.


def freeze_check(account: AccountView) -> Refusal | None:
    change = freeze(account.status)
    return change if isinstance(change, Refusal) else None


def unfreeze_check(account: AccountView) -> Refusal | None:
    change = unfreeze(account.status, account.status_before_freeze)
    return change if isinstance(change, Refusal) else None


def payout_refusal(account: AccountView, target: AccountView | None, *, in_cash: bool) -> Refusal | None:
    """Where a closing account's balance may go: the counter, or another active account of the same
    customer in the same currency (never a stranger's: a close is no way to move money away)."""
    if in_cash:
        return None
    if target is None:
        return Refusal(AccountError.invalid_payout_account, "no such payout account")
    if target.account_id == account.account_id:
        return Refusal(AccountError.invalid_payout_account, "an account cannot pay itself out")
    if target.customer_id != account.customer_id:
        return Refusal(AccountError.invalid_payout_account, "the payout account belongs to another customer")
    if target.currency != account.currency:
        return Refusal(AccountError.invalid_payout_account, f"the payout account is in {target.currency}")
    if target.status != AccountStatus.active:
        return Refusal(AccountError.invalid_payout_account, f"the payout account is {target.status}")
    return None


def hold_refusal(status: AccountStatus) -> Refusal | None:
    """Money can be held on an account that can still be debited: not a frozen or closed one."""
    if status == AccountStatus.closed:
        return Refusal(AccountError.account_closed, "the account is closed")
    if status == AccountStatus.frozen:
        return Refusal(AccountError.account_frozen, "the account is frozen: nothing moves, nothing is held")
    if status not in _OPEN:
        return Refusal(AccountError.invalid_transition, f"cannot hold money on an account that is {status}")
    return None


def close_check(account: AccountView) -> Refusal | None:
    # Balance 0 here: the ledger, which holds the money, refuses a close with money or holds.
    change = close(account.status, balance=0)
    return change if isinstance(change, Refusal) else None
