"""The account worker's recipes: load, decide (domain), store, reply."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from bus.paging import decode_cursor, encode_cursor
from bus.runtime import Context
from contracts import account as c
from contracts import customer as customer_events
from contracts.common import ErrorCode, Reply
from workers.account import domain, store
from workers.account.domain import Refusal

CATALOGUE = domain.product_catalogue()


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message)


def not_found(account_id: UUID) -> Reply:
    return Reply.refusal(c.AccountError.account_not_found, f"no account {account_id}")


async def list_products(ctx: Context, cmd: c.ListProducts) -> Reply:
    return Reply.success(c.ProductList(items=[p.view() for p in CATALOGUE.values()]))


async def open_account(ctx: Context, cmd: c.OpenAccount) -> Reply:
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
        # The ledger account shares the account's id (it is created by the ledger worker).
        ledger_account_id=cmd.account_id,
        branch=cmd.branch,
        nickname=cmd.nickname,
        opened_at=ctx.now,
        version=1,
    )
    await store.insert_account(ctx.conn, account)
    await ctx.emit(
        c.AccountOpened(
            **_fact(account, ctx.now), type=account.type, branch=account.branch, ledger_account_id=account.ledger_account_id
        )
    )
    return Reply.success(account)


async def get_account(ctx: Context, cmd: c.GetAccount) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id)
    return Reply.success(account) if account else not_found(cmd.account_id)


async def list_customer_accounts(ctx: Context, cmd: c.ListCustomerAccounts) -> Reply:
    after = None
    if cmd.cursor is not None:
        values = decode_cursor(cmd.cursor, 2)
        if values is None:
            return Reply.refusal(ErrorCode.invalid_message, "cursor is not one this service issued")
        after = (datetime.fromisoformat(values[0]), UUID(values[1]))
    accounts = await store.customer_accounts(ctx.conn, cmd.customer_id, after=after, limit=cmd.limit + 1)
    page, more = accounts[: cmd.limit], len(accounts) > cmd.limit
    next_cursor = encode_cursor(page[-1].opened_at.isoformat(), page[-1].account_id) if more else None
    return Reply.success(c.AccountPage(items=page, next_cursor=next_cursor))


async def freeze_account(ctx: Context, cmd: c.FreezeAccount) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    change = domain.freeze(account.status)
    if isinstance(change, Refusal):
        return refuse(change)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    assert account.status_before_freeze is not None
    await ctx.emit(
        c.AccountFrozen(
            **_fact(account, ctx.now), status_before_freeze=account.status_before_freeze, actor=cmd.actor, reason=cmd.reason
        )
    )
    return Reply.success(account)


async def unfreeze_account(ctx: Context, cmd: c.UnfreezeAccount) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    change = domain.unfreeze(account.status, account.status_before_freeze)
    if isinstance(change, Refusal):
        return refuse(change)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    await ctx.emit(c.AccountUnfrozen(**_fact(account, ctx.now), actor=cmd.actor, reason=cmd.reason))
    return Reply.success(account)


async def close_account(ctx: Context, cmd: c.CloseAccount) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    # Until the ledger worker exists no money can reach an account, so its balance is zero.
    # TODO(ledger issue): ask the ledger (a saga step) for balance and pending amounts first.
    change = domain.close(account.status, balance=0, pending=0)
    if isinstance(change, Refusal):
        return refuse(change)
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    await ctx.emit(c.AccountClosed(**_fact(account, ctx.now), actor=cmd.actor, reason=cmd.reason))
    return Reply.success(account)


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
