"""One commit of the ledger: load and lock what it touches, write its outcomes (transfers,
balances, history, failures), tell its facts (`ledger.transfers_committed`). The group-committed
transfers, the expiry sweep and an account's closing share it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from bus import outbox
from contracts import ledger as c
from workers.ledger import store
from workers.ledger.domain import transfers
from workers.ledger.domain.transfers import Ledger, Outcome


async def load_and_lock(
    conn: asyncpg.Connection, ids: list[UUID], pending_ids: list[UUID], account_ids: set[UUID]
) -> tuple[Ledger, datetime]:
    held = await store.load_transfers(conn, pending_ids) if pending_ids else {}
    account_ids |= {a for p in held.values() for a in (p.debit_account_id, p.credit_account_id)}
    locked = await store.lock_accounts(conn, account_ids)
    # Read again under the locks: another batch may have resolved a hold in between.
    stored = await store.load_transfers(conn, [*ids, *pending_ids])
    failed = await store.load_failed(conn, ids) if ids else {}
    now = await store.db_now(conn)
    return Ledger(locked, stored, {i: c.TransferResultCode(r) for i, r in failed.items()}), now


async def write(
    conn: asyncpg.Connection, ledger: Ledger, outcomes: list[Outcome], failures: list[tuple[UUID, str]], now: datetime
) -> None:
    new = [o.transfer for o in outcomes if o.transfer is not None]
    resolved = {o.resolved_pending.id: ledger.transfers[o.resolved_pending.id] for o in outcomes if o.resolved_pending}
    touched = {a for t in [*new, *resolved.values()] for a in (t.debit_account_id, t.credit_account_id)}
    await store.insert_transfers(conn, new)
    await store.update_transfer_states(conn, list(resolved.values()))
    await store.save_balances(conn, [ledger.accounts[a] for a in sorted(touched)])
    await store.insert_history(conn, [row for o in outcomes for row in _history_rows(o, now)])
    await store.insert_failed(conn, failures)


def _history_rows(o: Outcome, now: datetime) -> list[store.HistoryRow]:
    if o.after is None:
        return []
    t = o.transfer or o.resolved_pending
    assert t is not None
    pending = t.state == transfers.PENDING or t.flags.void_pending or o.transfer is None
    rows = []
    for side, after in (("debit", o.after[0]), ("credit", o.after[1])):
        rows.append((after.account_id, t.id, t.timestamp if o.transfer else now, t.code, t.amount, side, pending,
                     after.debits_pending, after.debits_posted, after.credits_pending, after.credits_posted))  # fmt: skip
    return rows


def committed(ledger: Ledger, applied: list[tuple[Outcome, str | None]], now: datetime) -> list[c.TransfersCommitted]:
    """The facts of one commit's outcomes (each with the id of the command that asked it) as
    `ledger.transfers_committed` events: one per MAX_BATCH facts."""
    facts = [_fact(ledger, o, command_id) for o, command_id in applied if o.after is not None]
    return [c.TransfersCommitted(transfers=facts[i : i + c.MAX_BATCH], occurred_at=now)
            for i in range(0, len(facts), c.MAX_BATCH)]  # fmt: skip


def _fact(ledger: Ledger, o: Outcome, command_id: str | None) -> c.CommittedTransfer:
    assert o.after is not None
    t, extra = o.transfer, {}
    if t is None:  # an expiry: the hold itself is the fact
        assert o.resolved_pending is not None
        t, extra = o.resolved_pending, {"kind": "voided", "reason": "expired", "pending_id": o.resolved_pending.id}
    elif t.flags.void_pending:
        extra = {"kind": "voided", "reason": "voided"}
    else:
        extra = {"kind": "pending" if t.state == transfers.PENDING else "posted"}
    fields = {
        "id": t.id, "debit_account_id": t.debit_account_id, "credit_account_id": t.credit_account_id,
        "amount": t.amount, "currency": t.currency, "code": t.code, "flags": t.flags, "pending_id": t.pending_id,
        "timeout_s": t.timeout_s, "reference": t.reference, "user_data": t.user_data, "timestamp": t.timestamp,
        "debit_account": o.after[0], "credit_account": o.after[1],
        "debit_owner_id": ledger.accounts[t.debit_account_id].owner_id,
        "credit_owner_id": ledger.accounts[t.credit_account_id].owner_id, "command_id": command_id,
    }  # fmt: skip
    return c.CommittedTransfer(**{**fields, **extra})


async def emit_many(conn: asyncpg.Connection, events: list[tuple[Any, str | None, str | None]]) -> None:
    await outbox.add_many(conn, events)
