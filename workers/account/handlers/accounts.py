"""Accounts: opening, reads, the overdraft and product migration (the ledger's floor first), and
what the customer worker tells: load, decide (domain), store, reply. `refuse`, `not_found`,
`owned_account`, `fact` and `LEDGER_REFUSALS` serve the other handler modules too."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from bus.actor import owner_only
from bus.handling import Context, Deferred
from bus.paging import cursor_or_refusal, decode_time_id, page_of
from contracts import account as c
from contracts import customer as customer_events
from contracts import ledger
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain
from workers.account.domain.accounts import Refusal

STEP_CREATE_LEDGER_ACCOUNT = "create_ledger_account"
STEP_SET_OVERDRAFT = "set_ledger_overdraft"


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message)


def not_found(account_id: UUID) -> Reply:
    return Reply.refusal(c.AccountError.account_not_found, f"no account {account_id}")


async def open_account(ctx: Context, cmd: c.OpenAccount) -> Reply | Deferred:
    existing = await store.get_account(ctx.conn, cmd.account_id)
    if existing is not None:
        # The same id asking for the same account is a retry; anything else is a clash.
        if (existing.customer_id, existing.product_code) == (cmd.customer_id, cmd.product_code):
            return Reply.success(existing)
        return Reply.refusal(c.AccountError.account_exists, f"account {cmd.account_id} exists with other fields")
    decision = domain.decide_opening(await store.customer_standing(ctx.conn, cmd.customer_id), cmd.product_code,
                                     await store.product(ctx.conn, cmd.product_code))  # fmt: skip
    if isinstance(decision, Refusal):
        return refuse(decision)
    product = decision
    sequence = await store.next_sequence(ctx.conn, cmd.branch)
    account = c.AccountView(
        account_id=cmd.account_id,
        number=domain.account_number(product.type, cmd.branch, sequence),
        customer_id=cmd.customer_id,
        product_code=product.code,
        product_version=product.version,
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
        title=account.number,  # how the other side of a transfer sees this account on its statement
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
        product = await store.product(ctx.conn, account.product_code, account.product_version)
        assert product is not None, "an account's product version is never deleted"
        await ctx.emit(
            c.AccountOpened(
                **fact(account, ctx.now), type=account.type, product_version=account.product_version, branch=account.branch,
                ledger_account_id=account.ledger_account_id, **c.product_limits(product),
            )
        )  # fmt: skip
        return Reply.success(account)
    await store.change_status(ctx.conn, account.account_id, domain.ledger_account_refused(account.status), ctx.now)
    details = {"ledger_result": result, "ledger_error": reply.error.model_dump() if reply.error else None}
    return Reply.refusal(c.AccountError.ledger_refused, "the ledger would not create the account", details)


async def owned_account(ctx: Context, account_id: UUID) -> c.AccountView | Reply:
    """The account, when it exists and the asker may see it (a customer, only their own); else the refusal."""
    account = await store.get_account(ctx.conn, account_id)
    if account is None:
        return not_found(account_id)
    return owner_only(ctx.actor, account.customer_id) or account


async def get_account(ctx: Context, cmd: c.GetAccount) -> Reply:
    account = await owned_account(ctx, cmd.account_id)
    return account if isinstance(account, Reply) else Reply.success(account)


async def list_customer_accounts(ctx: Context, cmd: c.ListCustomerAccounts) -> Reply:
    after, refusal = cursor_or_refusal(cmd.cursor, decode_time_id)
    if refusal:
        return refusal
    accounts = await store.customer_accounts(ctx.conn, cmd.customer_id, after=after, limit=cmd.limit + 1)
    page, next_cursor = page_of(accounts, cmd.limit, lambda a: (a.opened_at.isoformat(), a.account_id))
    return Reply.success(c.AccountPage(items=page, next_cursor=next_cursor))


async def set_overdraft(ctx: Context, cmd: c.SetOverdraft) -> Reply | Deferred:
    """Within the product version's ceiling; the ledger first (it holds the limit every debit meets)."""
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    if account.status == c.AccountStatus.closed:
        return Reply.refusal(c.AccountError.account_closed, "the account is closed")
    product = await store.product(ctx.conn, account.product_code, account.product_version)
    assert product is not None, "an account's product version is never deleted"
    if refusal := domain.overdraft_refusal(product, cmd.overdraft_limit):
        return refuse(refusal)
    limit = ledger.SetOverdraftLimit(
        account_id=account.ledger_account_id, actor=cmd.actor, reason=cmd.reason,
        overdraft_limit=domain.ledger_overdraft_limit(product.minimum_balance, cmd.overdraft_limit),
    )  # fmt: skip
    state = {"account_id": str(account.account_id), "overdraft": cmd.overdraft_limit, "actor": cmd.actor, "reason": cmd.reason}
    return await ctx.request(limit, step=STEP_SET_OVERDRAFT, state=state)


async def migrate_product(ctx: Context, cmd: c.MigrateProduct) -> Reply | Deferred:
    """To another version of the account's product; the ledger's floor first (the version's
    minimum balance less the account's overdraft)."""
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    to = await store.product(ctx.conn, account.product_code, cmd.to_version)
    if refusal := domain.migration_refusal(account, to):
        return refuse(refusal)
    assert to is not None
    limit = ledger.SetOverdraftLimit(
        account_id=account.ledger_account_id, actor=cmd.actor, reason=cmd.reason,
        overdraft_limit=domain.ledger_overdraft_limit(to.minimum_balance, account.overdraft_limit),
    )  # fmt: skip
    state = {"account_id": str(account.account_id), "overdraft": account.overdraft_limit, "actor": cmd.actor,
             "reason": cmd.reason, "from_version": account.product_version, "to_version": to.version}  # fmt: skip
    return await ctx.request(limit, step=STEP_SET_OVERDRAFT, state=state)


async def ledger_overdraft_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The ledger moved the floor: the account's overdraft (set_overdraft) or product version
    (migrate_product) follows."""
    account_id = UUID(state["account_id"])
    if not reply.ok:
        assert reply.error is not None
        return Reply.refusal(LEDGER_REFUSALS.get(reply.error.code, reply.error.code), reply.error.message, reply.error.details)
    if "to_version" in state:
        account = await store.migrate_product(ctx.conn, account_id, state["to_version"])
        product = await store.product(ctx.conn, account.product_code, account.product_version)
        assert product is not None, "a product version is never deleted"
        await ctx.emit(c.ProductMigrated(**fact(account, ctx.now), from_version=state["from_version"],
                                         to_version=state["to_version"], actor=state["actor"], reason=state["reason"],
                                         **c.product_limits(product)))  # fmt: skip
        return Reply.success(account)
    account = await store.set_overdraft(ctx.conn, account_id, state["overdraft"])
    await ctx.emit(c.OverdraftChanged(**fact(account, ctx.now), overdraft_limit=account.overdraft_limit,
                                      actor=state["actor"], reason=state["reason"]))  # fmt: skip
    return Reply.success(account)


# The ledger's refusal codes, in the account's words.
LEDGER_REFUSALS = {
    "account_not_found": c.AccountError.ledger_refused,
    "account_already_closed": c.AccountError.account_closed,
    "payout_account_not_found": c.AccountError.invalid_payout_account,
    "payout_refused": c.AccountError.payout_refused,
    "settlement_refused": c.AccountError.payout_refused,
    "overdraft_in_use": c.AccountError.overdraft_in_use,
}


def fact(account: c.AccountView, now: datetime) -> dict[str, object]:
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
