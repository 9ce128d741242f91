"""Ledger accounts: created, frozen or closed (a closing settles and pays out in one transaction),
their overdraft limit; and at start, the bank's own accounts in every currency."""

from __future__ import annotations

import os
from uuid import UUID

from bus.handling import Context
from contracts import ledger as c
from contracts.common import Reply
from workers.ledger import store
from workers.ledger.domain import accounts, transfers
from workers.ledger.domain.accounts import AccountState
from workers.ledger.handlers.commits import committed, emit_many, load_and_lock, write

CURRENCIES = tuple(c.strip() for c in os.environ.get("CBS_CURRENCIES", "INR").split(",") if c.strip())


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
    ledger, now = await load_and_lock(ctx.conn, [transfer_id, *(t.id for t in cmd.settle)], [],
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
    await write(ctx.conn, ledger, outcomes, [], now)
    await store.save_flags(ctx.conn, account)
    facts = committed(ledger, [(o, ctx.message_id) for o in outcomes], ctx.now)
    await emit_many(ctx.conn, [(e, ctx.correlation_id, ctx.message_id) for e in facts])
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


async def ensure_bank_accounts(ctx: Context) -> None:
    """At start: the bank's own accounts in every currency of CBS_CURRENCIES (INR is made by the
    migration; the others on first start)."""
    for currency in CURRENCIES:
        await store.ensure_bank_accounts(ctx.conn, currency)
