"""Accounts: their in-memory state, balances and views, creation and flags, and verification.

Verification is one rule (`verified`): every account's stored balances equal what its transfers
moved (the store recomputes that in SQL and hands over the accounts that differ), and in every
currency debits equal credits, posted and pending.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.ledger import (
    AccountFlags,
    AccountResultCode,
    AccountView,
    BalancesAfter,
    LedgerError,
    NewAccount,
    VerifyResult,
)

A = AccountResultCode
ZERO_ID = UUID(int=0)  # as an id: refused; as an account id or pending_id in a transfer: absent


@dataclass(slots=True)
class AccountState:  # mutable in memory; the store loads and saves these
    id: UUID
    currency: str
    code: str
    flags: AccountFlags
    overdraft_limit: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    frozen: bool = False
    closed: bool = False
    owner_id: UUID | None = None


# --- balances --------------------------------------------------------------------------------


def balance(a: AccountState) -> int:
    """Credit-normal balance (banking-rules §3); a debit-normal account reads it negated."""
    return a.credits_posted - a.debits_posted


def debit_room(a: AccountState) -> int:
    """How much more may be debited under debits_must_not_exceed_credits: the credits, plus the
    overdraft (negative: less the minimum balance), less what is debited and held."""
    return a.credits_posted + a.overdraft_limit - a.debits_posted - a.debits_pending


def credit_room(a: AccountState) -> int:
    """How much more may be credited under credits_must_not_exceed_debits."""
    return a.debits_posted + a.overdraft_limit - a.credits_posted - a.credits_pending


def available(a: AccountState) -> int:
    """What may be spent now, by the rule the ledger applies to a debit: held debits are already
    promised, and an account that may not go below a floor (a minimum balance, or zero plus its
    overdraft) has only the room above it. An account without that flag: its balance less holds."""
    if a.flags.debits_must_not_exceed_credits:
        return max(0, debit_room(a))
    return balance(a) - a.debits_pending


def balances_after(a: AccountState) -> BalancesAfter:
    return BalancesAfter(account_id=a.id, debits_pending=a.debits_pending, debits_posted=a.debits_posted,
                         credits_pending=a.credits_pending, credits_posted=a.credits_posted)  # fmt: skip


def account_view(a: AccountState, created_at: datetime, user_data: dict[str, Any] | None = None) -> AccountView:
    """The store keeps `created_at` and `user_data`; the engine never needs them."""
    return AccountView(
        id=a.id,
        currency=a.currency,
        code=a.code,
        flags=a.flags,
        frozen=a.frozen,
        closed=a.closed,
        overdraft_limit=a.overdraft_limit,
        owner_id=a.owner_id,
        debits_pending=a.debits_pending,
        debits_posted=a.debits_posted,
        credits_pending=a.credits_pending,
        credits_posted=a.credits_posted,
        balance=balance(a),
        available=available(a),
        created_at=created_at,
        user_data=user_data,
    )


# --- creation and flags ----------------------------------------------------------------------


def _account_result(existing: AccountState | None, a: NewAccount) -> AccountResultCode:
    if a.id == ZERO_ID:
        return A.id_must_not_be_zero
    if a.flags.debits_must_not_exceed_credits and a.flags.credits_must_not_exceed_debits:
        return A.flags_are_mutually_exclusive
    if existing is None:
        return A.ok
    if existing.currency != a.currency:
        return A.exists_with_different_currency
    if existing.code != a.code:
        return A.exists_with_different_code
    if existing.flags != a.flags:
        return A.exists_with_different_flags
    if existing.overdraft_limit != a.overdraft_limit:
        return A.exists_with_different_overdraft_limit
    if existing.owner_id != a.owner_id:
        return A.exists_with_different_owner_id
    # user_data is an annotation, not identity: a retry with other user_data still answers exists.
    return A.exists


def create_accounts(existing: dict[UUID, AccountState], requests: Sequence[NewAccount]) -> list[tuple[NewAccount, str]]:
    """A result code per request, in order; adds an `AccountState` to `existing` for each `ok`.

    `existing` must hold every stored account with a requested id; a repeated id within the
    batch answers `exists` (or a difference) against the earlier one.
    """
    results: list[tuple[NewAccount, str]] = []
    for a in requests:
        code = _account_result(existing.get(a.id), a)
        if code == A.ok:
            existing[a.id] = AccountState(
                id=a.id,
                currency=a.currency,
                code=a.code,
                flags=a.flags,
                overdraft_limit=a.overdraft_limit,
                owner_id=a.owner_id,
            )
        results.append((a, code))
    return results


def closure_refusal(account: AccountState, *, paying_out: bool = False) -> LedgerError | None:
    """What stops a close: already closed; money left (unless it is being paid out) or owed (a
    debt is repaid, never paid out); a hold still open (its money is promised)."""
    if account.closed:
        return LedgerError.account_already_closed
    owed = balance(account)
    if owed < 0 or (owed > 0 and not paying_out):
        return LedgerError.close_refused_nonzero_balance
    if account.debits_pending or account.credits_pending:
        return LedgerError.close_refused_pending_transfers
    return None


@contextmanager
def floor_lifted(account: AccountState) -> Iterator[None]:
    """The account's floor at zero while a closing settles and pays it out: its minimum balance (a
    negative overdraft_limit) set aside, and no overdraft either (charges settled as balancing
    debits stop at zero, never in the red); the limit is restored after, whatever happened."""
    limit = account.overdraft_limit
    account.overdraft_limit = 0
    try:
        yield
    finally:
        account.overdraft_limit = limit


def set_overdraft_limit(account: AccountState, limit: int) -> LedgerError | None:
    """None = done (and `account` changed). A lower limit may not leave the account using more
    overdraft than it allows (a minimum balance may: an empty account sits below it legally)."""
    if account.closed:
        return LedgerError.account_already_closed
    if account.flags.debits_must_not_exceed_credits and (
        account.debits_posted + account.debits_pending > account.credits_posted + max(limit, 0)
    ):
        return LedgerError.overdraft_in_use
    if account.flags.credits_must_not_exceed_debits and (
        account.credits_posted + account.credits_pending > account.debits_posted + max(limit, 0)
    ):
        return LedgerError.overdraft_in_use
    account.overdraft_limit = limit
    return None


def set_flags(account: AccountState, action: str) -> str | None:
    """None = done (and `account` changed); else a `LedgerError` refusal.

    Freezing a frozen account or unfreezing an open one is a harmless repeat, so it succeeds.
    Closing needs a zero balance and no holds either way: a closed account could not take the
    transfer that settles them (voids still could, but a hold the bank forgot must not vanish).
    """
    assert action in ("freeze", "unfreeze", "close"), f"unknown action {action!r}"
    if account.closed:
        return LedgerError.account_already_closed
    if action == "close":
        if refusal := closure_refusal(account):
            return refusal
        account.closed = True
    else:
        account.frozen = action == "freeze"
    return None


# --- verification ----------------------------------------------------------------------------

# (debits, credits) that must be equal in every currency.
DEBITS_EQUAL_CREDITS = (("debits_posted", "credits_posted"), ("debits_pending", "credits_pending"))


def verified(
    account_mismatches: Sequence[dict[str, Any]], totals: Sequence[dict[str, Any]], *,
    accounts_checked: int, transfers_checked: int,
) -> VerifyResult:  # fmt: skip
    """The ledger's verification rule, the one `ledger.verify` answers with.

    `account_mismatches`: the accounts whose stored balances differ from their transfers, as the
    caller found them. `totals`: per currency, the four balances summed over its accounts. A
    currency whose debits differ from its credits adds `{currency, field: the debits field, stored:
    the debits, expected: the credits}` after the accounts. `ok` only when nothing was found.
    """
    mismatches = list(account_mismatches)
    for total in totals:
        for debits, credits in DEBITS_EQUAL_CREDITS:
            if total[debits] != total[credits]:
                mismatches.append({"currency": total["currency"], "field": debits, "stored": total[debits],
                                   "expected": total[credits]})  # fmt: skip
    return VerifyResult(ok=not mismatches, accounts_checked=accounts_checked, transfers_checked=transfers_checked,
                        mismatches=mismatches, totals=list(totals))  # fmt: skip
