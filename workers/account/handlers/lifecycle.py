"""The account's lifecycle: freeze, unfreeze and close, the ledger first (a closing settles the
account's interest and charges and pays the balance out, in one chain), and a customer who leaves
the bank (their accounts closed one after another)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

from bus.handling import Context, Deferred
from contracts import account as c
from contracts import ledger
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain
from workers.account.domain import charges, interest
from workers.account.domain.accounts import Refusal
from workers.account.handlers.accounts import LEDGER_REFUSALS, fact, not_found, refuse

STEP_SET_LEDGER_FLAGS = "set_ledger_flags"


async def freeze_account(ctx: Context, cmd: c.FreezeAccount) -> Reply | Deferred:
    return await _ask_ledger_first(ctx, cmd, domain.freeze_check, "freeze")


async def unfreeze_account(ctx: Context, cmd: c.UnfreezeAccount) -> Reply | Deferred:
    return await _ask_ledger_first(ctx, cmd, domain.unfreeze_check, "unfreeze")


async def close_account(ctx: Context, cmd: c.CloseAccount) -> Reply | Deferred:
    # The balance and holds are the ledger's to judge: it settles the interest and charges, pays
    # the balance out (when told where) and refuses with holds open or money left unpaid.
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    if refusal := domain.close_check(account):
        return refuse(refusal)
    payout: UUID | None = None
    if cmd.payout_in_cash or cmd.payout_account_id is not None:
        target = None if cmd.payout_account_id is None else await store.get_account(ctx.conn, cmd.payout_account_id)
        if refusal := domain.payout_refusal(account, target, in_cash=cmd.payout_in_cash):
            return refuse(refusal)
        payout = target.ledger_account_id if target else ledger.bank_account_id("cash_vault", account.currency)
    closing = await _closing_request(ctx, account, payout, cmd.actor, cmd.reason)
    if isinstance(closing, Reply):
        return closing
    flags, state = closing
    return await ctx.request(flags, step=STEP_SET_LEDGER_FLAGS, state=state)


async def _closing_request(ctx: Context, account: c.AccountView, payout: UUID | None, actor: str,
                           reason: str) -> tuple[ledger.SetAccountFlags, dict[str, Any]] | Reply:  # fmt: skip
    """The ledger's closing chain for the account: its interest credited, then its charges taken
    (they may take that interest too), then the payout; the periods and charges it settles are
    marked as being asked, so no close of business asks them too."""
    owed = await _interest_owed(ctx, account)
    if isinstance(owed, Reply):
        return owed
    fees = await _charges_owed(ctx, account)
    if isinstance(fees, Reply):
        return fees
    settle = [_closing_interest(account, end, amount) for end, amount in owed if amount] + [debit for _, debit in fees]
    if owed:
        await store.closing_interest_asked(ctx.conn, account.account_id, [end for end, _ in owed])
    if fees:
        await store.closing_charges_asked(ctx.conn, account.account_id, [(k, m, d.id) for (k, m), d in fees])
    flags = ledger.SetAccountFlags(account_id=account.ledger_account_id, action="close", actor=actor, reason=reason,
                                   payout_account_id=payout, settle=settle)  # fmt: skip
    state = {"account_id": str(account.account_id), "action": "close", "actor": actor, "reason": reason,
             "interest": [[end.isoformat(), amount] for end, amount in owed], "charges": [str(d.id) for _, d in fees]}  # fmt: skip
    return flags, state


async def _closing_refused(ctx: Context, account: c.AccountView, state: dict[str, Any]) -> None:
    """The ledger refused the closing chain: nothing moved; the periods and charges wait again."""
    if state.get("interest"):
        await _closing_interest_answered(ctx, account, state["interest"], posted=False)
    for transfer_id in state.get("charges", []):
        await store.closing_charge_answered(ctx.conn, UUID(transfer_id), None, None)


async def _closing_done(ctx: Context, account: c.AccountView, state: dict[str, Any], reply: Reply) -> c.AccountView | Refusal:
    """The ledger ran the closing chain: the account closes and records what the chain settled."""
    change = domain.close(account.status, balance=0)
    if isinstance(change, Refusal):
        return change  # the account moved on meanwhile (a concurrent change won)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    if state.get("interest"):
        await _closing_interest_answered(ctx, account, state["interest"], posted=True)
    if state.get("charges"):
        taken = {r["id"]: r.get("amount") for r in (reply.result or {}).get("settled") or []}
        today = await store.business_date(ctx.conn)
        for transfer_id in state["charges"]:
            row = await store.closing_charge_answered(ctx.conn, UUID(transfer_id), taken.get(transfer_id) or 0, today)
            if row is not None and row["collected"]:
                await ctx.emit(c.FeeCharged(account_id=account.account_id, customer_id=account.customer_id,
                                            kind=c.ChargeKind(row["kind"]), fee=row["fee"], collected=row["collected"],
                                            currency=account.currency, month_end=row["month_end"], business_date=today,
                                            transfer_id=UUID(transfer_id), occurred_at=ctx.now))  # fmt: skip
    await ctx.emit(c.AccountClosed(**fact(account, ctx.now), actor=state["actor"], reason=state["reason"]))
    return account


async def _charges_owed(ctx: Context, account: c.AccountView) -> list[tuple[tuple[str, date], ledger.NewTransfer]] | Reply:
    """Each fee a close of business could not take (a frozen account's): the closing takes it, as a
    balancing debit, from whatever the account holds (the floor goes with the account)."""
    unsettled = await store.unsettled_charges(ctx.conn, account.account_id)
    if any(r["status"] == c.ChargeStatus.posting for r in unsettled):
        return Reply.refusal(c.AccountError.close_refused_pending_transfers,
                             "close of business is taking this account's charges: close it once the day has closed")  # fmt: skip
    return [((r["kind"], r["month_end"]), charges.charge_transfer(
        charges.closure_charge_transfer_id(account.account_id, c.ChargeKind(r["kind"]), r["month_end"]),
        account.ledger_account_id, account.currency, c.ChargeKind(r["kind"]), r["month_end"], r["fee"],
    )) for r in unsettled]  # fmt: skip


async def _interest_owed(ctx: Context, account: c.AccountView) -> list[tuple[date, int]] | Reply:
    """Each unposted period's interest, accrued to the last close and rounded once: a closing
    posts it in the ledger's closing chain, before the payout (banking-rules §2, closure)."""
    periods = await store.unposted_interest(ctx.conn, account.account_id)
    if any(p["status"] == c.InterestStatus.posting for p in periods):
        return Reply.refusal(c.AccountError.close_refused_pending_transfers,
                             "this account's interest is being posted (by close of business, or a closing "
                             "asked already): close it once that is done")  # fmt: skip
    return [(p["period_end"], interest.interest_minor(int(p["balance_bps_days"]))) for p in periods]


def _closing_interest(account: c.AccountView, period_end: date, amount: int) -> ledger.NewTransfer:
    return ledger.NewTransfer(
        id=interest.closure_interest_transfer_id(account.account_id, period_end),
        debit_account_id=ledger.bank_account_id("interest_expense", account.currency),
        credit_account_id=account.ledger_account_id, amount=amount, currency=account.currency, code="interest",
        reference=interest.reference(period_end), narration=f"Interest to closing (period to {period_end.isoformat()})",
    )  # fmt: skip


async def _ask_ledger_first(
    ctx: Context, cmd: c.FreezeAccount | c.UnfreezeAccount, check: Callable[[c.AccountView], Refusal | None], action: str,
) -> Reply | Deferred:
    """A freeze must hold in the ledger before the account says it is frozen: the ledger first."""
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    if refusal := check(account):
        return refuse(refusal)
    flags = ledger.SetAccountFlags(account_id=account.ledger_account_id, action=action, actor=cmd.actor, reason=cmd.reason)
    state = {"account_id": str(account.account_id), "action": action, "actor": cmd.actor, "reason": cmd.reason}
    return await ctx.request(flags, step=STEP_SET_LEDGER_FLAGS, state=state)


async def ledger_flags_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The ledger applied (or refused) the flag or the closing chain: now the account follows, and says so."""
    account = await store.get_account(ctx.conn, UUID(state["account_id"]), for_update=True)
    assert account is not None, "accounts are never deleted"
    action, actor, reason = state["action"], state["actor"], state["reason"]
    if not reply.ok:
        assert reply.error is not None
        if action == "close":
            await _closing_refused(ctx, account, state)
        return Reply.refusal(LEDGER_REFUSALS.get(reply.error.code, reply.error.code), reply.error.message, reply.error.details)
    if action == "close":
        closed = await _closing_done(ctx, account, state, reply)
        return refuse(closed) if isinstance(closed, Refusal) else Reply.success(closed)
    change = domain.freeze(account.status) if action == "freeze" else domain.unfreeze(account.status, account.status_before_freeze)
    if isinstance(change, Refusal):
        return refuse(change)  # the account moved on meanwhile (a concurrent change won)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    if action == "freeze":
        assert account.status_before_freeze is not None
        event: Any = c.AccountFrozen(**fact(account, ctx.now), status_before_freeze=account.status_before_freeze,
                                     actor=actor, reason=reason)  # fmt: skip
    else:
        event = c.AccountUnfrozen(**fact(account, ctx.now), actor=actor, reason=reason)
    await ctx.emit(event)
    return Reply.success(account)


async def _closing_interest_answered(ctx: Context, account: c.AccountView, owed: list[list[Any]], *, posted: bool) -> None:
    """The closing chain credited each period's interest (a period rounding to zero posts nothing),
    or, refused, credited none: the periods accrue on."""
    periods = [(date.fromisoformat(end), amount) for end, amount in owed]
    ids = [interest.closure_interest_transfer_id(account.account_id, end) if amount else None for end, amount in periods]
    await store.closing_interest_answered(ctx.conn, account.account_id,
                                          [(end, amount, i) for (end, amount), i in zip(periods, ids, strict=True)],
                                          posted=posted)  # fmt: skip
    for (end, amount), transfer_id in zip(periods, ids, strict=True):
        if posted and transfer_id is not None:
            await ctx.emit(c.InterestPosted(account_id=account.account_id, customer_id=account.customer_id, amount=amount,
                                            currency=account.currency, period_end=end, business_date=None,
                                            transfer_id=transfer_id, occurred_at=ctx.now))  # fmt: skip


# --- a customer who leaves the bank ----------------------------------------------------------------

STEP_LEAVING_CLOSE = "leaving_close"


async def close_customer_accounts(ctx: Context, cmd: c.CloseCustomerAccounts) -> Reply | Deferred:
    """Every savings and current account of the customer, closed one after another with a cash payout."""
    accounts = await store.open_accounts_of(ctx.conn, cmd.customer_id)
    for account in accounts:
        if account.type in domain.TERM_DEPOSITS:
            return Reply.refusal(c.AccountError.invalid_transition,
                                 f"deposit {account.account_id} still runs: close it early first", {"account_id": str(account.account_id)})  # fmt: skip
        if refusal := domain.close_check(account):
            return Reply.refusal(refusal.code, f"account {account.account_id}: {refusal.message}",
                                 {"account_id": str(account.account_id)})  # fmt: skip
    return await _close_next(ctx, {"customer_id": str(cmd.customer_id), "actor": cmd.actor, "reason": cmd.reason, "closed": []})


async def _close_next(ctx: Context, leaving: dict[str, Any]) -> Reply | Deferred:
    customer_id = UUID(leaving["customer_id"])
    remaining = await store.open_accounts_of(ctx.conn, customer_id)
    if not remaining:
        return Reply.success(c.CustomerAccountsClosed(customer_id=customer_id, closed=leaving["closed"]))
    account = remaining[0]
    cash = ledger.bank_account_id("cash_vault", account.currency)
    closing = await _closing_request(ctx, account, cash, leaving["actor"], leaving["reason"])
    if isinstance(closing, Reply):
        return _stopped(closing, leaving, account.account_id)
    flags, state = closing
    return await ctx.request(flags, step=STEP_LEAVING_CLOSE, key=str(account.account_id), state={**state, "leaving": leaving})


def _stopped(refusal: Reply, leaving: dict[str, Any], account_id: UUID) -> Reply:
    assert refusal.error is not None
    return Reply.refusal(LEDGER_REFUSALS.get(refusal.error.code, refusal.error.code),
                         f"account {account_id} could not close: {refusal.error.message}",
                         {"account_id": str(account_id), "closed": leaving["closed"]})  # fmt: skip


async def leaving_close_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """One account of the leaving customer closed (or not): the next, or the answer."""
    account = await store.get_account(ctx.conn, UUID(state["account_id"]), for_update=True)
    assert account is not None
    leaving = state["leaving"]
    if not reply.ok:
        await _closing_refused(ctx, account, state)
        return _stopped(reply, leaving, account.account_id)
    closed = await _closing_done(ctx, account, state, reply)
    if isinstance(closed, Refusal):
        return _stopped(refuse(closed), leaving, account.account_id)
    return await _close_next(ctx, {**leaving, "closed": [*leaving["closed"], str(account.account_id)]})
