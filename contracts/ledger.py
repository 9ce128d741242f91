"""Messages of the ledger worker: double-entry accounts and transfers (DESIGN §5, banking-rules §3).

Semantics follow TigerBeetle's on PostgreSQL. Every command answers a `Reply`; the docstring of
each command names the model its `result` holds. Money is integer minor units; balances are the
four TigerBeetle balances, and a balance is credit-normal (`credits_posted − debits_posted`).

Batch commands (`create_accounts`, `create_transfers`) always answer `ok` with one result code
per item: a refused transfer is a result code, not a refusal of the whole command.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from contracts import day
from contracts.common import MAX_AMOUNT, Command, Contract, Event, Page, amount_field, currency_field, cursor_field, page_size

# Account and transfer codes are lower snake case: they name a purpose (customer_deposit, fee).
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# A balance is a PostgreSQL bigint; the ledger refuses a transfer that would overflow one.
MAX_BALANCE = 2**63 - 1
MAX_BATCH = 1000
MAX_TIMEOUT_S = 31_536_000  # one year: a hold longer than that is a lien (timeout 0)
MAX_USER_DATA_KEYS = 16
MAX_TEXT = 140  # narration, counterparty and account title: what one statement line shows of each

# The bank's own accounts, made by the newest definition of `ensure_bank_accounts` in
# workers/ledger/migrations/ (0006_loan_losses.sql). Their ids are
# derived, never looked up (md5 of code and currency, as the migration does), so any worker or
# partner can name them; tests/unit/test_contracts.py compares the two derivations.
BANK_ACCOUNT_CODES = (
    "cash_vault", "clearing_internal", "clearing_neft", "clearing_rtgs", "clearing_imps", "clearing_upi",
    "hold_control", "loan_principal", "loan_interest_receivable", "interest_income", "interest_expense",
    "fee_income", "penalty_income", "interest_suspense", "suspense", "loan_write_off", "loan_recovery_income",
)  # fmt: skip


class GLClass(StrEnum):
    """General-ledger classes: assets = liabilities + equity + (income − expenses)."""

    asset = "asset"
    liability = "liability"
    equity = "equity"
    income = "income"
    expense = "expense"


@dataclass(frozen=True, slots=True)
class GLAccount:
    code: str  # the ledger accounts' `code`
    gl_class: GLClass
    gl_code: str
    name: str


# The chart of accounts: every ledger account's `code` belongs to one general-ledger account. Asset
# and expense accounts are debit-normal, the others credit-normal. A code not listed is reported
# under UNCLASSIFIED in the trial balance (and so visible), never dropped.
CHART_OF_ACCOUNTS: tuple[GLAccount, ...] = tuple(GLAccount(code, GLClass(cls), gl, name) for code, cls, gl, name in (
    ("cash_vault", "asset", "1000", "Cash in vault"),
    ("clearing_internal", "asset", "1100", "Clearing: internal"),
    ("clearing_neft", "asset", "1110", "Clearing: NEFT"),
    ("clearing_rtgs", "asset", "1120", "Clearing: RTGS"),
    ("clearing_imps", "asset", "1130", "Clearing: IMPS"),
    ("clearing_upi", "asset", "1140", "Clearing: UPI"),
    ("loan_principal", "asset", "1200", "Loans: principal outstanding"),
    ("loan_interest_receivable", "asset", "1210", "Loans: interest receivable"),
    ("customer_deposit", "liability", "2000", "Customer deposits"),
    ("hold_control", "liability", "2100", "Holds control"),
    ("interest_suspense", "liability", "2200", "Interest in suspense"),
    ("suspense", "liability", "2900", "Suspense"),
    ("interest_income", "income", "4000", "Interest income"),
    ("fee_income", "income", "4100", "Fee income"),
    ("penalty_income", "income", "4200", "Penalty income"),
    ("loan_recovery_income", "income", "4300", "Recoveries of loans written off"),
    ("interest_expense", "expense", "5000", "Interest expense"),
    ("loan_write_off", "expense", "5100", "Loans written off"),
))  # fmt: skip
CHART_BY_CODE: dict[str, GLAccount] = {a.code: a for a in CHART_OF_ACCOUNTS}
UNCLASSIFIED = "unclassified"  # the class reported for a code outside the chart
DEBIT_NORMAL = frozenset({GLClass.asset, GLClass.expense})


def bank_account_id(code: str, currency: str) -> UUID:
    """The id of the bank's account `code` in `currency`: md5 of `cbs.ledger.<code>.<currency>`."""
    assert code in BANK_ACCOUNT_CODES, f"{code} is not a bank account"
    return UUID(hashlib.md5(f"cbs.ledger.{code}.{currency}".encode()).hexdigest())


UserDataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
UserDataValue = Annotated[str, StringConstraints(max_length=256)] | int | bool | None
UserData = dict[UserDataKey, UserDataValue]

TransferStatus = Literal["posted", "pending", "pending_posted", "pending_voided", "pending_expired"]


def _code_field(description: str) -> Any:
    return Field(pattern=CODE_PATTERN, description=description)


def _user_data_field() -> Any:
    return Field(
        default=None,
        max_length=MAX_USER_DATA_KEYS,
        description=f"caller's small annotations, at most {MAX_USER_DATA_KEYS} keys; the ledger never reads them",
    )


def one_line(text: str) -> str:
    """`text` as a narration or counterparty may hold it: control characters as spaces, at most
    MAX_TEXT characters. For words a person typed (a hold's reason), which may hold a newline."""
    cleaned = "".join(" " if ch < " " or ch == "\x7f" else ch for ch in text).strip()
    return cleaned[:MAX_TEXT] or "-"


def _text_field(description: str) -> Any:
    # One line of plain text: no control characters, so a statement's CSV and PDF lines stay lines.
    return Field(default=None, min_length=1, max_length=MAX_TEXT, pattern=r"^[^\x00-\x1f\x7f]+$", description=description)


def _balance_field(description: str) -> Any:
    return Field(ge=0, le=MAX_BALANCE, description=description)


def _ids_field(what: str) -> Any:
    return Field(min_length=1, max_length=MAX_BATCH, description=f"{what} to look up, 1 to {MAX_BATCH}")


# --- result codes ----------------------------------------------------------------------------


class TransferResultCode(StrEnum):
    """Result of one transfer, in the order they are checked: the first that applies wins.

    banking-rules §3 fixes the order; the codes it does not name sit where they logically belong
    (request validation before lookups, lookups before balance checks).
    """

    ok = "ok"
    linked_event_failed = "linked_event_failed"
    linked_event_chain_open = "linked_event_chain_open"
    id_must_not_be_zero = "id_must_not_be_zero"
    exists_with_different_flags = "exists_with_different_flags"
    exists_with_different_pending_id = "exists_with_different_pending_id"
    exists_with_different_timeout = "exists_with_different_timeout"
    exists_with_different_debit_account_id = "exists_with_different_debit_account_id"
    exists_with_different_credit_account_id = "exists_with_different_credit_account_id"
    exists_with_different_amount = "exists_with_different_amount"
    exists_with_different_currency = "exists_with_different_currency"
    exists_with_different_code = "exists_with_different_code"
    exists_with_different_reference = "exists_with_different_reference"
    exists_with_different_user_data = "exists_with_different_user_data"
    exists = "exists"
    id_already_failed = "id_already_failed"
    flags_are_mutually_exclusive = "flags_are_mutually_exclusive"
    debit_account_id_required = "debit_account_id_required"
    credit_account_id_required = "credit_account_id_required"
    accounts_must_be_different = "accounts_must_be_different"
    pending_id_must_be_zero = "pending_id_must_be_zero"
    pending_id_required = "pending_id_required"
    timeout_reserved_for_pending_transfer = "timeout_reserved_for_pending_transfer"
    amount_must_not_be_zero = "amount_must_not_be_zero"
    debit_account_not_found = "debit_account_not_found"
    credit_account_not_found = "credit_account_not_found"
    currency_mismatch = "currency_mismatch"
    pending_transfer_not_found = "pending_transfer_not_found"
    pending_transfer_not_pending = "pending_transfer_not_pending"
    pending_transfer_has_different_debit_account_id = "pending_transfer_has_different_debit_account_id"
    pending_transfer_has_different_credit_account_id = "pending_transfer_has_different_credit_account_id"
    exceeds_pending_transfer_amount = "exceeds_pending_transfer_amount"
    # A void releases the whole hold: its amount is 0 or exactly the pending amount.
    pending_transfer_has_different_amount = "pending_transfer_has_different_amount"
    pending_transfer_already_posted = "pending_transfer_already_posted"
    pending_transfer_already_voided = "pending_transfer_already_voided"
    pending_transfer_expired = "pending_transfer_expired"
    debit_account_frozen = "debit_account_frozen"
    credit_account_frozen = "credit_account_frozen"
    debit_account_already_closed = "debit_account_already_closed"
    credit_account_already_closed = "credit_account_already_closed"
    overflows_debits_pending = "overflows_debits_pending"
    overflows_credits_pending = "overflows_credits_pending"
    overflows_debits_posted = "overflows_debits_posted"
    overflows_credits_posted = "overflows_credits_posted"
    # pending + posted on one side: keeps every sum the store may compute inside a bigint.
    overflows_debits = "overflows_debits"
    overflows_credits = "overflows_credits"
    overflows_timeout = "overflows_timeout"
    exceeds_credits = "exceeds_credits"
    exceeds_debits = "exceeds_debits"


class AccountResultCode(StrEnum):
    """Result of one new account, in the order they are checked."""

    ok = "ok"
    id_must_not_be_zero = "id_must_not_be_zero"
    flags_are_mutually_exclusive = "flags_are_mutually_exclusive"
    exists_with_different_currency = "exists_with_different_currency"
    exists_with_different_code = "exists_with_different_code"
    exists_with_different_flags = "exists_with_different_flags"
    exists_with_different_overdraft_limit = "exists_with_different_overdraft_limit"
    exists_with_different_owner_id = "exists_with_different_owner_id"
    exists = "exists"


class LedgerError(StrEnum):
    """Stable refusal codes of the ledger's non-batch commands (the reply's `error.code`)."""

    account_not_found = "account_not_found"
    account_already_closed = "account_already_closed"
    close_refused_nonzero_balance = "close_refused_nonzero_balance"
    close_refused_pending_transfers = "close_refused_pending_transfers"
    trial_balance_not_found = "trial_balance_not_found"  # no close of business kept one for that date
    day_end_not_taken = "day_end_not_taken"  # close of business has not kept that date's balances
    books_not_closed = "books_not_closed"  # no trial balance taken for the month's last business date yet
    payout_account_not_found = "payout_account_not_found"
    payout_refused = "payout_refused"
    settlement_refused = "settlement_refused"  # a close's settle transfer was refused (details: its result)
    overdraft_in_use = "overdraft_in_use"  # a lower overdraft limit than the account already uses
    # Balances as of a past time are kept only for accounts with `flags.history`.


# --- accounts --------------------------------------------------------------------------------


class AccountFlags(Contract):
    """Constraints the ledger enforces on every transfer; set at creation, never changed."""

    debits_must_not_exceed_credits: bool = Field(
        default=False, description="liability: debits + pending debits ≤ credits + overdraft_limit"
    )
    credits_must_not_exceed_debits: bool = Field(
        default=False, description="asset: credits + pending credits ≤ debits + overdraft_limit"
    )
    history: bool = Field(default=False, description="keep balances after every transfer, for balance-as-of reads")


class NewAccount(Contract):
    id: UUID = Field(description="account id chosen by the caller (makes retries safe); never the zero UUID")
    currency: str = currency_field("ISO 4217 currency; one ledger per currency")
    code: str = _code_field("what the account is for, e.g. `customer_deposit`, `cash_vault`, `fee_income`")
    flags: AccountFlags = Field(default_factory=AccountFlags, description="balance constraints and history")
    overdraft_limit: int = Field(
        default=0,
        ge=-MAX_AMOUNT,
        le=MAX_AMOUNT,
        description="how far debits may exceed credits (mirrored for debit-normal accounts); "
        "negative = a minimum balance",
    )
    owner_id: UUID | None = Field(default=None, description="customer who owns it; null for the bank's own accounts")
    title: str | None = _text_field("how statements name this account to the other side of a transfer (an account "
                                    "number, never a person's name); the bank's own accounts are named by the chart")
    user_data: UserData | None = _user_data_field()


class AccountView(Contract):
    id: UUID = Field(description="the account id")
    currency: str = currency_field("ISO 4217 currency of the account")
    code: str = _code_field("what the account is for")
    flags: AccountFlags = Field(description="balance constraints and history")
    frozen: bool = Field(description="true while frozen: refuses debits and credits, voids still release")
    closed: bool = Field(description="true once closed (terminal): refuses everything but voids")
    overdraft_limit: int = Field(description="how far debits may exceed credits; negative = a minimum balance")
    owner_id: UUID | None = Field(default=None, description="customer who owns it")
    debits_pending: int = _balance_field("held debits not yet posted, minor units")
    debits_posted: int = _balance_field("posted debits, minor units")
    credits_pending: int = _balance_field("held credits not yet posted, minor units")
    credits_posted: int = _balance_field("posted credits, minor units")
    balance: int = Field(description="credits_posted − debits_posted (credit-normal), minor units")
    available: int = Field(
        description="what may be spent now, minor units: with debits_must_not_exceed_credits, the room above the "
        "account's floor (credits + overdraft_limit − debits − debits_pending, never below 0; a negative "
        "overdraft_limit is a minimum balance); otherwise balance − debits_pending"
    )
    created_at: AwareDatetime = Field(description="when the account was created, UTC")
    user_data: UserData | None = _user_data_field()
    settled: list[TransferResult] | None = Field(
        default=None, description="a close that settled transfers (`set_account_flags` with `settle`): each one's result "
                                  "and the amount it moved (a balancing debit may take less than asked)")


class AccountResult(Contract):
    index: int = Field(ge=0, description="position of the account in the request")
    id: UUID = Field(description="the account id")
    result: str = Field(description="an `AccountResultCode`; `ok` and `exists` mean the account is there")


class CreateAccountsResult(Contract):
    results: list[AccountResult] = Field(description="one result per requested account, in request order")


class AccountsResult(Contract):
    accounts: list[AccountView] = Field(description="the accounts found, in request order; unknown ids are absent")


class BalancesAfter(Contract):
    account_id: UUID = Field(description="the account")
    debits_pending: int = _balance_field("held debits after the change")
    debits_posted: int = _balance_field("posted debits after the change")
    credits_pending: int = _balance_field("held credits after the change")
    credits_posted: int = _balance_field("posted credits after the change")


# --- transfers -------------------------------------------------------------------------------


class TransferFlags(Contract):
    linked: bool = Field(default=False, description="succeeds or fails together with the next transfer in the batch")
    pending: bool = Field(default=False, description="a hold: reserves the amount until posted, voided or expired")
    post_pending: bool = Field(default=False, description="posts the pending transfer `pending_id` (wholly or partly)")
    void_pending: bool = Field(default=False, description="releases the pending transfer `pending_id`")
    balancing_debit: bool = Field(
        default=False, description="move at most what the debit account's debits_must_not_exceed_credits allows"
    )
    balancing_credit: bool = Field(
        default=False, description="move at most what the credit account's credits_must_not_exceed_debits allows"
    )


class NewTransfer(Contract):
    id: UUID = Field(description="transfer id chosen by the caller (UUIDv7 preferred); never the zero UUID")
    debit_account_id: UUID | None = Field(
        default=None, description="account debited; required unless post/void, where it defaults to the pending one's"
    )
    credit_account_id: UUID | None = Field(
        default=None, description="account credited; required unless post/void, where it defaults to the pending one's"
    )
    amount: int = amount_field("minor units; must be > 0, except post (0 = the full pending amount) and void")
    currency: str = currency_field("ISO 4217 currency; both accounts must hold it")
    code: str = _code_field("why the money moves, e.g. `deposit`, `withdrawal`, `internal_transfer`, `fee`")
    flags: TransferFlags = Field(default_factory=TransferFlags, description="linked, two-phase and balancing flags")
    pending_id: UUID | None = Field(
        default=None, description="the pending transfer to post or void; only with those flags"
    )
    timeout_s: int = Field(
        default=0,
        ge=0,
        le=MAX_TIMEOUT_S,
        description="seconds until a pending transfer expires; 0 = never; pending only",
    )
    reference: str | None = Field(default=None, max_length=100, description="caller's reference, e.g. a payment id")
    narration: str | None = _text_field(
        "what the movement is, as both sides' history and statements show it, e.g. `NEFT to Asha Rao: rent`; "
        "a post or void without one keeps its hold's"
    )
    counterparty: str | None = _text_field(
        "the party beyond the bank's own account on the other side (an outside beneficiary or remitter, e.g. "
        "`Asha Rao · HDFC0001234 · 50100012345678`), shown in that account's place; a post or void without one "
        "keeps its hold's"
    )
    user_data: UserData | None = _user_data_field()


class TransferResult(Contract):
    index: int = Field(ge=0, description="position of the transfer in the request")
    id: UUID = Field(description="the transfer id")
    result: str = Field(description="a `TransferResultCode`; `ok` and `exists` mean the transfer is in the ledger")
    amount: int | None = Field(default=None, ge=0, description="amount actually moved or held (after balancing)")
    timestamp: AwareDatetime | None = Field(default=None, description="ledger time of the transfer, when it exists")


class CreateTransfersResult(Contract):
    results: list[TransferResult] = Field(description="one result per requested transfer, in request order")


class TransferView(Contract):
    id: UUID = Field(description="the transfer id")
    debit_account_id: UUID = Field(description="account debited")
    credit_account_id: UUID = Field(description="account credited")
    amount: int = Field(ge=0, description="amount moved or held, minor units (a void: the amount released)")
    currency: str = currency_field("ISO 4217 currency")
    code: str = _code_field("why the money moved")
    flags: TransferFlags = Field(description="flags as requested")
    pending_id: UUID | None = Field(default=None, description="the pending transfer a post or void resolved")
    timeout_s: int = Field(ge=0, description="seconds a pending transfer was held for; 0 = no expiry")
    reference: str | None = Field(default=None, description="caller's reference")
    narration: str | None = Field(default=None, description="what the movement is, as statements show it")
    counterparty: str | None = Field(default=None, description="the outside party behind a bank account's side")
    user_data: UserData | None = _user_data_field()
    timestamp: AwareDatetime = Field(description="ledger time; strictly increasing within a batch")
    status: TransferStatus = Field(
        description="posted (single-phase, post or void: final), pending (open hold), or pending_posted / "
        "pending_voided / pending_expired (a hold after its resolution)"
    )


class TransfersResult(Contract):
    transfers: list[TransferView] = Field(description="the transfers found, in request order; unknown ids are absent")


class HistoryEntry(Contract):
    transfer_id: UUID = Field(description="the transfer that changed the account")
    timestamp: AwareDatetime = Field(description="ledger time of the transfer")
    code: str = _code_field("why the money moved")
    amount: int = Field(ge=0, description="amount moved, held or released, minor units")
    side: Literal["debit", "credit"] = Field(description="which side of the transfer this account was on")
    pending: bool = Field(description="true when the entry changed pending balances only (a hold)")
    debits_pending: int = _balance_field("held debits after the transfer")
    debits_posted: int = _balance_field("posted debits after the transfer")
    credits_pending: int = _balance_field("held credits after the transfer")
    credits_posted: int = _balance_field("posted credits after the transfer")
    business_date: dt.date | None = Field(
        default=None, description="the business date whose books it is in (the first close that took them after it); "
                                  "null while that date is still open")
    reference: str | None = Field(default=None, description="the transfer's reference, e.g. a payment's bank reference")
    narration: str | None = Field(default=None, description="what the movement is, as the transfer's maker wrote it")
    counterparty_account_id: UUID = Field(description="the account on the other side of the transfer")
    counterparty: str = Field(
        description="who is on the other side, as a statement names them: the transfer's outside party when the other "
        "side is one of the bank's own accounts, else that account's chart name; a customer's account by its title "
        "(its number), or its id when it has none"
    )


HistoryPage = Page[HistoryEntry]


class BalanceAt(Contract):
    account_id: UUID = Field(description="the account")
    at: AwareDatetime = Field(description="the point in time asked for")
    debits_pending: int = _balance_field("held debits at that time")
    debits_posted: int = _balance_field("posted debits at that time")
    credits_pending: int = _balance_field("held credits at that time")
    credits_posted: int = _balance_field("posted credits at that time")
    balance: int = Field(description="credits_posted − debits_posted at that time")


class VerifyResult(Contract):
    ok: bool = Field(description="true when every balance equals its transfers and debits equal credits per currency")
    accounts_checked: int = Field(ge=0, description="accounts whose balances were recomputed")
    transfers_checked: int = Field(ge=0, description="transfers read")
    mismatches: list[dict[str, Any]] = Field(
        description="each broken invariant: account or currency, the field, stored and expected values"
    )
    totals: list[dict[str, Any]] = Field(
        description="per currency: currency, debits_posted, credits_posted, debits_pending, credits_pending"
    )


# --- commands --------------------------------------------------------------------------------


class CreateAccounts(Command):
    """Create ledger accounts. Result: `CreateAccountsResult`."""

    routing_key: ClassVar[str] = "ledger.create_accounts"

    accounts: list[NewAccount] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} accounts")


class CreateTransfers(Command):
    """Move money. Result: `CreateTransfersResult`, one result per transfer."""

    routing_key: ClassVar[str] = "ledger.create_transfers"

    transfers: list[NewTransfer] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} transfers")


MAX_SETTLE = 16  # a closing settles a few periods' interest and charges, never a batch


class SetAccountFlags(Command):
    """Freeze, unfreeze or close a ledger account. Result: `AccountView`.

    Close with `payout_account_id`: in one transaction the account's whole credit balance moves to
    the payout account (transfer `closure_transfer_id(account_id)`, code `account_closure`), below
    any minimum balance down to zero, and the account closes. Without it, close needs a zero
    balance. Either way no hold may be open on it.

    Refusals: account_not_found, account_already_closed, close_refused_nonzero_balance (overdrawn,
    or money and no payout), close_refused_pending_transfers, payout_account_not_found,
    payout_refused (the payout account cannot take it: frozen, closed, another currency; details
    carry the transfer's result code).
    """

    routing_key: ClassVar[str] = "ledger.set_account_flags"

    account_id: UUID = Field(description="the ledger account")
    action: Literal["freeze", "unfreeze", "close"] = Field(description="close is terminal")
    actor: str = Field(min_length=1, max_length=200, description="who asked for the change (staff or system id)")
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the change")
    payout_account_id: UUID | None = Field(default=None, description="close only: where the remaining balance goes")
    settle: list[NewTransfer] = Field(
        default_factory=list, max_length=MAX_SETTLE,
        description="close only: what the closing settles first (its interest credited, its charges debited, "
                    "`balancing_debit` so they stop at zero), in the same transaction and one chain with the "
                    "payout: one refused, nothing moves and the close is refused (`settlement_refused`). Each "
                    "moves money to or from the closing account, plainly (no two-phase flags)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _payout_only_on_close(self) -> SetAccountFlags:
        if (self.payout_account_id is not None or self.settle) and self.action != "close":
            raise ValueError("payout_account_id and settle go with action close only")
        if self.payout_account_id == self.account_id:
            raise ValueError("an account cannot pay itself out")
        for t in self.settle:
            if self.account_id not in (t.debit_account_id, t.credit_account_id):
                raise ValueError(f"settle transfer {t.id} does not touch the closing account")
            if t.flags.pending or t.flags.post_pending or t.flags.void_pending or t.flags.linked:
                raise ValueError(f"settle transfer {t.id}: plain or balancing only (the close links them itself)")
        return self


def closure_transfer_id(account_id: UUID) -> UUID:
    """The closing payout's transfer id: one per account, so a repeated close cannot pay twice."""
    return uuid5(NAMESPACE_URL, f"cbs.ledger.closure.{account_id}")


class SetOverdraftLimit(Command):
    """Change an account's signed `overdraft_limit` (banking-rules §2: the account worker sets it
    to its overdraft − its minimum balance). Result: `AccountView`. Refusals: account_not_found,
    account_already_closed, overdraft_in_use (the account is overdrawn past the new limit: it
    must be repaid first)."""

    routing_key: ClassVar[str] = "ledger.set_overdraft_limit"

    account_id: UUID = Field(description="the ledger account")
    overdraft_limit: int = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="signed; negative keeps that much in")
    actor: str = Field(min_length=1, max_length=200, description="who asked for the change (staff or system id)")
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the change")


class LookupAccounts(Command):
    """Result: `AccountsResult`."""

    routing_key: ClassVar[str] = "ledger.lookup_accounts"
    read_only: ClassVar[bool] = True

    ids: list[UUID] = _ids_field("account ids")


class LookupTransfers(Command):
    """Result: `TransfersResult`."""

    routing_key: ClassVar[str] = "ledger.lookup_transfers"
    read_only: ClassVar[bool] = True

    ids: list[UUID] = _ids_field("transfer ids")


class GetAccountHistory(Command):
    """An account's transfers with its balances after each, oldest first. Result: `HistoryPage`."""

    routing_key: ClassVar[str] = "ledger.get_account_history"
    read_only: ClassVar[bool] = True

    account_id: UUID = Field(description="the account")
    since: AwareDatetime | None = Field(default=None, description="only transfers at or after this time")
    until: AwareDatetime | None = Field(default=None, description="only transfers before this time")
    code: str | None = Field(default=None, pattern=CODE_PATTERN, description="only transfers with this code")
    limit: int = page_size(default=100, most=500)
    cursor: str | None = cursor_field()


class GetBalanceAt(Command):
    """Balances as of a point in time (history is kept for every account). Result: `BalanceAt`."""

    routing_key: ClassVar[str] = "ledger.get_balance_at"
    read_only: ClassVar[bool] = True

    account_id: UUID = Field(description="the account")
    at: AwareDatetime = Field(description="the point in time; transfers stamped at or before it count")


class TrialBalanceRow(Contract):
    """One general-ledger account in one currency, as it stood when `business_date` closed."""

    currency: str = currency_field()
    code: str = Field(description="the ledger accounts' code")
    gl_class: str = Field(description="asset, liability, equity, income, expense, or `unclassified`")
    gl_code: str | None = Field(default=None, description="the general-ledger code, from the chart of accounts")
    name: str | None = None
    accounts: int = Field(ge=0, description="ledger accounts with this code")
    debits_posted: int = Field(ge=0)
    credits_posted: int = Field(ge=0)
    balance: int = Field(description="in the class's normal direction: debits − credits for assets and expenses, "
                                     "credits − debits otherwise")


class TrialBalance(Contract):
    """The books as `business_date` closed: the trial balance, and the balance sheet and income
    statement drawn from it, per currency."""

    business_date: dt.date
    rows: list[TrialBalanceRow]
    totals: list[dict[str, Any]] = Field(description="per currency: debits, credits, balanced (debits = credits)")
    balance_sheet: list[dict[str, Any]] = Field(
        description="per currency: assets, liabilities, equity, net_income (income − expenses), and balanced: "
        "assets = liabilities + equity + net_income"
    )
    income_statement: list[dict[str, Any]] = Field(description="per currency: income, expenses, net_income")


class GetTrialBalance(Command):
    """The trial balance kept when `business_date` closed (close of business's `ledger.trial_balance`
    step keeps one per date). Result: `TrialBalance`. Refusals: trial_balance_not_found."""

    routing_key: ClassVar[str] = "ledger.get_trial_balance"
    read_only: ClassVar[bool] = True

    business_date: dt.date


class DayEndBalance(Contract):
    account_id: UUID
    balance: int = Field(description="credits posted − debits posted as the day ended, minor units")


class DayEndBalances(Contract):
    business_date: dt.date
    items: list[DayEndBalance] = Field(description="in account id order; accounts with a zero balance are left out")
    next_after: UUID | None = Field(default=None, description="ask again from here; null: this was the last page")


class GetDayEndBalances(Command):
    """The posted balance of every open customer deposit account as `business_date` ended, kept by
    close of business's `ledger.day_end_balances` step (the cut: taken once per date, before
    interest posts). For interest accrual: the account worker pages through them. Result:
    `DayEndBalances`. Refusals: day_end_not_taken."""

    routing_key: ClassVar[str] = "ledger.get_day_end_balances"
    read_only: ClassVar[bool] = True

    business_date: dt.date
    after: UUID | None = Field(default=None, description="the page starts after this account id")
    limit: int = page_size(default=MAX_BATCH, most=MAX_BATCH)


class StatementTotals(Contract):
    account_id: UUID
    opening: int = Field(description="posted balance as the period began, minor units")
    credits: int = Field(ge=0, description="posted credits in the period")
    debits: int = Field(ge=0, description="posted debits in the period")
    closing: int = Field(description="posted balance as the period ended")
    transfers: int = Field(ge=0, description="posted movements in the period")
    balanced: bool = Field(description="opening + credits − debits = closing: the history adds up")


class Statements(Contract):
    month_end: dt.date
    period_from: AwareDatetime | None = Field(description="the cut the period starts at (the previous month's books); "
                                                          "null: from the account's first movement")
    period_until: AwareDatetime = Field(description="the cut it ends at: when the books of the month's last business "
                                                    "date were taken, interest and charges in")
    items: list[StatementTotals]


class GetStatements(Command):
    """Monthly statement totals of up to 1,000 accounts, from their history (credits and debits
    summed one by one, and the balances as of the two cuts). Result: `Statements`. Refusals:
    books_not_closed (no close of business has taken the books of that month's last business
    date yet)."""

    routing_key: ClassVar[str] = "ledger.get_statements"
    read_only: ClassVar[bool] = True

    month_end: dt.date
    account_ids: list[UUID] = Field(min_length=1, max_length=MAX_BATCH)


class JournalLine(Contract):
    """One side of one posted movement: every transfer is a debit line and a credit line."""

    seq: int = Field(ge=1, description="the line's place in the ledger's history: the page cursor")
    at: AwareDatetime
    transfer_id: UUID
    account_id: UUID
    side: Literal["debit", "credit"]
    amount: int = Field(ge=0, description="minor units")
    currency: str = currency_field()
    code: str


class Journal(Contract):
    business_date: dt.date
    period_from: AwareDatetime | None = Field(description="the cut of the business date before (its books taken)")
    period_until: AwareDatetime = Field(description="the cut of this one")
    lines: list[JournalLine] = Field(description="in the ledger's order")
    next_after: int | None = Field(default=None, description="ask again from here; null: the day's last page")


class GetJournal(Command):
    """A closed business date's journal, for the finance team: every posted movement between the cut
    of the date before and its own (the moments their books were taken, interest and fees in), one
    line a side. Result: `Journal`. Refusals: books_not_closed."""

    routing_key: ClassVar[str] = "ledger.get_journal"
    read_only: ClassVar[bool] = True

    business_date: dt.date
    after: int | None = Field(default=None, ge=0, description="the page starts after this line")
    limit: int = page_size(default=MAX_BATCH, most=MAX_BATCH)


class Verify(Command):
    """Recompute every balance from the transfers and check debits = credits. Result: `VerifyResult`."""

    routing_key: ClassVar[str] = "ledger.verify"
    read_only: ClassVar[bool] = True


# --- events ----------------------------------------------------------------------------------


class CommittedTransfer(Contract):
    """One transfer a commit applied, with both accounts' balances after it, so a consumer never
    has to ask back."""

    kind: Literal["posted", "pending", "voided"] = Field(
        description="posted: money moved (single-phase, or a post of a hold); pending: a hold was placed; "
        "voided: a hold was released"
    )
    reason: Literal["voided", "expired"] | None = Field(
        default=None, description="voided only: released by a void transfer (`id` = the void's id) or by its "
        "timeout (`id` = `pending_id`)",
    )
    id: UUID = Field(description="the transfer id")
    debit_account_id: UUID = Field(description="account debited")
    credit_account_id: UUID = Field(description="account credited")
    amount: int = Field(ge=0, description="amount moved, held or released, minor units")
    currency: str = currency_field("ISO 4217 currency")
    code: str = _code_field("why the money moved")
    flags: TransferFlags = Field(description="flags as requested")
    pending_id: UUID | None = Field(default=None, description="the pending transfer a post or void resolved")
    timeout_s: int = Field(default=0, ge=0, description="seconds a pending transfer is held for; 0 = no expiry")
    reference: str | None = Field(default=None, description="caller's reference")
    user_data: UserData | None = _user_data_field()
    timestamp: AwareDatetime = Field(description="ledger time of the transfer")
    debit_account: BalancesAfter = Field(description="the debit account's balances after the transfer")
    credit_account: BalancesAfter = Field(description="the credit account's balances after the transfer")
    debit_owner_id: UUID | None = Field(default=None, description="customer owning the debit account, when known")
    credit_owner_id: UUID | None = Field(default=None, description="customer owning the credit account, when known")
    command_id: str | None = Field(default=None, max_length=200, description="message id of the `create_transfers` "
                                   "command that applied it; none for a hold released by its timeout")  # fmt: skip


class TransfersCommitted(Event):
    """Every transfer one commit applied, in the order applied. The ledger group-commits: the
    `create_transfers` commands of one batch (and the expired holds it released) share one
    transaction, and their facts travel as one message (more only past MAX_BATCH facts), so a
    busy ledger costs its consumers (audit first) one message per commit, not one per command or
    per transfer. Each fact names the command that applied it (`command_id`); the message's
    causation and correlation are that command's when the commit held only one. A commit that
    applied nothing publishes none. (Replaces `ledger.transfer_posted|pending|voided`, one message
    per transfer, which no worker consumed.)"""

    routing_key: ClassVar[str] = "ledger.transfers_committed"

    transfers: list[CommittedTransfer] = Field(min_length=1, max_length=MAX_BATCH,
                                               description=f"1 to {MAX_BATCH} transfers, in the order applied")  # fmt: skip
    occurred_at: AwareDatetime = Field(description="UTC time the change was committed")


class AccountCreated(Event):
    routing_key: ClassVar[str] = "ledger.account_created"

    id: UUID = Field(description="the ledger account id")
    currency: str = currency_field("ISO 4217 currency of the account")
    code: str = _code_field("what the account is for")
    owner_id: UUID | None = Field(default=None, description="customer who owns it")
    flags: AccountFlags = Field(default_factory=AccountFlags, description="balance constraints and history")
    overdraft_limit: int = Field(
        default=0, description="how far debits may exceed credits; negative = a minimum balance"
    )
    occurred_at: AwareDatetime = Field(description="UTC time the account was created")


class OverdraftLimitChanged(Event):
    routing_key: ClassVar[str] = "ledger.overdraft_limit_changed"

    account_id: UUID = Field(description="the ledger account")
    owner_id: UUID | None = Field(default=None, description="customer who owns it")
    overdraft_limit: int = Field(description="after the change")
    previous_limit: int = Field(description="before the change")
    actor: str = Field(min_length=1, max_length=200, description="who asked for the change")
    reason: str = Field(min_length=1, max_length=500, description="why")
    occurred_at: AwareDatetime = Field(description="UTC time the change was committed")


class AccountFlagsChanged(Event):
    routing_key: ClassVar[str] = "ledger.account_flags_changed"

    account_id: UUID = Field(description="the ledger account")
    owner_id: UUID | None = Field(default=None, description="customer who owns it")
    frozen: bool = Field(description="frozen after the change")
    closed: bool = Field(description="closed after the change")
    actor: str = Field(min_length=1, max_length=200, description="who asked for the change")
    reason: str = Field(min_length=1, max_length=500, description="why")
    balances: BalancesAfter = Field(description="the account's balances at the change")
    occurred_at: AwareDatetime = Field(description="UTC time the change was committed")


COMMANDS: tuple[type[Command], ...] = (
    CreateAccounts,
    CreateTransfers,
    SetAccountFlags,
    SetOverdraftLimit,
    LookupAccounts,
    LookupTransfers,
    GetAccountHistory,
    GetBalanceAt,
    Verify,
    GetTrialBalance,
    GetDayEndBalances,
    GetStatements,
    GetJournal,
)
class CobStepReported(day.StepReport):
    """The ledger's end-of-day steps for a business date: `ledger.day_end_balances`, each customer
    deposit account's posted balance kept as the day ends (`result.accounts`, how many), and
    `ledger.trial_balance`, every currency's posted debits and credits over all accounts
    (`result.trial_balance`; failed when they differ)."""

    routing_key: ClassVar[str] = "ledger.cob_step_reported"


EVENTS: tuple[type[Event], ...] = (
    TransfersCommitted, AccountCreated, AccountFlagsChanged, OverdraftLimitChanged, CobStepReported,
)  # fmt: skip
