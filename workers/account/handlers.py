"""The account worker's recipes: load, decide (domain), store, reply."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from bus.paging import cursor_or_refusal, decode_time_id, page_of
from bus.actor import owner_only
from bus.handling import Context, Deferred
from contracts import account as c
from contracts import customer as customer_events
from contracts import ledger
from contracts.common import Reply
from workers.account import domain, store
from workers.account.domain import Refusal

CATALOGUE = domain.product_catalogue()
STEP_CREATE_LEDGER_ACCOUNT = "create_ledger_account"
STEP_SET_LEDGER_FLAGS = "set_ledger_flags"


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message)


def not_found(account_id: UUID) -> Reply:
    return Reply.refusal(c.AccountError.account_not_found, f"no account {account_id}")


async def list_products(ctx: Context, cmd: c.ListProducts) -> Reply:
    return Reply.success(c.ProductList(items=[p.view() for p in CATALOGUE.values()]))


async def open_account(ctx: Context, cmd: c.OpenAccount) -> Reply | Deferred:
    existing = await store.get_account(ctx.conn, cmd.account_id)
    if existing is not None:
        # The same id asking for the same account is a retry; anything else is a clash.
        if (existing.customer_id, existing.product_code) == (cmd.customer_id, cmd.product_code):
            return Reply.success(existing)
        return Reply.refusal(c.AccountError.account_exists, f"account {cmd.account_id} exists with other fields")
    decision = domain.decide_opening(await store.customer_standing(ctx.conn, cmd.customer_id), cmd.product_code, CATALOGUE)
    if isinstance(decision, Refusal):
        return refuse(decision)
    product = decision
    sequence = await store.next_sequence(ctx.conn, cmd.branch)
    account = c.AccountView(
        account_id=cmd.account_id,
        number=domain.account_number(product.type, cmd.branch, sequence),
        customer_id=cmd.customer_id,
        product_code=product.code,
        type=product.type,
        currency=product.currency,
        status=domain.opening_status(product.type),
        # The ledger account shares the account's id.
        ledger_account_id=cmd.account_id,
        branch=cmd.branch,
        nickname=cmd.nickname,
        opened_at=ctx.now,
        version=1,
    )
    await store.insert_account(ctx.conn, account)
    spec = domain.ledger_account_spec(product)
    new_ledger_account = ledger.NewAccount(
        id=account.ledger_account_id,
        currency=spec.currency,
        code=spec.code,
        flags=ledger.AccountFlags(**{flag: True for flag in spec.flags}),
        overdraft_limit=spec.overdraft_limit,
        owner_id=account.customer_id,
    )
    return await ctx.request(
        ledger.CreateAccounts(accounts=[new_ledger_account]),
        step=STEP_CREATE_LEDGER_ACCOUNT,
        state={"account_id": str(account.account_id)},
    )


async def ledger_account_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The ledger answered `create_accounts`: the account becomes active, or is closed unused."""
    account = await store.get_account(ctx.conn, UUID(state["account_id"]), for_update=True)
    assert account is not None, "an opening account is never deleted"
    result = (reply.result or {}).get("results", [{}])[0].get("result") if reply.ok else None
    if result in ("ok", "exists"):
        change = domain.ledger_account_created(account.status)
        if isinstance(change, Refusal):
            return Reply.success(account)  # a repeated answer after the account moved on
        account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
        product = CATALOGUE[account.product_code]
        await ctx.emit(
            c.AccountOpened(
                **_fact(account, ctx.now), type=account.type, branch=account.branch,
                ledger_account_id=account.ledger_account_id,
                daily_cash_withdrawal_limit=product.daily_cash_withdrawal_limit,
                daily_payments_out_limit=product.daily_payments_out_limit,
                monthly_debit_limit=product.monthly_debit_limit,
            )
        )  # fmt: skip
        return Reply.success(account)
    await store.change_status(ctx.conn, account.account_id, domain.ledger_account_refused(account.status), ctx.now)
    details = {"ledger_result": result, "ledger_error": reply.error.model_dump() if reply.error else None}
    return Reply.refusal(c.AccountError.ledger_refused, "the ledger would not create the account", details)


async def get_account(ctx: Context, cmd: c.GetAccount) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id)
    if account is None:
        return not_found(cmd.account_id)
    return owner_only(ctx.actor, account.customer_id) or Reply.success(account)


async def list_customer_accounts(ctx: Context, cmd: c.ListCustomerAccounts) -> Reply:
    after, refusal = cursor_or_refusal(cmd.cursor, decode_time_id)
    if refusal:
        return refusal
    accounts = await store.customer_accounts(ctx.conn, cmd.customer_id, after=after, limit=cmd.limit + 1)
    page, next_cursor = page_of(accounts, cmd.limit, lambda a: (a.opened_at.isoformat(), a.account_id))
    return Reply.success(c.AccountPage(items=page, next_cursor=next_cursor))


async def freeze_account(ctx: Context, cmd: c.FreezeAccount) -> Reply | Deferred:
    return await _ask_ledger_first(ctx, cmd, domain.freeze_check, "freeze")


async def unfreeze_account(ctx: Context, cmd: c.UnfreezeAccount) -> Reply | Deferred:
    return await _ask_ledger_first(ctx, cmd, domain.unfreeze_check, "unfreeze")


async def close_account(ctx: Context, cmd: c.CloseAccount) -> Reply | Deferred:
    # The balance and holds are the ledger's to judge: it pays the balance out (when told where)
    # and refuses with holds open or money left unpaid.
    payout: UUID | None = None
    if cmd.payout_in_cash or cmd.payout_account_id is not None:
        account = await store.get_account(ctx.conn, cmd.account_id)
        if account is None:
            return not_found(cmd.account_id)
        target = None if cmd.payout_account_id is None else await store.get_account(ctx.conn, cmd.payout_account_id)
        if refusal := domain.payout_refusal(account, target, in_cash=cmd.payout_in_cash):
            return refuse(refusal)
        payout = target.ledger_account_id if target else ledger.bank_account_id("cash_vault", account.currency)
    return await _ask_ledger_first(ctx, cmd, domain.close_check, "close", payout=payout)


LifecycleCommand = c.FreezeAccount | c.UnfreezeAccount | c.CloseAccount


async def _ask_ledger_first(
    ctx: Context, cmd: LifecycleCommand, check: Callable[[c.AccountView], Refusal | None], action: str,
    payout: UUID | None = None,
) -> Reply | Deferred:
    """A freeze must hold in the ledger before the account says it is frozen: the ledger first."""
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    if refusal := check(account):
        return refuse(refusal)
    flags = ledger.SetAccountFlags(account_id=account.ledger_account_id, action=action, actor=cmd.actor, reason=cmd.reason,
                                   payout_account_id=payout)  # fmt: skip
    state = {"account_id": str(account.account_id), "action": action, "actor": cmd.actor, "reason": cmd.reason}
    return await ctx.request(flags, step=STEP_SET_LEDGER_FLAGS, state=state)


async def ledger_flags_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The ledger applied (or refused) the flag: now the account follows, and says so."""
    account = await store.get_account(ctx.conn, UUID(state["account_id"]), for_update=True)
    assert account is not None, "accounts are never deleted"
    if not reply.ok:
        assert reply.error is not None
        return Reply.refusal(LEDGER_REFUSALS.get(reply.error.code, reply.error.code), reply.error.message, reply.error.details)
    action, actor, reason = state["action"], state["actor"], state["reason"]
    decide = {"freeze": lambda a: domain.freeze(a.status), "unfreeze": lambda a: domain.unfreeze(a.status, a.status_before_freeze),
              "close": lambda a: domain.close(a.status, balance=0)}[action]  # fmt: skip
    change = decide(account)
    if isinstance(change, Refusal):
        return refuse(change)  # the account moved on meanwhile (a concurrent change won)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    if action == "freeze":
        assert account.status_before_freeze is not None
        event: Any = c.AccountFrozen(**_fact(account, ctx.now), status_before_freeze=account.status_before_freeze,
                                     actor=actor, reason=reason)  # fmt: skip
    elif action == "unfreeze":
        event = c.AccountUnfrozen(**_fact(account, ctx.now), actor=actor, reason=reason)
    else:
        event = c.AccountClosed(**_fact(account, ctx.now), actor=actor, reason=reason)
    await ctx.emit(event)
    return Reply.success(account)


# The ledger's refusal codes, in the account's words.
LEDGER_REFUSALS = {
    "account_not_found": c.AccountError.ledger_refused,
    "account_already_closed": c.AccountError.account_closed,
    "payout_account_not_found": c.AccountError.invalid_payout_account,
    "payout_refused": c.AccountError.payout_refused,
}


def _fact(account: c.AccountView, now: datetime) -> dict[str, object]:
    return {
        "account_id": account.account_id,
        "customer_id": account.customer_id,
        "number": account.number,
        "product_code": account.product_code,
        "currency": account.currency,
        "status": account.status,
        "occurred_at": now,
    }


# --- what the account worker learns from the customer worker -------------------------------


async def on_customer_registered(ctx: Context, event: customer_events.CustomerRegistered) -> None:
    await store.record_standing(ctx.conn, event.customer_id, event.status, event.kyc_status, event.occurred_at)


async def on_kyc_status_changed(ctx: Context, event: customer_events.CustomerKycStatusChanged) -> None:
    await store.record_standing(ctx.conn, event.customer_id, event.status, event.new_status, event.occurred_at)


async def on_customer_status_changed(
    ctx: Context,
    event: customer_events.CustomerSuspended | customer_events.CustomerReactivated | customer_events.CustomerClosed,
) -> None:
    await store.record_standing(ctx.conn, event.customer_id, event.status, event.kyc_status, event.occurred_at)
