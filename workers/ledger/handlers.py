"""The ledger's recipes. `create_transfers` is group-committed: many commands, one transaction.

Recipe for a batch: load the transfers involved, lock their accounts in id order, take the
database clock, let the pure engine decide every transfer in order, write everything in bulk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from bus import outbox
from bus.actor import not_for_customers, owner_only
from bus.paging import cursor_or_refusal, decode_seq, page_of
from bus.handling import Context
from contracts import day
from contracts import ledger as c
from contracts.common import Reply
from workers.ledger import store
from workers.ledger.domain import accounts, books, lines, transfers
from workers.ledger.domain.accounts import AccountState
from workers.ledger.domain.transfers import Ledger, Outcome, StoredTransfer

EXPIRY_BATCH = 500  # holds released per sweep transaction
EXPIRY_SWEEP_S = float(os.environ.get("CBS_LEDGER_SWEEP_S", "1"))  # how often each replica sweeps
CURRENCIES = tuple(c.strip() for c in os.environ.get("CBS_CURRENCIES", "INR").split(",") if c.strip())


# --- transfers (group commit) ----------------------------------------------------------------


async def create_transfers(items: Sequence[tuple[Context, c.CreateTransfers]]) -> list[Reply]:
    conn = items[0][0].conn
    refused = {i: r for i, (ctx, _) in enumerate(items) if (r := not_for_customers(ctx.actor))}
    requests = [t for i, (_, cmd) in enumerate(items) if i not in refused for t in cmd.transfers]
    ledger, now = await _load_and_lock(conn, [t.id for t in requests], [t.pending_id for t in requests if t.pending_id],
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
    await _write(conn, ledger, all_outcomes, new_failures, now)
    # The commit's facts travel together (issue 10: one message per commit, not per command); a
    # batch of one command keeps that command as the event's cause.
    cause = (items[0][0].correlation_id, items[0][0].message_id) if len(items) == 1 else (None, None)
    await _emit_many(conn, [(e, *cause) for e in _committed(ledger, applied, now)])
    return replies


async def expire_due_holds(ctx: Context) -> bool:
    """The expiry duty: release holds past their timeout; True when a full batch was released (more
    may be due). Safe on every replica at once: the second to lock the accounts finds the hold no
    longer pending and skips it."""
    due = await store.expired_pending_ids(ctx.conn, await store.db_now(ctx.conn), EXPIRY_BATCH)
    if not due:
        return False
    ledger, now = await _load_and_lock(ctx.conn, [], due, set())
    outcomes = transfers.expire_pending(ledger, due, now)
    await _write(ctx.conn, ledger, outcomes, [], now)
    await _emit_many(ctx.conn, [(e, None, None) for e in _committed(ledger, [(o, None) for o in outcomes], now)])
    return len(outcomes) == EXPIRY_BATCH


DAY_END_STEP = "ledger.day_end_balances"
TRIAL_BALANCE_STEP = "ledger.trial_balance"
DEPOSIT_CODE = "customer_deposit"  # the accounts whose day-end balances interest accrues on


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    """Close of business asks for one of the ledger's steps (each idempotent per date)."""
    if DAY_END_STEP in event.steps:
        await _keep_day_end_balances(ctx, event)
    if TRIAL_BALANCE_STEP in event.steps:
        await _keep_trial_balance(ctx, event)


async def _keep_day_end_balances(ctx: Context, event: day.DayClosing) -> None:
    """Every open deposit account's posted balance as the day ends, kept once per close: asked
    again (attempt 2 on), the first cut stands (later payments and the interest itself belong to
    the next day); a new close of the date (attempt 1: a bank set back to it) takes it anew."""
    accounts = await store.keep_day_end_balances(ctx.conn, event.business_date, DEPOSIT_CODE, new_close=event.attempt == 1)
    await ctx.emit(c.CobStepReported(business_date=event.business_date, step=DAY_END_STEP, status=day.StepStatus.done,
                                     result={"accounts": accounts}, occurred_at=ctx.now))  # fmt: skip


async def get_day_end_balances(ctx: Context, cmd: c.GetDayEndBalances) -> Reply:
    rows = await store.day_end_balances(ctx.conn, cmd.business_date, cmd.after, cmd.limit)
    if rows is None:
        return Reply.refusal(c.LedgerError.day_end_not_taken, f"no day-end balances kept for {cmd.business_date}")
    items = [c.DayEndBalance(account_id=r["account_id"], balance=r["balance"]) for r in rows]
    next_after = items[-1].account_id if len(items) == cmd.limit else None
    return Reply.success(c.DayEndBalances(business_date=cmd.business_date, items=items, next_after=next_after))


async def get_statements(ctx: Context, cmd: c.GetStatements) -> Reply:
    until = await store.books_cut(ctx.conn, cmd.month_end)
    if until is None:
        return Reply.refusal(c.LedgerError.books_not_closed, f"no books taken for a business date up to {cmd.month_end}")
    since = await store.books_cut(ctx.conn, cmd.month_end.replace(day=1) - timedelta(days=1))
    rows = await store.statements(ctx.conn, list(dict.fromkeys(cmd.account_ids)), since, until)
    items = [c.StatementTotals(account_id=r["account_id"], opening=r["opening"], credits=int(r["credits"]),
                               debits=int(r["debits"]), closing=r["closing"], transfers=r["transfers"],
                               balanced=r["opening"] + int(r["credits"]) - int(r["debits"]) == r["closing"])
             for r in rows]  # fmt: skip
    return Reply.success(c.Statements(month_end=cmd.month_end, period_from=since, period_until=until, items=items))


async def get_journal(ctx: Context, cmd: c.GetJournal) -> Reply:
    since, until = await store.books_cut_of(ctx.conn, cmd.business_date)
    if until is None:
        return Reply.refusal(c.LedgerError.books_not_closed, f"no books taken for {cmd.business_date}: not closed")
    rows = await store.journal(ctx.conn, since, until, cmd.after or 0, cmd.limit)
    lines = [c.JournalLine.model_validate(dict(r)) for r in rows]
    return Reply.success(c.Journal(business_date=cmd.business_date, period_from=since, period_until=until, lines=lines,
                                   next_after=lines[-1].seq if len(lines) == cmd.limit else None))  # fmt: skip


async def _keep_trial_balance(ctx: Context, event: day.DayClosing) -> None:
    """The trial balance: kept for the date by general-ledger account (`ledger.get_trial_balance`
    reads it back), and debits = credits in every currency, or the step fails with the currencies
    that differ (and the day does not close). Asked again for the same date, it takes the totals
    again: idempotent per (date, step)."""
    kept = [_code_totals(r) for r in await store.keep_trial_balance(ctx.conn, event.business_date)]
    per_currency: dict[str, list[books.CodeTotals]] = {}
    for t in kept:
        per_currency.setdefault(t.currency, []).append(t)
    lines = [day.TrialBalanceLine(currency=cur, debits_posted=sum(t.debits_posted for t in ts),
                                  credits_posted=sum(t.credits_posted for t in ts), accounts=sum(t.accounts for t in ts))
             for cur, ts in sorted(per_currency.items())]  # fmt: skip
    unbalanced = [line.currency for line in lines if not line.balanced]
    await ctx.emit(c.CobStepReported(
        business_date=event.business_date, step=TRIAL_BALANCE_STEP,
        status=day.StepStatus.failed if unbalanced else day.StepStatus.done,
        error=f"posted debits and credits differ in {', '.join(unbalanced)}" if unbalanced else None,
        result={"trial_balance": [line.model_dump(mode="json") for line in lines]}, occurred_at=ctx.now,
    ))  # fmt: skip


def _code_totals(r: Any) -> books.CodeTotals:
    return books.CodeTotals(currency=r["currency"].strip(), code=r["code"], accounts=r["accounts"],
                            debits_posted=int(r["debits_posted"]), credits_posted=int(r["credits_posted"]))  # fmt: skip


async def get_trial_balance(ctx: Context, cmd: c.GetTrialBalance) -> Reply:
    kept = [_code_totals(r) for r in await store.kept_trial_balance(ctx.conn, cmd.business_date)]
    if not kept:
        return Reply.refusal(c.LedgerError.trial_balance_not_found,
                             f"no trial balance was kept for {cmd.business_date}: it is kept when that date closes")  # fmt: skip
    rows = books.trial_balance_rows(kept)
    totals, sheet, income = books.statements(rows)
    return Reply.success(c.TrialBalance(business_date=cmd.business_date, rows=rows, totals=totals,
                                        balance_sheet=sheet, income_statement=income))  # fmt: skip


async def ensure_bank_accounts(ctx: Context) -> None:
    """At start: the bank's own accounts in every currency of CBS_CURRENCIES (INR is made by the
    migration; the others on first start)."""
    for currency in CURRENCIES:
        await store.ensure_bank_accounts(ctx.conn, currency)


async def _load_and_lock(
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


async def _write(
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


def _result(o: Outcome) -> c.TransferResult:
    stored = o.transfer or o.existing
    return c.TransferResult(
        index=o.index,
        id=o.id,
        result=str(o.result),
        amount=stored.amount if stored else None,
        timestamp=stored.timestamp if stored else None,
    )


def _committed(ledger: Ledger, applied: list[tuple[Outcome, str | None]], now: datetime) -> list[c.TransfersCommitted]:
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


async def _emit_many(conn: asyncpg.Connection, events: list[tuple[Any, str | None, str | None]]) -> None:
    await outbox.add_many(conn, events)


# --- accounts --------------------------------------------------------------------------------


async def create_accounts(ctx: Context, cmd: c.CreateAccounts) -> Reply:
    ids = sorted({a.id for a in cmd.accounts})
    await store.lock_ids_for_creation(ctx.conn, ids)
    existing = await store.lock_accounts(ctx.conn, ids)
    known = set(existing)
    results = accounts.create_accounts(existing, cmd.accounts)
    new = [(existing[a.id], a) for a, code in results if code == "ok"]
    await store.insert_accounts(ctx.conn, new)
    for state, _ in new:
        assert state.id not in known
        await ctx.emit(c.AccountCreated(id=state.id, currency=state.currency, code=state.code, owner_id=state.owner_id,
                                        flags=state.flags, overdraft_limit=state.overdraft_limit, occurred_at=ctx.now))  # fmt: skip
    out = [c.AccountResult(index=i, id=a.id, result=str(code)) for i, (a, code) in enumerate(results)]
    return Reply.success(c.CreateAccountsResult(results=out))


async def set_account_flags(ctx: Context, cmd: c.SetAccountFlags) -> Reply:
    if cmd.payout_account_id is not None or cmd.settle:
        return await _close_settled(ctx, cmd, cmd.payout_account_id)
    account = (await store.lock_accounts(ctx.conn, [cmd.account_id])).get(cmd.account_id)
    if account is None:
        return Reply.refusal(c.LedgerError.account_not_found, f"no ledger account {cmd.account_id}")
    if refusal := accounts.set_flags(account, cmd.action):
        return Reply.refusal(refusal, f"cannot {cmd.action} ledger account {cmd.account_id}: {refusal}")
    await store.save_flags(ctx.conn, account)
    return await _flags_changed(ctx, cmd, account)


async def set_overdraft_limit(ctx: Context, cmd: c.SetOverdraftLimit) -> Reply:
    account = (await store.lock_accounts(ctx.conn, [cmd.account_id])).get(cmd.account_id)
    if account is None:
        return Reply.refusal(c.LedgerError.account_not_found, f"no ledger account {cmd.account_id}")
    previous = account.overdraft_limit
    if refusal := accounts.set_overdraft_limit(account, cmd.overdraft_limit):
        return Reply.refusal(refusal, f"cannot set the overdraft limit of {cmd.account_id} to {cmd.overdraft_limit}: {refusal}")
    await store.save_overdraft_limit(ctx.conn, account)
    await ctx.emit(c.OverdraftLimitChanged(account_id=account.id, owner_id=account.owner_id, overdraft_limit=account.overdraft_limit,
                                           previous_limit=previous, actor=cmd.actor, reason=cmd.reason, occurred_at=ctx.now))  # fmt: skip
    [(state, created_at)] = await store.read_accounts(ctx.conn, [account.id])
    return Reply.success(accounts.account_view(state, created_at))


async def _close_settled(ctx: Context, cmd: c.SetAccountFlags, payout_id: UUID | None) -> Reply:
    """Settle what the closing owes and is owed (`cmd.settle`), pay the whole balance out below the
    account's minimum balance down to zero, and close it: one chain and the close, in this one
    transaction (banking-rules §2, closure). Refused, nothing of it is written."""
    transfer_id = c.closure_transfer_id(cmd.account_id)
    sides = {side for t in cmd.settle for side in (t.debit_account_id, t.credit_account_id) if side is not None}
    ledger, now = await _load_and_lock(ctx.conn, [transfer_id, *(t.id for t in cmd.settle)], [],
                                       {cmd.account_id, *sides, *([payout_id] if payout_id else [])})  # fmt: skip
    account = ledger.accounts.get(cmd.account_id)
    if account is None:
        return Reply.refusal(c.LedgerError.account_not_found, f"no ledger account {cmd.account_id}")
    payout = ledger.accounts.get(payout_id) if payout_id else None
    if payout_id is not None and payout is None:
        return Reply.refusal(c.LedgerError.payout_account_not_found, f"no ledger account {payout_id} to pay out to")
    if refusal := accounts.closure_refusal(account, paying_out=payout is not None):
        return Reply.refusal(refusal, f"cannot close ledger account {cmd.account_id}: {refusal}")
    chain = [t.model_copy(update={"flags": t.flags.model_copy(update={"linked": i < len(cmd.settle) - 1})})
             for i, t in enumerate(cmd.settle)]  # fmt: skip
    with accounts.floor_lifted(account):  # the minimum balance goes with the account: charges may take it too
        outcomes = transfers.create_transfers(ledger, chain, now) if chain else []
    settled = [c.TransferResult(index=i, id=o.id, result=str(o.result),
                                amount=(o.transfer or o.existing).amount if (o.transfer or o.existing) else None)
               for i, o in enumerate(outcomes)]  # fmt: skip
    if refused := next((o for o in outcomes if o.result not in _IN_THE_LEDGER), None):
        code = str(refused.result)
        return Reply.refusal(c.LedgerError.settlement_refused, f"settling the closing was refused: {code}",
                             {"result": code})  # fmt: skip
    if payout is not None and (owed := accounts.balance(account)) > 0:
        payout_transfer = c.NewTransfer(id=transfer_id, debit_account_id=account.id, credit_account_id=payout.id,
                                        amount=owed, currency=account.currency, code="account_closure",
                                        reference=f"closure {account.id}", narration="Account closed: balance paid out")  # fmt: skip
        with accounts.floor_lifted(account):  # the minimum balance goes with the account
            paid = transfers.create_transfers(ledger, [payout_transfer], now)
        if paid[0].result != c.TransferResultCode.ok:
            code = str(paid[0].result)
            return Reply.refusal(c.LedgerError.payout_refused, f"the payout to {payout.id} was refused: {code}",
                                 {"result": code})  # fmt: skip
        outcomes += paid
    if refusal := accounts.set_flags(account, "close"):
        return Reply.refusal(refusal, f"cannot close ledger account {cmd.account_id}: {refusal}")
    await _write(ctx.conn, ledger, outcomes, [], now)
    await store.save_flags(ctx.conn, account)
    facts = _committed(ledger, [(o, ctx.message_id) for o in outcomes], ctx.now)
    await _emit_many(ctx.conn, [(e, ctx.correlation_id, ctx.message_id) for e in facts])
    return await _flags_changed(ctx, cmd, account, settled=settled if cmd.settle else None)


_IN_THE_LEDGER = (c.TransferResultCode.ok, c.TransferResultCode.exists)


async def _flags_changed(ctx: Context, cmd: c.SetAccountFlags, account: AccountState,
                         settled: list[c.TransferResult] | None = None) -> Reply:  # fmt: skip
    """Say the flags changed (with the balances they changed at) and answer the account as stored."""
    await ctx.emit(c.AccountFlagsChanged(
        account_id=account.id, owner_id=account.owner_id, frozen=account.frozen, closed=account.closed,
        actor=cmd.actor, reason=cmd.reason, balances=accounts.balances_after(account), occurred_at=ctx.now,
    ))  # fmt: skip
    [(state, created_at)] = await store.read_accounts(ctx.conn, [account.id])
    return Reply.success(accounts.account_view(state, created_at).model_copy(update={"settled": settled}))


# --- reads -----------------------------------------------------------------------------------


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
