"""Reads: accounts, transfers, an account's history and its balance at a time (a customer sees
only their own), and `ledger.verify`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bus.actor import owner_only
from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_seq, page_of
from contracts import ledger as c
from contracts.common import Reply
from workers.ledger import store
from workers.ledger.domain import accounts, lines, transfers


async def lookup_accounts(ctx: Context, cmd: c.LookupAccounts) -> Reply:
    found = {a.id: (a, created) for a, created in await store.read_accounts(ctx.conn, cmd.ids)}
    for account, _ in found.values():
        if refusal := owner_only(ctx.actor, account.owner_id):
            return refusal
    views = [accounts.account_view(*found[i]) for i in dict.fromkeys(cmd.ids) if i in found]
    return Reply.success(c.AccountsResult(accounts=views))


async def lookup_transfers(ctx: Context, cmd: c.LookupTransfers) -> Reply:
    found = await store.load_transfers(ctx.conn, cmd.ids)
    if ctx.actor is not None and ctx.actor.is_customer:
        # A customer sees a transfer only when one of its sides is theirs.
        sides = {a for t in found.values() for a in (t.debit_account_id, t.credit_account_id)}
        owners = {a.id: a.owner_id for a, _ in await store.read_accounts(ctx.conn, list(sides))}
        for t in found.values():
            if all(owner_only(ctx.actor, owners.get(side)) for side in (t.debit_account_id, t.credit_account_id)):
                return Reply.refusal("not_owner", "this transfer moved another customer's money")
    return Reply.success(c.TransfersResult(transfers=[transfers.transfer_view(found[i]) for i in dict.fromkeys(cmd.ids) if i in found]))


async def get_account_history(ctx: Context, cmd: c.GetAccountHistory) -> Reply:
    after_seq, refusal = cursor_or_refusal(cmd.cursor, decode_seq)
    if refusal := refusal or await _readable(ctx, cmd.account_id):
        return refusal
    rows = await store.history(ctx.conn, cmd.account_id, since=cmd.since, until=cmd.until, code=cmd.code,
                               after_seq=after_seq, limit=cmd.limit + 1)  # fmt: skip
    page, next_cursor = page_of(rows, cmd.limit, lambda r: (r["seq"],))
    entries = [_history_entry(r) for r in page]
    return Reply.success(c.HistoryPage(items=entries, next_cursor=next_cursor))


_ENTRY_FIELDS = tuple(f for f in c.HistoryEntry.model_fields if f not in ("timestamp", "counterparty"))


def _history_entry(r: Any) -> c.HistoryEntry:
    name = lines.counterparty_name(account_id=r["counterparty_account_id"], code=r["other_code"], owner_id=r["other_owner"],
                                   title=r["other_title"], outside_party=r["outside_party"])  # fmt: skip
    return c.HistoryEntry(timestamp=r["ts"], counterparty=name, **{k: r[k] for k in _ENTRY_FIELDS})


async def get_balance_at(ctx: Context, cmd: c.GetBalanceAt) -> Reply:
    if refusal := await _readable(ctx, cmd.account_id):
        return refusal
    row = await store.balance_at(ctx.conn, cmd.account_id, cmd.at)
    b = dict(row) if row else {"debits_pending": 0, "debits_posted": 0, "credits_pending": 0, "credits_posted": 0}
    return Reply.success(c.BalanceAt(account_id=cmd.account_id, at=cmd.at, balance=b["credits_posted"] - b["debits_posted"], **b))


async def _readable(ctx: Context, account_id: UUID) -> Reply | None:
    found = await store.read_accounts(ctx.conn, [account_id])
    if not found:
        return Reply.refusal(c.LedgerError.account_not_found, f"no ledger account {account_id}")
    return owner_only(ctx.actor, found[0][0].owner_id)


async def verify(ctx: Context, cmd: c.Verify) -> Reply:
    """The SQL recomputes every balance from the transfers; the domain's one rule judges."""
    account_mismatches, totals, accounts_checked, transfers_checked = await store.verify(ctx.conn)
    return Reply.success(accounts.verified(account_mismatches, totals, accounts_checked=accounts_checked,
                                           transfers_checked=transfers_checked))  # fmt: skip
