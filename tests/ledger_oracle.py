"""The ledger tests' oracle: every balance recomputed from the transfers, in memory.

Production recomputes balances in SQL (`workers/ledger/store.py: verify`); this is that query's
in-memory twin, so the unit and property tests can check the engine without a database, and it
answers in the same shape (one row per account that differs, with `expected_*` beside each
stored balance). The judgement itself, debits = credits per currency and `ok` or not, is not
copied: it is production's `workers.ledger.domain.accounts.verified`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from contracts.ledger import VerifyResult
from workers.ledger.domain.accounts import AccountState, verified
from workers.ledger.domain.transfers import PENDING, POSTED, StoredTransfer

BALANCE_FIELDS = ("debits_posted", "debits_pending", "credits_posted", "credits_pending")  # the query's order


def expected_balances(transfers: Iterable[StoredTransfer]) -> dict[UUID, dict[str, int]]:
    """Each account's four balances from the transfers alone: what the SQL sums."""
    sums: dict[UUID, dict[str, int]] = {}
    for t in transfers:
        debit = sums.setdefault(t.debit_account_id, dict.fromkeys(BALANCE_FIELDS, 0))
        credit = sums.setdefault(t.credit_account_id, dict.fromkeys(BALANCE_FIELDS, 0))
        if t.state == PENDING:
            debit["debits_pending"] += t.amount
            credit["credits_pending"] += t.amount
        elif t.state == POSTED and not t.flags.void_pending:
            # A resolved hold moves nothing by itself: its post transfer carries what moved.
            debit["debits_posted"] += t.amount
            credit["credits_posted"] += t.amount
    return sums


def verify(accounts: Iterable[AccountState], transfers: Iterable[StoredTransfer]) -> VerifyResult:
    """What `ledger.verify` would answer for this state."""
    accounts, transfers = list(accounts), list(transfers)
    expected = expected_balances(transfers)
    unknown = set(expected) - {a.id for a in accounts}
    assert not unknown, f"transfers name accounts that do not exist: {unknown}"  # a foreign key in the database
    differing: list[dict[str, Any]] = []
    totals: dict[str, dict[str, Any]] = {}
    for a in sorted(accounts, key=lambda a: a.id):
        stored = {name: getattr(a, name) for name in BALANCE_FIELDS}
        want = expected.get(a.id, dict.fromkeys(BALANCE_FIELDS, 0))
        if stored != want:
            differing.append({"id": str(a.id), **stored, **{f"expected_{k}": v for k, v in want.items()}})
        total = totals.setdefault(a.currency, {"currency": a.currency, **dict.fromkeys(BALANCE_FIELDS, 0)})
        for name, value in stored.items():
            total[name] += value
    return verified(differing, sorted(totals.values(), key=lambda t: t["currency"]),
                    accounts_checked=len(accounts), transfers_checked=len(transfers))  # fmt: skip
