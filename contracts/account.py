"""Messages of the account worker: products, account opening, reads and the lifecycle.

Every command answers a `Reply`; the docstring of each command names the model its `result` holds.
Money is integer minor units of the product's currency (banking-rules §0).
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from contracts import day
from contracts.common import (
    MAX_AMOUNT, Command, Contract, Event, Page, amount_field, currency_field, cursor_field, page_size,
)  # fmt: skip

# Product codes are lower snake case so they read well in URLs and routing logs.
PRODUCT_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
BRANCH_PATTERN = r"^[0-9]{3}$"
# Prefix + 3-digit branch + 8-digit branch sequence + 1 Luhn check digit (workers/account/domain/accounts.py).
ACCOUNT_NUMBER_PATTERN = r"^(SAV|CUR|FD|RD)[0-9]{12}$"


class ProductType(StrEnum):
    savings = "savings"
    current = "current"
    fixed_deposit = "fixed_deposit"
    recurring_deposit = "recurring_deposit"


class InterestPosting(StrEnum):
    """When accrued interest posts: at the end of each calendar month or quarter (banking-rules §2)."""

    monthly = "monthly"
    quarterly = "quarterly"


class AccountStatus(StrEnum):
    active = "active"
    dormant = "dormant"
    frozen = "frozen"
    closed = "closed"
    # FD/RD open unfunded (banking-rules §2); savings and current never use it.
    inactive = "inactive"
    # Recorded, waiting for the ledger to create its ledger account; usable once `active`.
    opening = "opening"


class AccountError(StrEnum):
    """Stable refusal codes of the account worker (the reply's `error.code`)."""

    account_not_found = "account_not_found"
    product_not_found = "product_not_found"
    invalid_product = "invalid_product"  # terms an officer may not define (the message says which)
    invalid_overdraft = "invalid_overdraft"  # a savings account, or beyond the product's ceiling
    invalid_deposit = "invalid_deposit"  # below the product's smallest deposit, or a term it does not offer
    invalid_funding_account = "invalid_funding_account"  # not the customer's own active account in the currency
    funding_refused = "funding_refused"  # the ledger would not move the deposit from the funding account
    deposit_not_matured = "deposit_not_matured"  # not a running deposit (matured, closed, or not funded)
    unavailable = "unavailable"  # the business date is not known yet
    overdraft_in_use = "overdraft_in_use"  # lower than the overdraft the account already uses
    customer_unknown = "customer_unknown"
    # Customer not `active`, or KYC not `completed`.
    customer_not_eligible = "customer_not_eligible"
    # The same account_id was already used to open a different account.
    account_exists = "account_exists"
    invalid_transition = "invalid_transition"
    account_closed = "account_closed"
    account_frozen = "account_frozen"
    close_refused_nonzero_balance = "close_refused_nonzero_balance"
    close_refused_pending_transfers = "close_refused_pending_transfers"
    # The ledger would not create or change the account's ledger account (details say why).
    ledger_refused = "ledger_refused"
    # Closing: the payout account is missing, not active, another customer's or another currency's.
    invalid_payout_account = "invalid_payout_account"
    payout_refused = "payout_refused"  # the ledger would not move the balance there (details say why)
    # Holds and liens:
    hold_exists = "hold_exists"  # the hold_id names another hold
    hold_not_found = "hold_not_found"
    hold_not_active = "hold_not_active"  # released, expired, refused, or still being placed
    insufficient_available = "insufficient_available"  # more than is available above the floor
    statement_not_found = "statement_not_found"  # no statement of that month (not drawn up, or withheld)


def _actor_field() -> Any:
    return Field(min_length=1, max_length=200, description="who asked for the change (staff or system id)")


def _reason_field() -> Any:
    return Field(min_length=1, max_length=500, description="why, recorded with the change")


# --- results ---------------------------------------------------------------------------------


MAX_RATE_BPS = 10_000  # 100% a year: a deposit rate above it is a typing error, not a product


class ProductTerms(Contract):
    """What an officer defines for a product: its rules and its fee table, money in minor units of
    its currency (banking-rules §2). Fees are charged at close of business once that is built."""

    name: str = Field(min_length=1, max_length=100, description="what customers see, e.g. `Regular Savings`")
    type: ProductType = Field(description="savings or current; a product keeps its type across versions")
    currency: str = currency_field("ISO 4217 currency of accounts of this product; kept across versions")
    rate_bps: int = Field(ge=0, le=MAX_RATE_BPS, description="credit interest, basis points a year (current: 0)")
    interest_posting: InterestPosting = Field(default=InterestPosting.quarterly,
                                              description="interest posts at each month's or quarter's end")  # fmt: skip
    minimum_balance: int = amount_field("balance the account must keep, minor units")
    daily_cash_withdrawal_limit: int = amount_field("cash withdrawals a bank day, minor units")
    daily_payments_out_limit: int = amount_field("payments out a bank day, minor units")
    monthly_debit_limit: int = amount_field("customer debits a calendar month, minor units")
    overdraft_limit: int = amount_field("the most an officer may let an account overdraw, minor units; 0 = none; "
                                        "savings never")  # fmt: skip
    maintenance_fee: int = Field(default=0, ge=0, le=MAX_AMOUNT, description="charged each month, minor units")
    shortfall_fee: int = Field(default=0, ge=0, le=MAX_AMOUNT,
                               description="charged for a month whose average day-end balance fell below the minimum")  # fmt: skip
    free_atm_withdrawals: int = Field(default=0, ge=0, le=100, description="ATM withdrawals a month without a fee")
    atm_fee: int = Field(default=0, ge=0, le=MAX_AMOUNT, description="each ATM withdrawal beyond the free ones")
    overdraft_rate_bps: int = Field(default=0, ge=0, le=MAX_RATE_BPS, description="debit interest on an overdraft")
    # Fixed deposits (`minimum_balance` is then the smallest deposit; the limits and fees are 0):
    min_term_days: int = Field(default=0, ge=0, le=3_650, description="fixed deposit: the shortest term")
    max_term_days: int = Field(default=0, ge=0, le=3_650, description="fixed deposit: the longest term")
    premature_penalty_bps: int = Field(default=0, ge=0, le=MAX_RATE_BPS,
                                       description="fixed or recurring deposit: the rate a premature closure forgoes")  # fmt: skip
    # Recurring deposits (`minimum_balance` is then the smallest instalment):
    min_instalments: int = Field(default=0, ge=0, le=120, description="recurring deposit: the fewest monthly instalments")
    max_instalments: int = Field(default=0, ge=0, le=120, description="recurring deposit: the most monthly instalments")


class ProductView(ProductTerms):
    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product code, e.g. `savings`")
    version: int = Field(ge=1, description="1, then one more each time an officer changes the terms")
    defined_by: str = Field(description="who defined this version (`system` for the shipped defaults)")
    defined_at: datetime = Field(description="UTC time this version was defined")


class ProductList(Contract):
    items: list[ProductView] = Field(description="each product's newest version: what new accounts open under")


class AccountView(Contract):
    account_id: UUID = Field(description="account id chosen by the opener")
    number: str = Field(pattern=ACCOUNT_NUMBER_PATTERN, description="account number with its check digit")
    customer_id: UUID = Field(description="the primary holder")
    product_code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product the account was opened under")
    product_version: int = Field(default=1, ge=1, description="the product's version whose terms the account keeps")
    type: ProductType = Field(description="savings, current or fixed_deposit")
    currency: str = currency_field("ISO 4217 currency of the account")
    status: AccountStatus = Field(description="active, dormant, frozen, closed or inactive")
    status_before_freeze: AccountStatus | None = Field(
        default=None, description="status an unfreeze restores; set only while frozen"
    )
    ledger_account_id: UUID = Field(description="the ledger account that holds the money")
    branch: str = Field(pattern=BRANCH_PATTERN, description="3-digit branch code")
    nickname: str | None = Field(default=None, description="the holder's own name for the account")
    opened_at: datetime = Field(description="UTC time of opening")
    closed_at: datetime | None = Field(default=None, description="UTC time of closing; null while open")
    overdraft_limit: int = Field(default=0, ge=0, description="what an officer lets it overdraw, minor units; 0 = none")
    last_customer_activity_at: datetime | None = Field(
        default=None, description="UTC time of the customer's last own deposit, withdrawal or payment out (opening "
                                  "and reactivation count): a year without any, and the account turns dormant")
    version: int = Field(ge=1, description="increases by one on every change")


# --- commands --------------------------------------------------------------------------------


class ListProducts(Command):
    """Result: `ProductList`."""

    routing_key: ClassVar[str] = "account.list_products"
    read_only: ClassVar[bool] = True


class DefineProduct(ProductTerms, Command):
    """Create a product (version 1) or change its terms (the next version): new accounts open under
    the newest version; accounts opened before keep theirs. The same terms as the newest version
    define nothing new (a retry answers that version). Result: `ProductView`. Refusals:
    invalid_product (a type or currency change, an overdraft on savings, a minimum balance below
    zero's reach…)."""

    routing_key: ClassVar[str] = "account.define_product"

    code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product code, e.g. `savings_plus`")
    actor: str = _actor_field()


class GetProduct(Command):
    """A product's newest version, or the one named. Result: `ProductView`. Refusals: product_not_found."""

    routing_key: ClassVar[str] = "account.get_product"
    read_only: ClassVar[bool] = True

    code: str = Field(pattern=PRODUCT_CODE_PATTERN)
    version: int | None = Field(default=None, ge=1, description="none: the newest")


class ProductDefined(Event):
    routing_key: ClassVar[str] = "account.product_defined"

    product: ProductView
    occurred_at: AwareDatetime


class OpenAccount(Command):
    """Open a savings or current account. Result: `AccountView`."""

    routing_key: ClassVar[str] = "account.open_account"

    account_id: UUID = Field(description="new account's id, chosen by the caller (makes retries safe)")
    customer_id: UUID = Field(description="the primary holder; must be active with KYC completed")
    product_code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="code from `account.list_products`")
    branch: str = Field(default="000", pattern=BRANCH_PATTERN, description="3-digit branch code")
    nickname: str | None = Field(default=None, min_length=1, max_length=60, description="holder's own name for it")


class GetAccount(Command):
    """Result: `AccountView`."""

    routing_key: ClassVar[str] = "account.get_account"
    read_only: ClassVar[bool] = True

    account_id: UUID = Field(description="the account to read")


class ListCustomerAccounts(Command):
    """Result: `Page[AccountView]`, oldest first."""

    routing_key: ClassVar[str] = "account.list_customer_accounts"
    read_only: ClassVar[bool] = True

    customer_id: UUID = Field(description="whose accounts")
    limit: int = page_size(default=50, most=100)
    cursor: str | None = cursor_field()


class FreezeAccount(Command):
    """Freeze both sides of the account. Result: `AccountView`."""

    routing_key: ClassVar[str] = "account.freeze_account"

    account_id: UUID = Field(description="the account to freeze")
    actor: str = _actor_field()
    reason: str = _reason_field()


class UnfreezeAccount(Command):
    """Restore the status the account had before its freeze. Result: `AccountView`."""

    routing_key: ClassVar[str] = "account.unfreeze_account"

    account_id: UUID = Field(description="the account to unfreeze")
    actor: str = _actor_field()
    reason: str = _reason_field()


class SetOverdraft(Command):
    """Let a current account overdraw up to `overdraft_limit` (0 = none), within its product
    version's ceiling (banking-rules §2). The ledger enforces it at once. Result: `AccountView`.
    Refusals: invalid_overdraft (a savings account, or over the ceiling), overdraft_in_use (lower
    than what the account already uses), account_closed."""

    routing_key: ClassVar[str] = "account.set_overdraft"

    account_id: UUID
    overdraft_limit: int = Field(ge=0, le=MAX_AMOUNT, description="minor units below zero")
    actor: str = _actor_field()
    reason: str = _reason_field()


class CloseCustomerAccounts(Command):
    """A customer leaves the bank: each of their savings and current accounts is closed in turn, as
    `close_account` would with a cash payout (its interest and charges settled, the whole balance
    paid out at the counter). Refused before anything moves while one is frozen or a term deposit
    still runs (close it early first); a close the ledger refuses stops the rest, with the
    accounts closed so far in the details. Then the customer worker may close the customer.
    Result: `CustomerAccountsClosed`."""

    routing_key: ClassVar[str] = "account.close_customer_accounts"

    customer_id: UUID
    actor: str = _actor_field()
    reason: str = _reason_field()


class CustomerAccountsClosed(Contract):
    customer_id: UUID
    closed: list[UUID] = Field(description="the accounts this closed, in the order it closed them")


class MigrateProduct(Command):
    """Move an account to another version of its product (banking-rules §2: accounts keep the
    version they opened with unless migrated): from now on its rate, fees and minimum balance are
    that version's; the ledger's floor follows at once. Result: `AccountView`. Refusals:
    product_not_found, invalid_transition (the version it has, or a closed account),
    invalid_overdraft (its overdraft above the version's ceiling), overdraft_in_use."""

    routing_key: ClassVar[str] = "account.migrate_product"

    account_id: UUID
    to_version: int = Field(ge=1, description="a version of the account's own product")
    actor: str = _actor_field()
    reason: str = _reason_field()


class ReactivateAccount(Command):
    """A dormant account active again, on the customer's request: their KYC must be completed and
    they must be active (banking-rules §2). Counts as the customer's activity. Result:
    `AccountView`. Refusals: invalid_transition (not dormant), customer_not_eligible."""

    routing_key: ClassVar[str] = "account.reactivate_account"

    account_id: UUID = Field(description="the dormant account")
    actor: str = _actor_field()
    reason: str = _reason_field()


class CloseAccount(Command):
    """Close for good. Result: `AccountView`. With money left, name where it goes: another active
    account of the same customer in the same currency (`payout_account_id`), or the counter
    (`payout_in_cash`); the ledger then pays the whole balance out, below the minimum balance to
    zero, and closes, in one transaction. Without a payout, refused unless the balance is zero.
    Refused too while a hold is open, or when the account is overdrawn."""

    routing_key: ClassVar[str] = "account.close_account"

    account_id: UUID = Field(description="the account to close")
    actor: str = _actor_field()
    reason: str = _reason_field()
    payout_account_id: UUID | None = Field(default=None, description="the account that receives the balance")
    payout_in_cash: bool = Field(default=False, description="the balance is paid out in cash at the counter")

    @model_validator(mode="after")
    def _one_payout(self) -> CloseAccount:
        if self.payout_account_id is not None and self.payout_in_cash:
            raise ValueError("pay out to an account or in cash, not both")
        if self.payout_account_id == self.account_id:
            raise ValueError("an account cannot pay itself out")
        return self


# --- events ----------------------------------------------------------------------------------


class _AccountFact(Event):
    """Fields every account event carries, so a consumer can act without asking back."""

    account_id: UUID = Field(description="the account")
    customer_id: UUID = Field(description="the primary holder")
    number: str = Field(pattern=ACCOUNT_NUMBER_PATTERN, description="account number")
    product_code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="product of the account")
    currency: str = currency_field("ISO 4217 currency of the account")
    status: AccountStatus = Field(description="status after the event")
    occurred_at: datetime = Field(description="UTC time the change was committed")


class _WithProductLimits(_AccountFact):
    """The product version's limits and ATM terms, so the payment worker applies them without
    asking (banking-rules §2); null: not sent (an event of before they were)."""

    daily_cash_withdrawal_limit: int | None = Field(default=None, ge=0, description="cash withdrawals a bank day, minor units")
    daily_payments_out_limit: int | None = Field(default=None, ge=0, description="payments out a bank day, minor units")
    monthly_debit_limit: int | None = Field(default=None, ge=0, description="customer debits a calendar month, minor units")
    free_atm_withdrawals: int | None = Field(default=None, ge=0, description="ATM withdrawals a calendar month without a fee")
    atm_fee: int | None = Field(default=None, ge=0, description="each ATM withdrawal beyond the free ones, minor units")


def product_limits(terms: ProductTerms) -> dict[str, int]:
    """The `_WithProductLimits` fields of a product version's terms."""
    return {name: getattr(terms, name) for name in ("daily_cash_withdrawal_limit", "daily_payments_out_limit",
                                                    "monthly_debit_limit", "free_atm_withdrawals", "atm_fee")}  # fmt: skip


class AccountOpened(_WithProductLimits):
    routing_key: ClassVar[str] = "account.opened"

    type: ProductType = Field(description="savings or current")
    product_version: int = Field(default=1, ge=1, description="the product version whose terms the account keeps")
    branch: str = Field(pattern=BRANCH_PATTERN, description="3-digit branch code")
    ledger_account_id: UUID = Field(description="the ledger account that holds the money")


class AccountFrozen(_AccountFact):
    routing_key: ClassVar[str] = "account.frozen"

    status_before_freeze: AccountStatus = Field(description="status an unfreeze will restore")
    actor: str = _actor_field()
    reason: str = _reason_field()


class AccountUnfrozen(_AccountFact):
    routing_key: ClassVar[str] = "account.unfrozen"

    actor: str = _actor_field()
    reason: str = _reason_field()


class OverdraftChanged(_AccountFact):
    routing_key: ClassVar[str] = "account.overdraft_changed"

    overdraft_limit: int = Field(ge=0, description="after the change, minor units")
    actor: str = _actor_field()
    reason: str = _reason_field()


class ProductMigrated(_WithProductLimits):
    """The account now keeps another version's terms; its limits and ATM terms are the new version's."""

    routing_key: ClassVar[str] = "account.product_migrated"

    from_version: int
    to_version: int
    actor: str = _actor_field()
    reason: str = _reason_field()


class AccountDormant(_AccountFact):
    """No customer-initiated activity (own deposit, withdrawal, payment out) for 12 months: found by
    close of business. Customer debits are refused (`account_dormant`); credits and the bank's
    debits (fees) still reach it."""

    routing_key: ClassVar[str] = "account.dormant"

    last_customer_activity_at: datetime = Field(description="UTC time of the last customer-initiated activity")
    business_date: dt.date = Field(description="the close that found it dormant")


class AccountReactivated(_AccountFact):
    routing_key: ClassVar[str] = "account.reactivated"

    actor: str = _actor_field()
    reason: str = _reason_field()


class AccountClosed(_AccountFact):
    routing_key: ClassVar[str] = "account.closed"

    actor: str = _actor_field()
    reason: str = _reason_field()


AccountPage = Page[AccountView]

# --- holds and liens --------------------------------------------------------------------------

MAX_HOLD_S = 31_536_000  # one year: a hold past that is a lien


class HoldKind(StrEnum):
    hold = "hold"  # expires on its own (e.g. a card authorisation, a cheque in clearing)
    lien = "lien"  # stays until released (e.g. a court order, security for a loan)


class HoldStatus(StrEnum):
    placing = "placing"  # asked of the ledger
    active = "active"
    released = "released"
    expired = "expired"
    refused = "refused"  # the ledger would not hold it (not enough available, account frozen…)


class HoldView(Contract):
    hold_id: UUID
    account_id: UUID
    kind: HoldKind
    amount: int = amount_field("held, minor units")
    currency: str = currency_field()
    reason: str
    status: HoldStatus
    placed_by: str
    placed_at: AwareDatetime
    expires_at: AwareDatetime | None = Field(default=None, description="a hold's end; a lien has none")
    released_at: AwareDatetime | None = None
    refusal: str | None = Field(default=None, description="why the ledger refused it")


class HoldList(Contract):
    items: list[HoldView]


class PlaceHold(Command):
    """Hold part of an account's balance: available falls by the amount at once, and the account
    cannot close while it stands. A hold ends on its own after `expires_in_s`; a lien stays until
    released. Result: `HoldView` (active). Refusals: account_not_found, insufficient_available,
    account_frozen / account_closed, hold_exists."""

    routing_key: ClassVar[str] = "account.place_hold"

    hold_id: UUID = Field(description="chosen by the caller: the idempotency key of the hold")
    account_id: UUID
    kind: HoldKind
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="minor units")
    reason: str = _reason_field()
    actor: str = _actor_field()
    expires_in_s: int | None = Field(default=None, ge=1, le=MAX_HOLD_S, description="a hold's life; none for a lien")

    @model_validator(mode="after")
    def _expiry_fits_the_kind(self) -> PlaceHold:
        if (self.kind == HoldKind.hold) != (self.expires_in_s is not None):
            raise ValueError("a hold needs expires_in_s; a lien takes none")
        return self


class ReleaseHold(Command):
    """End a hold or lien before its time: the amount is available again. Result: `HoldView`
    (released). Refusals: hold_not_found, hold_not_active (already released or expired)."""

    routing_key: ClassVar[str] = "account.release_hold"

    hold_id: UUID
    account_id: UUID
    reason: str = _reason_field()
    actor: str = _actor_field()


class ListHolds(Command):
    """An account's holds and liens, newest first. Result: `HoldList`."""

    routing_key: ClassVar[str] = "account.list_holds"
    read_only: ClassVar[bool] = True

    account_id: UUID
    limit: int = Field(default=100, ge=1, le=500)


class HoldPlaced(Event):
    routing_key: ClassVar[str] = "account.hold_placed"

    hold_id: UUID
    account_id: UUID
    customer_id: UUID
    kind: HoldKind
    amount: int
    currency: str
    reason: str
    expires_at: AwareDatetime | None
    actor: str
    occurred_at: AwareDatetime


class HoldReleased(Event):
    routing_key: ClassVar[str] = "account.hold_released"

    hold_id: UUID
    account_id: UUID
    customer_id: UUID
    amount: int
    currency: str
    reason: str
    actor: str
    occurred_at: AwareDatetime


# --- interest ---------------------------------------------------------------------------------


class InterestStatus(StrEnum):
    accruing = "accruing"  # the period has not ended
    posting = "posting"  # asked of the ledger
    posted = "posted"
    due = "due"  # the ledger refused the credit (a frozen account): tried again at each close


class InterestPeriod(Contract):
    period_end: dt.date = Field(description="the last calendar day of the posting period")
    accrued_from: dt.date = Field(description="the first day accrued in this period")
    accrued_through: dt.date = Field(description="the last day accrued so far")
    accrued: str = Field(description="interest accrued, exact, minor units (a decimal string, 12 places)")
    amount: int = Field(ge=0, description="`accrued` rounded half-up to the minor unit: what posts, or posted")
    status: InterestStatus
    transfer_id: UUID | None = Field(default=None, description="the ledger transfer that posted it")
    posted_on: dt.date | None = Field(default=None, description="the business date whose close posted it (null when "
                                                                "the account's closing posted it)")
    error: str | None = Field(default=None, description="why the ledger refused it, while due")


class InterestView(Contract):
    account_id: UUID
    currency: str = currency_field()
    rate_bps: int = Field(ge=0, description="the product's rate, basis points a year")
    interest_posting: InterestPosting
    periods: list[InterestPeriod] = Field(description="newest first")


class GetInterest(Command):
    """An account's interest: what has accrued in each posting period and what posted. Result:
    `InterestView`. Refusals: account_not_found."""

    routing_key: ClassVar[str] = "account.get_interest"
    read_only: ClassVar[bool] = True

    account_id: UUID
    limit: int = Field(default=12, ge=1, le=120, description="periods, newest first")


class InterestPosted(Event):
    """A period's savings interest reached the account (interest_expense → the account, code `interest`)."""

    routing_key: ClassVar[str] = "account.interest_posted"

    account_id: UUID
    customer_id: UUID
    amount: int = Field(gt=0, description="minor units")
    currency: str
    period_end: dt.date
    business_date: dt.date | None = Field(description="the business date whose close posted it; null: the account's closing did")
    transfer_id: UUID
    occurred_at: AwareDatetime


# --- fixed deposits ---------------------------------------------------------------------------


class AtMaturity(StrEnum):
    payout = "payout"  # principal and interest to the payout account, and the deposit closes
    renew = "renew"  # interest added to the principal, for another term at the rate then in force


class DepositStatus(StrEnum):
    funding = "funding"  # asked of the ledger
    running = "running"
    maturing = "maturing"  # its close asked the ledger to pay or renew it
    matured = "matured"  # paid out, closed
    closed_early = "closed_early"
    refused = "refused"  # never funded: the funding account could not pay


class DepositView(Contract):
    account: AccountView
    kind: Literal["fixed", "recurring"] = "fixed"
    principal: int = Field(description="minor units (a recurring deposit: the instalments paid so far)")
    instalment: int | None = Field(default=None, description="recurring: minor units a month")
    instalments: int | None = Field(default=None, description="recurring: months")
    instalments_paid: int | None = None
    instalments_missed: int | None = Field(default=None, description="unpaid when the deposit matured")
    rate_bps: int = Field(description="the contract rate, fixed for the term")
    term_days: int
    start_date: dt.date | None = Field(default=None, description="the business date it was funded (or renewed)")
    maturity_date: dt.date | None = None
    at_maturity: AtMaturity
    payout_account_id: UUID
    funding_account_id: UUID
    status: DepositStatus
    interest_at_maturity: int | None = Field(default=None, description="what maturity will pay, minor units")
    last_interest: int | None = Field(default=None, description="interest of the term that ended last (renewed, "
                                                                "paid or closed early), minor units")
    error: str | None = None


class OpenFixedDeposit(Command):
    """Open a fixed deposit funded at once from the customer's own active account (banking-rules §2):
    the deposit's account opens `inactive` and turns active when the money is in. Result:
    `DepositView`. Refusals: customer_not_eligible, product_not_found, invalid_deposit,
    invalid_funding_account, funding_refused (the funding account could not pay: nothing moved,
    the deposit's account closed unused), unavailable."""

    routing_key: ClassVar[str] = "account.open_fixed_deposit"

    account_id: UUID = Field(description="the deposit's id, chosen by the caller (makes retries safe)")
    customer_id: UUID
    product_code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="a fixed_deposit product")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="the principal, minor units")
    term_days: int = Field(ge=1, le=3_650)
    funding_account_id: UUID = Field(description="the customer's savings or current account the money comes from")
    at_maturity: AtMaturity = AtMaturity.payout
    payout_account_id: UUID | None = Field(default=None, description="where maturity pays; default the funding account")
    branch: str = Field(default="000", pattern=BRANCH_PATTERN)


class OpenRecurringDeposit(Command):
    """Open a recurring deposit (banking-rules §2): a fixed monthly instalment from the customer's
    own account for 6 to 120 months, the first at once; each later one is taken by the close of
    business on its due date, and one the account cannot pay is tried again at each close until it
    is paid or the deposit matures (then it is missed). Each instalment earns the fixed-deposit
    interest for its days to maturity. Result: `DepositView`. Refusals as `open_fixed_deposit`."""

    routing_key: ClassVar[str] = "account.open_recurring_deposit"

    account_id: UUID = Field(description="the deposit's id, chosen by the caller (makes retries safe)")
    customer_id: UUID
    product_code: str = Field(pattern=PRODUCT_CODE_PATTERN, description="a recurring_deposit product")
    instalment: int = Field(gt=0, le=MAX_AMOUNT, description="minor units a month")
    instalments: int = Field(ge=1, le=120, description="months")
    funding_account_id: UUID = Field(description="the customer's savings or current account the instalments come from")
    payout_account_id: UUID | None = Field(default=None, description="where maturity pays; default the funding account")
    branch: str = Field(default="000", pattern=BRANCH_PATTERN)


class GetDeposit(Command):
    """Result: `DepositView`. Refusals: account_not_found (no such deposit)."""

    routing_key: ClassVar[str] = "account.get_deposit"
    read_only: ClassVar[bool] = True

    account_id: UUID


class CloseDepositEarly(Command):
    """Close a running deposit before maturity at the contract rate less the product's penalty, for
    the days held; principal and that interest go to the payout account. Never under a lien.
    Result: `DepositView`. Refusals: deposit_not_matured (not running), close_refused_pending_transfers."""

    routing_key: ClassVar[str] = "account.close_deposit_early"

    account_id: UUID
    actor: str = _actor_field()
    reason: str = _reason_field()


class DepositMatured(Event):
    routing_key: ClassVar[str] = "account.deposit_matured"

    account_id: UUID
    customer_id: UUID
    outcome: Literal["paid_out", "renewed", "closed_early"]
    principal: int = Field(description="the term's principal, minor units")
    interest: int = Field(description="the term's interest, minor units")
    currency: str
    payout_account_id: UUID | None = Field(default=None, description="where the money went (not on renewal)")
    next_maturity_date: dt.date | None = Field(default=None, description="renewed: the new term's end")
    occurred_at: AwareDatetime


# --- charges ----------------------------------------------------------------------------------


class ChargeKind(StrEnum):
    maintenance = "maintenance"  # the product's monthly maintenance fee
    shortfall = "shortfall"  # the month's average day-end balance fell below the minimum balance
    # Debit interest on the month's overdrawn day-end balances at the product's overdraft rate,
    # exact and rounded once (half-up), to interest income.
    overdraft_interest = "overdraft_interest"


class ChargeStatus(StrEnum):
    posting = "posting"  # asked of the ledger
    charged = "charged"  # taken: `collected` of `fee` (a balancing debit takes only what is above the floor)
    due = "due"  # the ledger refused the debit (a frozen account): tried again at each close


class ChargeView(Contract):
    kind: ChargeKind
    month_end: dt.date
    fee: int = Field(gt=0, description="the product's fee, minor units")
    collected: int | None = Field(default=None, ge=0, description="what the ledger took, minor units")
    status: ChargeStatus
    transfer_id: UUID
    charged_on: dt.date | None = Field(default=None, description="the business date whose close charged it")
    error: str | None = Field(default=None, description="why the ledger refused it, while due")


class ChargeList(Contract):
    items: list[ChargeView] = Field(description="newest month first")


class ListCharges(Command):
    """An account's monthly charges. Result: `ChargeList`. Refusals: account_not_found."""

    routing_key: ClassVar[str] = "account.list_charges"
    read_only: ClassVar[bool] = True

    account_id: UUID
    limit: int = Field(default=24, ge=1, le=240)


class FeeCharged(Event):
    """A monthly fee was taken (fee_income ← the account, code `fee`)."""

    routing_key: ClassVar[str] = "account.fee_charged"

    account_id: UUID
    customer_id: UUID
    kind: ChargeKind
    fee: int = Field(gt=0, description="the product's fee, minor units")
    collected: int = Field(gt=0, description="what was taken, minor units")
    currency: str
    month_end: dt.date
    business_date: dt.date | None = Field(description="the close that took it; null: the account's closing did")
    transfer_id: UUID
    occurred_at: AwareDatetime


# --- statements -------------------------------------------------------------------------------


class StatementStatus(StrEnum):
    issued = "issued"
    withheld = "withheld"  # opening + credits − debits ≠ closing: never issued; the operators are told


class StatementView(Contract):
    """A month's statement: the ledger's history between two cuts (the books of the previous
    month's and this month's last business date); its lines are `ledger.get_account_history`
    between `period_from` and `period_until`."""

    account_id: UUID
    account_number: str = Field(description="the account's number, as its statement heads it")
    month_end: dt.date
    currency: str = currency_field()
    opening: int = Field(description="minor units")
    credits: int = Field(ge=0)
    debits: int = Field(ge=0)
    closing: int
    transfers: int = Field(ge=0, description="posted movements")
    period_from: AwareDatetime | None
    period_until: AwareDatetime
    status: StatementStatus
    issued_on: dt.date = Field(description="the business date whose close drew it up")


class StatementList(Contract):
    items: list[StatementView] = Field(description="newest month first")


class ListStatements(Command):
    """An account's monthly statements. Result: `StatementList`. Refusals: account_not_found."""

    routing_key: ClassVar[str] = "account.list_statements"
    read_only: ClassVar[bool] = True

    account_id: UUID
    limit: int = Field(default=12, ge=1, le=120)


class GetStatement(Command):
    """One month's issued statement (the lines are the ledger's; the edge draws the document up).
    Result: `StatementView`. Refusals: account_not_found, statement_not_found (none of that month,
    or withheld because its totals did not reconcile: a withheld statement is never shown)."""

    routing_key: ClassVar[str] = "account.get_statement"
    read_only: ClassVar[bool] = True

    account_id: UUID
    month_end: dt.date = Field(description="the month's last calendar day")


class StatementReady(Event):
    routing_key: ClassVar[str] = "account.statement_ready"

    account_id: UUID
    customer_id: UUID
    month_end: dt.date
    currency: str
    opening: int
    closing: int
    credits: int
    debits: int
    occurred_at: AwareDatetime


class AccountCobStepReported(day.StepReport):
    """The account worker's end-of-day steps: `account.interest` (accrual on the day-end balances,
    posting for every period that ended; `result`: accounts accrued, interest posted) and
    `account.charges` (the monthly fees of the months the close ends; `result`: fees and collected)
    `account.dormancy` (accounts 12 months without customer activity; `result`: how many) and
    `account.statements` (each account's statement of the months the close ends; `result`: issued, withheld)."""

    routing_key: ClassVar[str] = "account.cob_step_reported"


COMMANDS: tuple[type[Command], ...] = (
    ListProducts,
    DefineProduct,
    GetProduct,
    OpenAccount,
    GetAccount,
    ListCustomerAccounts,
    FreezeAccount,
    UnfreezeAccount,
    CloseAccount,
    ReactivateAccount,
    SetOverdraft,
    MigrateProduct,
    CloseCustomerAccounts,
    PlaceHold,
    ReleaseHold,
    ListHolds,
    GetInterest,
    ListCharges,
    ListStatements,
    GetStatement,
    OpenFixedDeposit,
    OpenRecurringDeposit,
    GetDeposit,
    CloseDepositEarly,
)
EVENTS: tuple[type[Event], ...] = (
    AccountOpened, AccountFrozen, AccountUnfrozen, AccountClosed, AccountDormant, AccountReactivated, OverdraftChanged,
    ProductMigrated,
    HoldPlaced, HoldReleased, InterestPosted, FeeCharged, StatementReady, DepositMatured, ProductDefined,
    AccountCobStepReported,
)  # fmt: skip
