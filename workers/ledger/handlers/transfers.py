"""Transfers: `create_transfers` is group-committed (many commands, one transaction), and the
sweep releases holds past their timeout.

Recipe for a batch: load the transfers involved, lock their accounts in id order, take the
database clock, let the pure engine decide every transfer in order, write everything in bulk
(`commits`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

from bus.actor import not_for_customers
from bus.handling import Context
from contracts import ledger as c
from contracts.common import Reply
from workers.ledger import store
from workers.ledger.domain import transfers
from workers.ledger.domain.transfers import Outcome
from workers.ledger.handlers.commits import committed, emit_many, load_and_lock, write

EXPIRY_BATCH = 500  # holds released per sweep transaction
EXPIRY_SWEEP_S = float(os.environ.get("CBS_LEDGER_SWEEP_S", "1"))  # how often each replica sweeps


async def create_transfers(items: Sequence[tuple[Context, c.CreateTransfers]]) -> list[Reply]:
    conn = items[0][0].conn
    refused = {i: r for i, (ctx, _) in enumerate(items) if (r := not_for_customers(ctx.actor))}
    requests = [t for i, (_, cmd) in enumerate(items) if i not in refused for t in cmd.transfers]
    ledger, now = await load_and_lock(conn, [t.id for t in requests], [t.pending_id for t in requests if t.pending_id],
                                      {a for t in requests for a in (t.debit_account_id, t.credit_account_id) if a})
    failed_before = set(ledger.failed)
    # Holds past their timeout are released first, in this same commit (the sweep may lag).
    expiries = transfers.expire_pending(ledger, [t.pending_id for t in requests if t.pending_id], now)
    replies, all_outcomes = [], list(expiries)
    applied: list[tuple[Outcome, str | None]] = [(o, None) for o in expiries]  # (outcome, its command's id)
    offset_us = 0
    for i, (ctx, cmd) in enumerate(items):
        if i in refused:  # customers move money through payment orders, never here
            replies.append(refused[i])
            continue
        # Each command gets its own microsecond range, so timestamps strictly increase in the batch.
        outcomes = transfers.create_transfers(ledger, cmd.transfers, now + timedelta(microseconds=offset_us))
        offset_us += len(cmd.transfers)
        all_outcomes += outcomes
        applied += [(o, ctx.message_id) for o in outcomes]
        replies.append(Reply.success(c.CreateTransfersResult(results=[_result(o) for o in outcomes])))
    new_failures = [(i, str(code)) for i, code in ledger.failed.items() if i not in failed_before]
    await write(conn, ledger, all_outcomes, new_failures, now)
    # The commit's facts travel together (issue 10: one message per commit, not per command); a
    # batch of one command keeps that command as the event's cause.
    cause = (items[0][0].correlation_id, items[0][0].message_id) if len(items) == 1 else (None, None)
    await emit_many(conn, [(e, *cause) for e in committed(ledger, applied, now)])
    return replies


async def expire_due_holds(ctx: Context) -> bool:
    """The expiry duty: release holds past their timeout; True when a full batch was released (more
    may be due). Safe on every replica at once: the second to lock the accounts finds the hold no
    longer pending and skips it."""
    due = await store.expired_pending_ids(ctx.conn, await store.db_now(ctx.conn), EXPIRY_BATCH)
    if not due:
        return False
    ledger, now = await load_and_lock(ctx.conn, [], due, set())
    outcomes = transfers.expire_pending(ledger, due, now)
    await write(ctx.conn, ledger, outcomes, [], now)
    await emit_many(ctx.conn, [(e, None, None) for e in committed(ledger, [(o, None) for o in outcomes], now)])
    return len(outcomes) == EXPIRY_BATCH


def _result(o: Outcome) -> c.TransferResult:
    stored = o.transfer or o.existing
    return c.TransferResult(
        index=o.index,
        id=o.id,
        result=str(o.result),
        amount=stored.amount if stored else None,
        timestamp=stored.timestamp if stored else None,
    )
