"""Ledger rules (DESIGN §5, banking-rules §3): the public face of the pure ledger.

No I/O: the store loads state, these functions decide and change it in memory, the store writes
it back; the clock comes in as an argument. The transfer engine lives in `engine.py` and is
re-exported here, so handlers and the store import only this module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.ledger import (
    AccountResultCode,
    AccountView,
    LedgerError,
    NewAccount,
    TransferResultCode,
    TransferView,
    VerifyResult,
)
from workers.ledger.engine import (
    PENDING,
    PENDING_EXPIRED,
    PENDING_POSTED,
    PENDING_VOIDED,
    POSTED,
    STATES,
    ZERO_ID,
    AccountState,
    Ledger,
    Outcome,
    StoredTransfer,
    balances_after,
    chains,
    create_transfers,
    expire_pending,
    records_failure,
)

__all__ = [
    "PENDING",
    "PENDING_EXPIRED",
    "PENDING_POSTED",
    "PENDING_VOIDED",
    "POSTED",
    "STATES",
    "ZERO_ID",
    "AccountState",
    "Ledger",
    "Outcome",
    "StoredTransfer",
    "TransferResultCode",
    "account_view",
    "available",
    "balance",
    "balances_after",
    "chains",
    "create_accounts",
    "create_transfers",
    "expire_pending",
    "records_failure",
    "set_flags",
    "transfer_view",
    "verify",
]

A = AccountResultCode
BALANCE_FIELDS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


# --- balances --------------------------------------------------------------------------------


def balance(a: AccountState) -> int:
    """Credit-normal balance (banking-rules §3); a debit-normal account reads it negated."""
    return a.credits_posted - a.debits_posted


def available(a: AccountState) -> int:
    """What may be spent now: held debits are already promised."""
    return balance(a) - a.debits_pending


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


def transfer_view(t: StoredTransfer) -> TransferView:
    return TransferView(
        id=t.id,
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=t.amount,
        currency=t.currency,
        code=t.code,
        flags=t.flags,
        pending_id=t.pending_id,
        timeout_s=t.timeout_s,
        reference=t.reference,
        user_data=t.user_data,
        timestamp=t.timestamp,
        status=t.state,  # type: ignore[arg-type]
    )


# --- accounts --------------------------------------------------------------------------------


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
        if account.debits_posted != account.credits_posted:
            return LedgerError.close_refused_nonzero_balance
        if account.debits_pending or account.credits_pending:
            return LedgerError.close_refused_pending_transfers
        account.closed = True
    else:
        account.frozen = action == "freeze"
    return None


# --- verification ----------------------------------------------------------------------------


def expected_balances(transfers: Iterable[StoredTransfer]) -> dict[UUID, list[int]]:
    """Each account's four balances recomputed from the transfers alone (BALANCE_FIELDS order)."""
    sums: dict[UUID, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for t in transfers:
        if t.state == PENDING:
            sums[t.debit_account_id][0] += t.amount
            sums[t.credit_account_id][2] += t.amount
        elif t.state == POSTED and not t.flags.void_pending:
            # A resolved hold moves nothing by itself: its post transfer carries what moved.
            sums[t.debit_account_id][1] += t.amount
            sums[t.credit_account_id][3] += t.amount
    return sums


def verify(accounts: Iterable[AccountState], transfers: Iterable[StoredTransfer]) -> VerifyResult:
    """Check every balance against its transfers and debits = credits per currency."""
    accounts, transfers = list(accounts), list(transfers)
    expected = expected_balances(transfers)
    mismatches: list[dict[str, Any]] = []
    totals: dict[str, dict[str, Any]] = {}
    for a in accounts:
        stored = [getattr(a, name) for name in BALANCE_FIELDS]
        want = expected.pop(a.id, [0, 0, 0, 0])
        for name, s, w in zip(BALANCE_FIELDS, stored, want, strict=True):
            if s != w:
                mismatches.append({"account_id": str(a.id), "field": name, "stored": s, "expected": w})
        total = totals.setdefault(a.currency, {"currency": a.currency, **dict.fromkeys(BALANCE_FIELDS, 0)})
        for name, s in zip(BALANCE_FIELDS, stored, strict=True):
            total[name] += s
    for account_id in expected:
        mismatches.append({"account_id": str(account_id), "field": "account", "stored": None, "expected": "exists"})
    for total in totals.values():
        for debits, credits in (("debits_posted", "credits_posted"), ("debits_pending", "credits_pending")):
            if total[debits] != total[credits]:
                currency = total["currency"]
                stored, want = total[debits], total[credits]
                mismatches.append({"currency": currency, "field": debits, "stored": stored, "expected": want})
    return VerifyResult(
        ok=not mismatches,
        accounts_checked=len(accounts),
        transfers_checked=len(transfers),
        mismatches=mismatches,
        totals=sorted(totals.values(), key=lambda t: t["currency"]),
    )
