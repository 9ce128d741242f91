"""Accounts: opening, reads, the lifecycle (freeze, close with payout) and holds: load, decide (domain), store, reply."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from bus.paging import cursor_or_refusal, decode_time_id, page_of
from bus.actor import owner_only
from bus.handling import Context, Deferred
from contracts import account as c
from contracts import customer as customer_events
from contracts import ledger
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain
from workers.account.domain import charges, interest
from workers.account.domain.accounts import Refusal

STEP_CREATE_LEDGER_ACCOUNT = "create_ledger_account"
STEP_SET_LEDGER_FLAGS = "set_ledger_flags"
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


# --- holds and liens (banking-rules §2) ----------------------------------------------------------
# A hold is a pending transfer in the ledger, id = hold_id, from the account to the bank's
# hold_control: available falls by it at once, it expires with the ledger's timeout (a lien has
# none), and the account cannot close while it stands. Releasing voids it.

STEP_PLACE_HOLD = "place_hold"
STEP_RELEASE_HOLD = "release_hold"


def hold_release_id(hold_id: UUID) -> UUID:
    """The void's transfer id: one per hold, so a repeated release cannot void twice."""
    return uuid5(hold_id, "release")


def _hold_status(hold: c.HoldView, now: datetime) -> c.HoldView:
    """An active hold past its end reads as expired (the ledger released it already)."""
    if hold.status == c.HoldStatus.active and hold.expires_at is not None and hold.expires_at <= now:
        return hold.model_copy(update={"status": c.HoldStatus.expired})
    return hold


async def place_hold(ctx: Context, cmd: c.PlaceHold) -> Reply | Deferred:
    account = await store.get_account(ctx.conn, cmd.account_id, for_update=True)
    if account is None:
        return not_found(cmd.account_id)
    existing = await store.get_hold(ctx.conn, cmd.hold_id)
    if existing is not None:
        same = (existing.account_id, existing.kind, existing.amount) == (cmd.account_id, cmd.kind, cmd.amount)
        if same:
            return Reply.success(_hold_status(existing, ctx.now))
        return Reply.refusal(c.AccountError.hold_exists, f"hold {cmd.hold_id} exists with other fields")
    if refusal := domain.hold_refusal(account.status):
        return refuse(refusal)
    hold = c.HoldView(hold_id=cmd.hold_id, account_id=account.account_id, kind=cmd.kind, amount=cmd.amount,
                      currency=account.currency, reason=cmd.reason, status=c.HoldStatus.placing,
                      placed_by=ctx.actor.subject if ctx.actor else cmd.actor, placed_at=ctx.now)  # fmt: skip
    await store.insert_hold(ctx.conn, hold, cmd.expires_in_s)
    pending = ledger.NewTransfer(
        id=cmd.hold_id, debit_account_id=account.ledger_account_id,
        credit_account_id=ledger.bank_account_id("hold_control", account.currency), amount=cmd.amount,
        currency=account.currency, code=cmd.kind.value, flags=ledger.TransferFlags(pending=True),
        timeout_s=cmd.expires_in_s or 0, reference=f"{cmd.kind.value.upper()}-{cmd.hold_id.hex[:12]}",
        narration=ledger.one_line(f"{cmd.kind.value.capitalize()}: {cmd.reason}"),
    )  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=[pending]), step=STEP_PLACE_HOLD,
                             state={"hold_id": str(cmd.hold_id), "actor": hold.placed_by})  # fmt: skip


async def hold_placed_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    hold = await store.get_hold(ctx.conn, UUID(state["hold_id"]), for_update=True)
    assert hold is not None, "holds are never deleted"
    if hold.status != c.HoldStatus.placing:
        return Reply.success(_hold_status(hold, ctx.now))  # a repeated answer
    result = (reply.result or {}).get("results", [{}])[0] if reply.ok else {}
    if result.get("result") in ("ok", "exists"):
        expires_in_s = await store.hold_expiry(ctx.conn, hold.hold_id)
        placed_at = datetime.fromisoformat(result["timestamp"]) if result.get("timestamp") else ctx.now
        expires_at = placed_at + timedelta(seconds=expires_in_s) if expires_in_s else None
        hold = await store.set_hold(ctx.conn, hold.hold_id, c.HoldStatus.active, expires_at=expires_at)
        account = await store.get_account(ctx.conn, hold.account_id)
        assert account is not None
        await ctx.emit(c.HoldPlaced(hold_id=hold.hold_id, account_id=hold.account_id, customer_id=account.customer_id,
                                    kind=hold.kind, amount=hold.amount, currency=hold.currency, reason=hold.reason,
                                    expires_at=hold.expires_at, actor=state["actor"], occurred_at=ctx.now))  # fmt: skip
        return Reply.success(hold)
    code = result.get("result") or (reply.error.code if reply.error else "refused")
    await store.set_hold(ctx.conn, hold.hold_id, c.HoldStatus.refused, refusal=code)
    if code == "exceeds_credits":
        return Reply.refusal(c.AccountError.insufficient_available,
                             f"{hold.amount} is more than is available above the account's floor", {"ledger_result": code})  # fmt: skip
    return Reply.refusal(c.AccountError.ledger_refused, f"the ledger would not hold it: {code}", {"ledger_result": code})


async def release_hold(ctx: Context, cmd: c.ReleaseHold) -> Reply | Deferred:
    hold = await store.get_hold(ctx.conn, cmd.hold_id, for_update=True)
    if hold is None or hold.account_id != cmd.account_id:
        return Reply.refusal(c.AccountError.hold_not_found, f"no hold {cmd.hold_id} on account {cmd.account_id}")
    hold = _hold_status(hold, ctx.now)
    if hold.status != c.HoldStatus.active:
        return Reply.refusal(c.AccountError.hold_not_active, f"hold {cmd.hold_id} is {hold.status}")
    void = ledger.NewTransfer(id=hold_release_id(hold.hold_id), pending_id=hold.hold_id, amount=0,
                              currency=hold.currency, code="hold_release", flags=ledger.TransferFlags(void_pending=True),
                              narration=ledger.one_line(f"{hold.kind.value.capitalize()} released: {cmd.reason}"))  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=[void]), step=STEP_RELEASE_HOLD,
                             state={"hold_id": str(hold.hold_id), "actor": ctx.actor.subject if ctx.actor else cmd.actor,
                                    "reason": cmd.reason})  # fmt: skip


async def hold_released_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    hold = await store.get_hold(ctx.conn, UUID(state["hold_id"]), for_update=True)
    assert hold is not None
    if hold.status != c.HoldStatus.active:
        return Reply.success(hold)  # a repeated answer
    result = ((reply.result or {}).get("results", [{}])[0] if reply.ok else {}).get("result")
    if result in ("ok", "exists", "pending_transfer_already_voided"):
        hold = await store.set_hold(ctx.conn, hold.hold_id, c.HoldStatus.released, released_at=ctx.now)
        account = await store.get_account(ctx.conn, hold.account_id)
        assert account is not None
        await ctx.emit(c.HoldReleased(hold_id=hold.hold_id, account_id=hold.account_id, customer_id=account.customer_id,
                                      amount=hold.amount, currency=hold.currency, reason=state["reason"],
                                      actor=state["actor"], occurred_at=ctx.now))  # fmt: skip
        return Reply.success(hold)
    if result == "pending_transfer_expired":
        hold = await store.set_hold(ctx.conn, hold.hold_id, c.HoldStatus.expired)
        return Reply.refusal(c.AccountError.hold_not_active, f"hold {hold.hold_id} expired before it was released")
    code = result or (reply.error.code if reply.error else "refused")
    return Reply.refusal(c.AccountError.ledger_refused, f"the ledger would not release it: {code}", {"ledger_result": code})


async def list_holds(ctx: Context, cmd: c.ListHolds) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id)
    if account is None:
        return not_found(cmd.account_id)
    if denied := owner_only(ctx.actor, account.customer_id):
        return denied
    items = [_hold_status(h, ctx.now) for h in await store.holds(ctx.conn, cmd.account_id, cmd.limit)]
    return Reply.success(c.HoldList(items=items))
