"""Holds and liens (banking-rules §2): placed and released through the ledger, and listed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from bus.actor import owner_only
from bus.handling import Context, Deferred
from contracts import account as c
from contracts import ledger
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain
from workers.account.handlers.accounts import not_found, refuse

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
