"""A payment's life after it is placed, shared by every handler: the replies and facts it builds,
asking the ledger (one saga step per action), the ledger's answers, and finishing a payment
(completed, failed or cancelled, its hold voided; a refund credited; a held payment sent to its rail).

Every payment moves money only through `ledger.create_transfers`, as a saga step: the order is
stored, the ledger is asked through the outbox, and its answer (on `payment.replies`) runs
`ledger_answered`, which finishes the order and answers whoever placed it. Ledger transfer ids
derive from the payment id, so a repeated step can never move money twice.

This module imports no other handler module but `standing_orders` (an occurrence's result).
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args
from uuid import UUID

from bus.actor import EDGE, SERVICE, Actor, acting_subject, owner_only
from bus.handling import Context, Deferred
from contracts import ledger
from contracts import payment as c
from contracts.common import Reply
from contracts.ledger import bank_account_id
from contracts.payment import PaymentError, PaymentKind, PaymentStatus
from workers.payment import store
from workers.payment.domain.orders import STEP_UP_THRESHOLD, Refusal, atm_period, limit_periods
from workers.payment.domain.screening import WatchList
from workers.payment.domain.transfers import hold_transfers, ledger_refusal, void_transfers, words_of
from workers.payment.handlers import standing_orders
from workers.payment.store import KnownAccount, PaymentRow

K, S, E = PaymentKind, PaymentStatus, PaymentError

# A saga step per thing asked of the ledger: its kind is `ledger_<action>` (persisted in
# saga_step.kind; routes.py lists one continuation for each).
STEP_LEDGER = "ledger"
LedgerAction = Literal["post", "hold", "post_hold", "void", "refund", "reverse"]
LEDGER_ACTIONS: tuple[LedgerAction, ...] = get_args(LedgerAction)


@dataclass(frozen=True, slots=True)
class PaymentConfig:
    """Knobs a bank sets per deployment (banking-rules §4 defaults)."""

    approval_ttl: timedelta = timedelta(hours=24)
    # How long the clearing partner has to settle or reject before the hold is released.
    settlement_timeout: timedelta = timedelta(hours=1)
    # A saved payee cannot be paid at all this soon after it was added (scored for 24 h after).
    payee_cooling_off: timedelta = timedelta(minutes=30)
    watch_list: WatchList = WatchList()
    # banking-rules §2 step-up: a customer-channel debit of at least this (minor units) needs a
    # one-time password the edge verified (`CBS_STEP_UP_THRESHOLD_MINOR`; 10,000.00 at exponent 2).
    step_up_threshold: int = STEP_UP_THRESHOLD

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PaymentConfig:
        env = dict(os.environ) if env is None else env
        return cls(
            approval_ttl=timedelta(seconds=float(env.get("CBS_PAYMENT_APPROVAL_TTL_S", 86_400))),
            settlement_timeout=timedelta(seconds=float(env.get("CBS_PAYMENT_SETTLEMENT_TIMEOUT_S", 3_600))),
            payee_cooling_off=timedelta(seconds=float(env.get("CBS_PAYEE_COOLING_OFF_S", 1_800))),
            watch_list=WatchList.from_env(env),
            step_up_threshold=int(env.get("CBS_STEP_UP_THRESHOLD_MINOR", STEP_UP_THRESHOLD)),
        )


# Read as `lifecycle.CONFIG` wherever it is used, so that one replacement (a test's) reaches all.
CONFIG = PaymentConfig.from_env()


# --- replies and facts --------------------------------------------------------------------------


def believes_verified(actor: Actor | None) -> bool:
    """`verified` (§2 step-up) is the edge's word (it never takes it from a body: it sets it after
    identity checked the one-time password) or a bank service's; a partner's claim is worth nothing."""
    return actor is not None and actor.via in (EDGE, SERVICE)


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message, refusal.details)


def random8() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))


def not_found(payment_id: UUID) -> Reply:
    return Reply.refusal(E.payment_not_found, f"no payment {payment_id}")


def reply_with(row: PaymentRow) -> Reply:
    return Reply.success(row.view)


def as_json(row: PaymentRow) -> dict[str, Any]:
    return row.view.model_dump(mode="json")


def fact_fields(row: PaymentRow, now: datetime) -> dict[str, Any]:
    v = row.view
    return {
        "payment_id": v.payment_id, "reference": v.reference, "kind": v.kind, "payer_account_id": v.payer_account_id,
        "payee_account_id": row.payee_account_id, "customer_id": row.customer_id, "amount": v.amount,
        "currency": v.currency, "status": v.status, "occurred_at": now,
    }  # fmt: skip


def subject_of(actor: Actor | None, claimed: str) -> str:
    """Who acts: the edge's authenticated person or the partner itself, never what a body claims;
    only a service of the bank names who it acts for (bus/actor.py)."""
    return acting_subject(actor, claimed)


async def owner_of(ctx: Context, account_id: UUID | None) -> UUID | None:
    account = await store.get_account(ctx.conn, account_id) if account_id else None
    return account.customer_id if account else None


TERM_DEPOSITS = frozenset({"fixed_deposit", "recurring_deposit"})


def usable(actor: Actor | None, account: KnownAccount | None, account_id: UUID, currency: str, *, paying: bool) -> Reply | None:
    """None when the account may take part in a payment in `currency` (paying: the actor's own,
    and active), else the refusal."""
    if account is None:
        return Reply.refusal(E.account_not_found, f"no account {account_id} known to payments")
    if paying and (denied := owner_only(actor, account.customer_id)):
        return denied
    if account.type in TERM_DEPOSITS:
        return Reply.refusal(E.deposit_account, f"account {account_id} is a term deposit: the bank funds it and pays it "
                                                "out; it takes no payments")  # fmt: skip
    if paying and account.status == "dormant":
        return Reply.refusal(E.account_dormant, f"account {account_id} is dormant: the customer asks the bank to "
                                                "reactivate it (banking-rules §2)")  # fmt: skip
    if account.status not in ("active", "dormant"):
        return Reply.refusal(E.account_not_active, f"account {account_id} is {account.status}")
    if account.currency != currency:
        return Reply.refusal(E.currency_mismatch, f"account {account_id} is in {account.currency}")
    return None


def usage_periods(row: PaymentRow) -> dict[str, Any]:
    """The usage periods this payment charged, from its acceptance time."""
    periods = limit_periods(row.view.kind, row.view.created_at)
    return {name: start for name, start in periods.items() if name in row.charged_periods}


# --- asking the ledger ----------------------------------------------------------------------------


def holds_for(row: PaymentRow, timeout_s: int = 0) -> list[ledger.NewTransfer]:
    v = row.view
    assert v.payer_account_id is not None
    # A large withdrawal waiting for a checker holds the cash for the vault.
    payee = bank_account_id("cash_vault", v.currency) if v.kind == K.cash_withdrawal else row.payee_account_id
    return hold_transfers(v.payment_id, words_of(v), v.currency, kind=v.kind, payer=v.payer_account_id,
                          payee=payee, amount=v.amount, fee=v.fee, timeout_s=timeout_s)  # fmt: skip


async def ask_ledger(ctx: Context, row: PaymentRow, action: LedgerAction, transfers: list[ledger.NewTransfer]) -> Deferred:
    state = {"payment_id": str(row.view.payment_id), "action": action}
    # One step name per action: a continuation that asks again (approve → post) needs a new step id.
    return await ctx.request(ledger.CreateTransfers(transfers=transfers), step=f"{STEP_LEDGER}_{action}", state=state)


# --- the ledger's answers (the continuation of every `ledger_<action>` step) -----------------------


async def ledger_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    row = await store.get_payment(ctx.conn, UUID(state["payment_id"]), for_update=True)
    assert row is not None, "payments are never deleted"
    results = (reply.result or {}).get("results", []) if reply.ok and isinstance(reply.result, dict) else []
    refusal = ledger_refusal(results) if reply.ok else Refusal(
        E.ledger_refused, reply.error.message if reply.error else "the ledger refused", {"ledger_error": reply.error.code if reply.error else None}
    )  # fmt: skip
    action = state["action"]
    if action in ("post", "post_hold"):
        return await _posted(ctx, row, refusal)
    if action == "hold":
        return await _held(ctx, row, refusal)
    if action == "void":
        # The hold is released (or had already expired in the ledger): the payment failed before this.
        return reply_with(row)
    if action in ("refund", "reverse"):
        return await refund_posted(ctx, row, refusal)
    raise AssertionError(f"unknown ledger action {action}")


async def _posted(ctx: Context, row: PaymentRow, refusal: Refusal | None) -> Reply:
    if row.view.status in (S.completed, S.refunded):
        return reply_with(row)  # a repeated answer
    if refusal is not None:
        row = await fail_payment(ctx, row, refusal.code, refusal.message)
        return refuse(Refusal(refusal.code, refusal.message, {**(refusal.details or {}), "payment": as_json(row)}))
    row = await complete_payment(ctx, row)
    return reply_with(row)


async def _held(ctx: Context, row: PaymentRow, refusal: Refusal | None) -> Reply:
    if row.view.status != S.initiated:
        return reply_with(row)
    if refusal is not None:
        row = await fail_payment(ctx, row, refusal.code, refusal.message)
        return refuse(Refusal(refusal.code, refusal.message, {**(refusal.details or {}), "payment": as_json(row)}))
    if row.needs_approval:
        expires_at = ctx.now + CONFIG.approval_ttl
        row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.pending, expires_at=expires_at)
        await ctx.emit(c.PaymentApprovalRequired(**fact_fields(row, ctx.now), maker=row.view.maker, expires_at=expires_at))
        return reply_with(row)
    return reply_with(await release_to_rail(ctx, row))


async def refund_posted(ctx: Context, row: PaymentRow, refusal: Refusal | None) -> Reply:
    """A refund or reversal in the ledger: completed, and the original's refunded amount grows."""
    if row.view.status != S.initiated:
        return reply_with(row)
    if refusal is not None:
        row = await fail_payment(ctx, row, refusal.code, refusal.message)  # gives the reservation back
        return refuse(Refusal(refusal.code, refusal.message, {**(refusal.details or {}), "payment": as_json(row)}))
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.completed, completed_at=ctx.now)
    assert row.view.refund_of is not None
    original = await store.get_payment(ctx.conn, row.view.refund_of, for_update=True)
    assert original is not None
    refunded = original.view.refunded_amount + row.view.amount
    changes: dict[str, Any] = {"refunded_amount": refunded}
    if refunded == original.view.amount:
        changes["status"] = S.refunded
    original = await store.update_payment(ctx.conn, original.view.payment_id, ctx.now, **changes)
    await ctx.emit(c.PaymentCompleted(**fact_fields(row, ctx.now), fee=row.view.fee))
    await ctx.emit(c.PaymentRefunded(**fact_fields(original, ctx.now), refund_id=row.view.payment_id,
                                     refund_amount=row.view.amount, refunded_amount=refunded))  # fmt: skip
    return reply_with(row)


# --- finishing a payment ----------------------------------------------------------------------------


async def release_to_rail(ctx: Context, row: PaymentRow) -> PaymentRow:
    """A held external payment goes to the clearing partner now, or waits for its rail window."""
    assert row.view.execute_at is not None
    if row.view.execute_at > ctx.now:
        if row.view.status != S.pending:
            row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.pending, expires_at=None)
        return row
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.processing,
                                     expires_at=ctx.now + CONFIG.settlement_timeout)  # fmt: skip
    assert row.view.payee is not None
    await ctx.emit(c.PaymentSubmitted(**fact_fields(row, ctx.now), payee=row.view.payee, fee=row.view.fee))
    return row


async def complete_payment(ctx: Context, row: PaymentRow, partner_reference: str | None = None) -> PaymentRow:
    changes: dict[str, Any] = {"status": S.completed, "completed_at": ctx.now, "expires_at": None}
    if partner_reference is not None:
        changes["partner_reference"] = partner_reference
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, **changes)
    await ctx.emit(c.PaymentCompleted(**fact_fields(row, ctx.now), fee=row.view.fee, partner_reference=row.view.partner_reference))
    await standing_order_result(ctx, row, succeeded=True)
    return row


async def fail_payment(ctx: Context, row: PaymentRow, code: str, reason: str, *, status: PaymentStatus = S.failed,
                actor: str | None = None) -> PaymentRow:  # fmt: skip
    """Failed or cancelled: the limit usage it charged is given back (§4), and it says so."""
    periods = usage_periods(row)
    if periods and row.view.payer_account_id is not None:
        await store.charge(ctx.conn, row.view.payer_account_id, periods, -(row.view.amount + row.view.fee))
        if row.view.kind == K.cash_withdrawal and row.view.channel == c.Channel.atm:
            await store.charge(ctx.conn, row.view.payer_account_id, atm_period(row.view.created_at), -1)
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=status, failure_code=str(code),
                                     failure_reason=reason, expires_at=None, charged_periods=[])  # fmt: skip
    if status == S.cancelled:
        await ctx.emit(c.PaymentCancelled(**fact_fields(row, ctx.now), actor=actor or "system", reason=reason))
    else:
        await ctx.emit(c.PaymentFailed(**fact_fields(row, ctx.now), code=str(code), reason=reason))
    if row.view.refund_of is not None:
        await release_refund_reservation(ctx, row)
    await standing_order_result(ctx, row, succeeded=False)
    return row


async def fail_and_release(ctx: Context, row: PaymentRow, code: str, reason: str, *,
                            status: PaymentStatus = S.failed, actor: str | None = None) -> Reply | Deferred:  # fmt: skip
    """Fail (or cancel) a payment whose funds are held, and void the hold; the answer follows the void."""
    row = await fail_payment(ctx, row, code, reason, status=status, actor=actor)
    return await ask_ledger(ctx, row, "void", void_transfers(holds_for(row)))


async def release_refund_reservation(ctx: Context, refund: PaymentRow) -> None:
    assert refund.view.refund_of is not None
    original = await store.get_payment(ctx.conn, refund.view.refund_of, for_update=True)
    assert original is not None
    await store.update_payment(ctx.conn, original.view.payment_id, ctx.now,
                               refund_reserved=original.refund_reserved - refund.view.amount)  # fmt: skip


async def standing_order_result(ctx: Context, row: PaymentRow, *, succeeded: bool) -> None:
    if row.standing_order_id is not None:
        await standing_orders.occurrence_finished(ctx, row, succeeded=succeeded)
