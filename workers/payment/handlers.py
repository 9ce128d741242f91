"""The payment worker's recipes: load, decide (domain), store, ask the ledger, reply.

Every payment moves money only through `ledger.create_transfers`, as a saga step: the order is
stored, the ledger is asked through the outbox, and its answer (on `payment.replies`) finishes
the order and answers whoever placed it. Ledger transfer ids derive from the payment id, so a
repeated step can never move money twice.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from bus.actor import Actor, not_for_customers, owner_only
from bus.paging import decode_time_id, page_of
from bus.runtime import Context, Deferred
from contracts import account as account_events
from contracts import ledger
from contracts import payment as c
from contracts.common import ErrorCode, Reply
from contracts.payment import EXTERNAL_KINDS, PaymentError, PaymentKind, PaymentStatus
from workers.payment import domain, schedule, standing_orders, store
from workers.payment.domain import Refusal, Step
from workers.payment.screening import WatchList, matches
from workers.payment.store import KnownAccount, PaymentRow

K, S, E = PaymentKind, PaymentStatus, PaymentError
STEP_LEDGER = "ledger"
LEDGER_ACTIONS = ("post", "hold", "post_hold", "void", "refund", "reverse")
SWEEP_BATCH = 100  # payments acted on per sweep transaction
MAX_PAYEES = 500  # per customer
MAX_STANDING_ORDERS_LISTED = 500


@dataclass(frozen=True, slots=True)
class PaymentConfig:
    """Knobs a bank sets per deployment (banking-rules §4 defaults)."""

    approval_ttl: timedelta = timedelta(hours=24)
    # How long the clearing partner has to settle or reject before the hold is released.
    settlement_timeout: timedelta = timedelta(hours=1)
    # A saved payee cannot be paid at all this soon after it was added (scored for 24 h after).
    payee_cooling_off: timedelta = timedelta(minutes=30)
    watch_list: WatchList = WatchList()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PaymentConfig:
        env = dict(os.environ) if env is None else env
        return cls(
            approval_ttl=timedelta(seconds=float(env.get("CBS_PAYMENT_APPROVAL_TTL_S", 86_400))),
            settlement_timeout=timedelta(seconds=float(env.get("CBS_PAYMENT_SETTLEMENT_TIMEOUT_S", 3_600))),
            payee_cooling_off=timedelta(seconds=float(env.get("CBS_PAYEE_COOLING_OFF_S", 1_800))),
            watch_list=WatchList.from_env(env),
        )


CONFIG = PaymentConfig.from_env()


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message, refusal.details)


def random8() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))


def not_found(payment_id: UUID) -> Reply:
    return Reply.refusal(E.payment_not_found, f"no payment {payment_id}")


# --- placing an order ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    """What every way of placing a payment (a command, the scheduler) asks for."""

    payment_id: UUID
    kind: PaymentKind
    channel: c.Channel
    payer_account_id: UUID | None
    payee: c.Payee | None
    payee_id: UUID | None
    amount: int
    currency: str
    description: str | None
    maker: str
    standing_order_id: UUID | None = None

    def same_as(self, row: PaymentRow) -> bool:
        v = row.view
        return (v.kind, v.payer_account_id, v.amount, v.currency) == (
            self.kind, self.payer_account_id, self.amount, self.currency
        )  # fmt: skip


async def initiate_payment(ctx: Context, cmd: c.InitiatePayment) -> Reply | Deferred:
    if cmd.kind == K.refund:
        if cmd.refund_of is None:
            return Reply.refusal(E.invalid_payee, "a refund names the payment it refunds in refund_of")
        refund = c.RefundPayment(refund_id=cmd.payment_id, payment_id=cmd.refund_of, amount=cmd.amount,
                                 actor=cmd.actor, reason=cmd.description or "refund")  # fmt: skip
        return await refund_payment(ctx, refund)
    order = Order(
        payment_id=cmd.payment_id, kind=cmd.kind, channel=cmd.channel, payer_account_id=cmd.payer_account_id,
        payee=cmd.payee, payee_id=cmd.payee_id, amount=cmd.amount, currency=cmd.currency,
        description=cmd.description, maker=_subject(ctx.actor, cmd.actor),
    )  # fmt: skip
    return await place(ctx, order)


def _subject(actor: Actor | None, claimed: str) -> str:
    """The authenticated subject when there is one: a body cannot name somebody else as maker."""
    return actor.subject if actor is not None else claimed


async def place(ctx: Context, order: Order) -> Reply | Deferred:
    existing = await store.get_payment(ctx.conn, order.payment_id)
    if existing is not None:
        if order.same_as(existing):
            return _answer(existing)
        return Reply.refusal(E.payment_exists, f"payment {order.payment_id} exists with other fields")
    admitted = await admit(ctx, order)
    if isinstance(admitted, Reply):
        return admitted
    row = admitted
    await store.insert_payment(ctx.conn, row, charge=_periods(row))
    await ctx.emit(c.PaymentInitiated(**_fact(row, ctx.now), fee=row.view.fee, fraud_score=row.view.fraud_score,
                                      fraud_level=row.view.fraud_level))  # fmt: skip
    return await _first_ledger_step(ctx, row)


async def admit(ctx: Context, order: Order) -> PaymentRow | Reply:
    """Every check before money is asked for; the payer account stays locked to the commit."""
    parties = await _parties(ctx, order)
    if isinstance(parties, Reply):
        return parties
    payee, payer, payee_account = parties
    fee = _fee(order)
    periods = domain.limit_periods(order.kind, ctx.now)
    used, recent = await store.activity(ctx.conn, payer.account_id, periods, ctx.now - timedelta(hours=1)) if payer else ({}, 0)
    if refusal := domain.check_rail_amount(order.kind, order.amount, upi_used_today=used.get("upi_day", 0)):
        return refuse(refusal)
    if payer is not None and (refusal := _check_limits(order, payer, used, order.amount + fee)):
        return refuse(refusal)
    saved_payee = await _saved_payee(ctx, order, payer)
    if isinstance(saved_payee, Reply):
        return saved_payee
    screening = domain.screen(order.amount, now=ctx.now, payee_added_at=saved_payee, payments_last_hour=recent)
    if order.kind not in domain.DEBIT_KINDS:
        # Money coming in (a teller's deposit) is not a payment out: nothing to score or approve.
        screening = domain.Screening(domain.FRAUD_BASE, c.FraudLevel.low, (), approval_required=False)
    if isinstance(screening, Refusal):
        details = screening.details or {}
        score, level, rules = int(details["score"]), c.FraudLevel.critical, tuple(details["rules"])
    else:
        score, level, rules = screening.score, screening.level, screening.rules
    watch_hits = matches(CONFIG.watch_list, payee)
    view = c.PaymentView(
        payment_id=order.payment_id, reference=domain.reference(order.kind, ctx.now, random8()),
        kind=order.kind, channel=order.channel, status=S.initiated, payer_account_id=order.payer_account_id,
        payee=payee, amount=order.amount, fee=fee, currency=order.currency, fraud_score=score, fraud_level=level,
        refunded_amount=0, maker=order.maker, description=order.description,
        execute_at=domain.execute_at(order.kind, ctx.now), created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    owner = payer or payee_account
    row = PaymentRow(
        view=view, payee_account_id=payee.account_id if payee else None,
        customer_id=owner.customer_id if owner else None,
        # A watch-list hit holds the order for a checker, whatever its score.
        needs_approval=bool(watch_hits) or (isinstance(screening, domain.Screening) and screening.approval_required),
        charged_periods=list(periods), refund_reserved=0, standing_order_id=order.standing_order_id,
        expires_at=None, completed_at=None, failure_reason=None, partner=None,
    )  # fmt: skip
    if rules + watch_hits:
        await ctx.emit(c.ScreeningHit(**_fact(row, ctx.now), rules=list(rules + watch_hits), fraud_score=score,
                                      fraud_level=level))  # fmt: skip
    if isinstance(screening, Refusal):
        # Critical: refused at once, and kept as a failed payment so the refusal can be reviewed.
        failed = replace(row, view=view.model_copy(update={"status": S.failed, "failure_code": E.fraud_suspected}),
                         charged_periods=[], failure_reason=screening.message)  # fmt: skip
        await store.insert_payment(ctx.conn, failed)
        await ctx.emit(c.PaymentFailed(**_fact(failed, ctx.now), code=E.fraud_suspected, reason=screening.message))
        return refuse(screening)
    return row


Parties = tuple["c.Payee | None", "KnownAccount | None", "KnownAccount | None"]


async def _parties(ctx: Context, order: Order) -> Parties | Reply:
    """The order's shape, who may place it, and both accounts usable: (payee, payer, payee account)."""
    if refusal := domain.check_order_shape(order.kind, order.payer_account_id, order.payee):
        return refuse(refusal)
    if order.kind in (K.cash_deposit, K.cash_withdrawal) and not_for_customers(ctx.actor):
        return Reply.refusal(E.forbidden, "cash is handled by tellers")
    payee = domain.normalize_payee(order.payee)
    if isinstance(payee, Refusal):
        return refuse(payee)
    payer = payee_account = None
    if order.payer_account_id is not None:
        # Locked: limits are checked and charged under this lock, so concurrent orders queue here.
        payer = await store.get_account(ctx.conn, order.payer_account_id, for_update=True)
        if (answer := _usable(ctx.actor, payer, order.payer_account_id, order.currency, paying=True)) is not None:
            return answer
    if payee is not None and payee.account_id is not None:
        payee_account = await store.get_account(ctx.conn, payee.account_id)
        if (answer := _usable(None, payee_account, payee.account_id, order.currency, paying=False)) is not None:
            return answer
        if refusal := domain.check_different_accounts(order.payer_account_id, payee.account_id):
            return refuse(refusal)
    return payee, payer, payee_account


def _usable(actor: Actor | None, account: KnownAccount | None, account_id: UUID, currency: str, *, paying: bool) -> Reply | None:
    if account is None:
        return Reply.refusal(E.account_not_found, f"no account {account_id} known to payments")
    if paying and (denied := owner_only(actor, account.customer_id)):
        return denied
    if account.status not in ("active", "dormant") or (paying and account.status == "dormant"):
        return Reply.refusal(E.account_not_active, f"account {account_id} is {account.status}")
    if account.currency != currency:
        return Reply.refusal(E.currency_mismatch, f"account {account_id} is in {account.currency}")
    return None


def _fee(order: Order) -> int:
    if order.kind == K.cash_withdrawal and order.channel == c.Channel.branch:
        return domain.branch_withdrawal_fee(order.amount)
    return domain.payment_fee(order.kind, order.amount)


def _check_limits(order: Order, payer: KnownAccount, used: dict[str, int], amount: int) -> Refusal | None:
    """The product's limits, when the account worker told us them (an account opened before limits
    were published carries none, and is bounded by the ledger's balance alone)."""
    daily_limit = payer.daily_cash_withdrawal_limit if order.kind == K.cash_withdrawal else payer.daily_payments_out_limit
    if daily_limit is None or payer.monthly_debit_limit is None:
        return None
    daily_used = used.get("cash_day" if order.kind == K.cash_withdrawal else "day", 0)
    return domain.check_limits(amount, used_daily=daily_used, used_monthly=used.get("month", 0),
                               daily_limit=daily_limit, monthly_limit=payer.monthly_debit_limit)  # fmt: skip


async def _saved_payee(ctx: Context, order: Order, payer: KnownAccount | None) -> datetime | None | Reply:
    """When the order names a saved payee: its added_at (for the score), or a refusal."""
    if order.payee_id is None:
        return None
    saved = await store.get_payee(ctx.conn, order.payee_id)
    if saved is None or payer is None or saved.customer_id != payer.customer_id:
        return Reply.refusal(E.payee_not_found, f"no payee {order.payee_id} of this customer")
    if ctx.now - saved.added_at < CONFIG.payee_cooling_off:
        ready = saved.added_at + CONFIG.payee_cooling_off
        return Reply.refusal(E.payee_cooling_off, "a new payee can be paid after its cooling-off period",
                             {"payable_from": ready.isoformat()})  # fmt: skip
    return saved.added_at


def _periods(row: PaymentRow) -> dict[str, Any]:
    """The usage periods this payment charged, from its acceptance time."""
    periods = domain.limit_periods(row.view.kind, row.view.created_at)
    return {name: start for name, start in periods.items() if name in row.charged_periods}


async def _first_ledger_step(ctx: Context, row: PaymentRow) -> Reply | Deferred:
    """Internal and cash orders post at once; approvals and external rails hold first."""
    if row.needs_approval or row.view.kind in EXTERNAL_KINDS:
        timeout_s = int((CONFIG.approval_ttl if row.needs_approval else CONFIG.settlement_timeout).total_seconds())
        # The ledger's own timeout is a safety net behind ours: the hold outlives the longest wait.
        transfers = _holds(row, timeout_s=timeout_s * 2 + 86_400)
        return await _ask_ledger(ctx, row, "hold", transfers)
    return await _ask_ledger(ctx, row, "post", _single_phase(row))


def _single_phase(row: PaymentRow) -> list[ledger.NewTransfer]:
    v = row.view
    if v.kind in (K.cash_deposit, K.cash_withdrawal):
        account = v.payee.account_id if v.kind == K.cash_deposit else v.payer_account_id  # type: ignore[union-attr]
        assert account is not None
        return domain.cash_transfers(v.payment_id, v.reference, v.currency, kind=v.kind, account=account,
                                     amount=v.amount, fee=v.fee)  # fmt: skip
    assert v.payer_account_id is not None and row.payee_account_id is not None
    return domain.internal_transfers(v.payment_id, v.reference, v.currency, payer=v.payer_account_id,
                                     payee=row.payee_account_id, amount=v.amount, fee=v.fee)  # fmt: skip


def _holds(row: PaymentRow, timeout_s: int = 0) -> list[ledger.NewTransfer]:
    v = row.view
    assert v.payer_account_id is not None
    # A large withdrawal waiting for a checker holds the cash for the vault.
    payee = domain.bank_account_id("cash_vault", v.currency) if v.kind == K.cash_withdrawal else row.payee_account_id
    return domain.hold_transfers(v.payment_id, v.reference, v.currency, kind=v.kind, payer=v.payer_account_id,
                                 payee=payee, amount=v.amount, fee=v.fee, timeout_s=timeout_s)  # fmt: skip


async def _ask_ledger(ctx: Context, row: PaymentRow, action: str, transfers: list[ledger.NewTransfer]) -> Deferred:
    state = {"payment_id": str(row.view.payment_id), "action": action}
    # One step name per action: a continuation that asks again (approve → post) needs a new step id.
    return await ctx.request(ledger.CreateTransfers(transfers=transfers), step=f"{STEP_LEDGER}_{action}", state=state)


# --- the ledger's answers -------------------------------------------------------------------------


async def ledger_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    row = await store.get_payment(ctx.conn, UUID(state["payment_id"]), for_update=True)
    assert row is not None, "payments are never deleted"
    results = (reply.result or {}).get("results", []) if reply.ok and isinstance(reply.result, dict) else []
    refusal = domain.ledger_refusal(results) if reply.ok else Refusal(
        E.ledger_refused, reply.error.message if reply.error else "the ledger refused", {"ledger_error": reply.error.code if reply.error else None}
    )  # fmt: skip
    action = state["action"]
    if action in ("post", "post_hold"):
        return await _posted(ctx, row, refusal)
    if action == "hold":
        return await _held(ctx, row, refusal)
    if action == "void":
        # The hold is released (or had already expired in the ledger): the payment failed before this.
        return _answer(row)
    if action in ("refund", "reverse"):
        return await _refund_posted(ctx, row, refusal)
    raise AssertionError(f"unknown ledger action {action}")


async def _posted(ctx: Context, row: PaymentRow, refusal: Refusal | None) -> Reply:
    if row.view.status in (S.completed, S.refunded):
        return _answer(row)  # a repeated answer
    if refusal is not None:
        row = await _fail(ctx, row, refusal.code, refusal.message)
        return refuse(Refusal(refusal.code, refusal.message, {**(refusal.details or {}), "payment": _json(row)}))
    row = await _complete(ctx, row)
    return _answer(row)


async def _held(ctx: Context, row: PaymentRow, refusal: Refusal | None) -> Reply:
    if row.view.status != S.initiated:
        return _answer(row)
    if refusal is not None:
        row = await _fail(ctx, row, refusal.code, refusal.message)
        return refuse(Refusal(refusal.code, refusal.message, {**(refusal.details or {}), "payment": _json(row)}))
    if row.needs_approval:
        expires_at = ctx.now + CONFIG.approval_ttl
        row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.pending, expires_at=expires_at)
        await ctx.emit(c.PaymentApprovalRequired(**_fact(row, ctx.now), maker=row.view.maker, expires_at=expires_at))
        return _answer(row)
    return _answer(await _release_to_rail(ctx, row))


async def _release_to_rail(ctx: Context, row: PaymentRow) -> PaymentRow:
    """A held external payment goes to the clearing partner now, or waits for its rail window."""
    assert row.view.execute_at is not None
    if row.view.execute_at > ctx.now:
        if row.view.status != S.pending:
            row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.pending, expires_at=None)
        return row
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.processing,
                                     expires_at=ctx.now + CONFIG.settlement_timeout)  # fmt: skip
    assert row.view.payee is not None
    await ctx.emit(c.PaymentSubmitted(**_fact(row, ctx.now), payee=row.view.payee, fee=row.view.fee))
    return row


async def _complete(ctx: Context, row: PaymentRow, partner_reference: str | None = None) -> PaymentRow:
    changes: dict[str, Any] = {"status": S.completed, "completed_at": ctx.now, "expires_at": None}
    if partner_reference is not None:
        changes["partner_reference"] = partner_reference
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, **changes)
    await ctx.emit(c.PaymentCompleted(**_fact(row, ctx.now), fee=row.view.fee, partner_reference=row.view.partner_reference))
    await _standing_order_result(ctx, row, succeeded=True)
    return row


async def _fail(ctx: Context, row: PaymentRow, code: str, reason: str, *, status: PaymentStatus = S.failed,
                actor: str | None = None) -> PaymentRow:  # fmt: skip
    """Failed or cancelled: the limit usage it charged is given back (§4), and it says so."""
    periods = _periods(row)
    if periods and row.view.payer_account_id is not None:
        await store.charge(ctx.conn, row.view.payer_account_id, periods, -(row.view.amount + row.view.fee))
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=status, failure_code=str(code),
                                     failure_reason=reason, expires_at=None, charged_periods=[])  # fmt: skip
    if status == S.cancelled:
        await ctx.emit(c.PaymentCancelled(**_fact(row, ctx.now), actor=actor or "system", reason=reason))
    else:
        await ctx.emit(c.PaymentFailed(**_fact(row, ctx.now), code=str(code), reason=reason))
    if row.view.refund_of is not None:
        await _release_refund_reservation(ctx, row)
    await _standing_order_result(ctx, row, succeeded=False)
    return row


async def _fail_and_release(ctx: Context, row: PaymentRow, code: str, reason: str, *,
                            status: PaymentStatus = S.failed, actor: str | None = None) -> Reply | Deferred:  # fmt: skip
    """Fail (or cancel) a payment whose funds are held, and void the hold; the answer follows the void."""
    row = await _fail(ctx, row, code, reason, status=status, actor=actor)
    return await _ask_ledger(ctx, row, "void", domain.void_transfers(_holds(row)))


# --- the checker, the maker and the partner ---------------------------------------------------------


async def approve_payment(ctx: Context, cmd: c.ApprovePayment) -> Reply | Deferred:
    checked = await _checker(ctx, cmd)
    if isinstance(checked, Reply):
        return checked
    row, approver = checked
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, approver=approver, expires_at=None)
    await ctx.emit(c.PaymentApproved(**_fact(row, ctx.now), approver=approver))
    if row.view.kind in EXTERNAL_KINDS:
        return _answer(await _release_to_rail(ctx, row))
    return await _ask_ledger(ctx, row, "post_hold", domain.post_transfers(_holds(row)))


async def reject_payment(ctx: Context, cmd: c.RejectPayment) -> Reply | Deferred:
    checked = await _checker(ctx, cmd)
    if isinstance(checked, Reply):
        return checked
    row, checker = checked
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, approver=checker)
    return await _fail_and_release(ctx, row, "rejected", cmd.reason)


async def _checker(ctx: Context, cmd: c.ApprovePayment | c.RejectPayment) -> tuple[PaymentRow, str] | Reply:
    """The payment waiting for a checker, locked, and the checker, who may decide it (not its maker)."""
    row = await _awaiting_approval(ctx, cmd.payment_id)
    if isinstance(row, Reply):
        return row
    checker = _subject(ctx.actor, cmd.actor)
    if refusal := domain.check_approver(row.view.maker, checker, _permissions(ctx.actor, cmd.permissions)):
        return refuse(refusal)
    return row, checker


def _permissions(actor: Actor | None, claimed: list[str]) -> list[str]:
    """The edge states the checker's permissions; an internal service (no actor) is trusted as is,
    and a partner may never approve."""
    if actor is not None and actor.via == "partner":
        return []
    return claimed


async def _awaiting_approval(ctx: Context, payment_id: UUID) -> PaymentRow | Reply:
    if (denied := not_for_customers(ctx.actor)) is not None:
        return denied
    row = await store.get_payment(ctx.conn, payment_id, for_update=True)
    if row is None:
        return not_found(payment_id)
    if row.view.status != S.pending or not row.needs_approval or row.view.approver is not None:
        return Reply.refusal(E.invalid_transition, f"payment {payment_id} is not waiting for approval ({row.view.status})")
    return row


async def cancel_payment(ctx: Context, cmd: c.CancelPayment) -> Reply | Deferred:
    row = await store.get_payment(ctx.conn, cmd.payment_id, for_update=True)
    if row is None:
        return not_found(cmd.payment_id)
    if denied := owner_only(ctx.actor, row.customer_id):
        return denied
    if row.view.status == S.initiated:
        # The ledger is still answering the first step; a cancel now could race the hold.
        return Reply.refusal(E.invalid_transition, "the payment is being placed; try again in a moment")
    if isinstance(refusal := domain.transition(row.view.status, Step.cancel), Refusal):
        return refuse(refusal)
    return await _fail_and_release(ctx, row, "cancelled", cmd.reason, status=S.cancelled, actor=_subject(ctx.actor, cmd.actor))


async def settle_payment(ctx: Context, cmd: c.SettlePayment) -> Reply | Deferred:
    row = await _partner_answer(ctx, cmd.payment_id, cmd.partner_reference, S.completed)
    if isinstance(row, Reply):
        return row
    return await _ask_ledger(ctx, row, "post_hold", domain.post_transfers(_holds(row)))


async def reject_external_payment(ctx: Context, cmd: c.RejectExternalPayment) -> Reply | Deferred:
    row = await _partner_answer(ctx, cmd.payment_id, cmd.partner_reference, S.failed)
    if isinstance(row, Reply):
        return row
    return await _fail_and_release(ctx, row, "rejected_by_partner", cmd.reason)


async def _partner_answer(ctx: Context, payment_id: UUID, reference: str, outcome: PaymentStatus) -> PaymentRow | Reply:
    """The payment the partner answers for, marked answered; or the reply when there is nothing to do."""
    row = await _partner_payment(ctx, payment_id)
    if isinstance(row, Reply):
        return row
    v = row.view
    if row.partner is not None and v.partner_reference == reference and v.status in (outcome, S.processing):
        return _answer(row)  # the partner repeated itself (its first answer may still be with the ledger)
    if v.status != S.processing or row.partner is not None:
        return Reply.refusal(E.invalid_transition, f"payment {payment_id} is {v.status}, not awaiting settlement")
    return await store.update_payment(ctx.conn, v.payment_id, ctx.now, partner_reference=reference,
                                      partner=ctx.broker_user or "internal")  # fmt: skip


async def _partner_payment(ctx: Context, payment_id: UUID) -> PaymentRow | Reply:
    if ctx.actor is not None and ctx.actor.via != "partner" and (denied := not_for_customers(ctx.actor)):
        return denied
    row = await store.get_payment(ctx.conn, payment_id, for_update=True)
    if row is None or row.view.kind not in EXTERNAL_KINDS:
        return not_found(payment_id)
    return row


async def incoming_credit(ctx: Context, cmd: c.IncomingCredit) -> Reply | Deferred:
    if (denied := not_for_customers(ctx.actor)) is not None:
        return denied
    if cmd.rail not in EXTERNAL_KINDS:
        return Reply.refusal(E.invalid_payee, f"{cmd.rail} is not a clearing rail")
    partner = ctx.broker_user or "internal"
    existing = await store.incoming_by_reference(ctx.conn, partner, cmd.partner_reference)
    if existing is not None:
        same = (existing.view.amount, existing.view.currency, existing.view.description) == (cmd.amount, cmd.currency, cmd.description)
        if same:
            return _answer(existing)  # the partner repeated itself: credited once
        return Reply.refusal(E.partner_reference_conflict, f"reference {cmd.partner_reference} was used for another credit")
    account = await store.account_by_number(ctx.conn, cmd.payee_account_number)
    if account is None:
        return Reply.refusal(E.account_not_found, "no such account number")
    if (answer := _usable(None, account, account.account_id, cmd.currency, paying=False)) is not None:
        return answer
    payment_id = domain.transfer_id(account.account_id, f"incoming:{partner}:{cmd.partner_reference}")
    view = c.PaymentView(
        payment_id=payment_id, reference=domain.reference(K.incoming, ctx.now, random8()), kind=K.incoming,
        channel=c.Channel.api, status=S.initiated, payee=c.Payee(account_id=account.account_id), amount=cmd.amount,
        fee=0, currency=cmd.currency, fraud_score=domain.FRAUD_BASE, fraud_level=c.FraudLevel.low, refunded_amount=0,
        maker=partner, partner_reference=cmd.partner_reference, description=cmd.description,
        created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    row = PaymentRow(view=view, payee_account_id=account.account_id, customer_id=account.customer_id,
                     needs_approval=False, charged_periods=[], refund_reserved=0, standing_order_id=None,
                     expires_at=None, completed_at=None, failure_reason=None, partner=partner)  # fmt: skip
    await store.insert_payment(ctx.conn, row)
    await ctx.emit(c.PaymentInitiated(**_fact(row, ctx.now), fee=0, fraud_score=view.fraud_score, fraud_level=view.fraud_level))
    transfers = domain.incoming_transfers(payment_id, view.reference, view.currency, rail=cmd.rail,
                                          account=account.account_id, amount=cmd.amount)  # fmt: skip
    return await _ask_ledger(ctx, row, "post", transfers)


# --- refunds and reversals ---------------------------------------------------------------------------


async def refund_payment(ctx: Context, cmd: c.RefundPayment) -> Reply | Deferred:
    return await _give_back(ctx, cmd.refund_id, cmd.payment_id, cmd.amount, cmd.actor, cmd.reason, reversal=False)


async def reverse_payment(ctx: Context, cmd: c.ReversePayment) -> Reply | Deferred:
    if (denied := not_for_customers(ctx.actor)) is not None:
        return denied
    return await _give_back(ctx, cmd.reversal_id, cmd.payment_id, None, cmd.actor, cmd.reason, reversal=True)


async def _give_back(ctx: Context, new_id: UUID, original_id: UUID, amount: int | None, actor: str, reason: str,
                     *, reversal: bool) -> Reply | Deferred:  # fmt: skip
    kind = K.reversal if reversal else K.refund
    existing = await store.get_payment(ctx.conn, new_id)
    if existing is not None:
        if existing.view.refund_of == original_id and existing.view.kind == kind:
            return _answer(existing)
        return Reply.refusal(E.payment_exists, f"payment {new_id} exists with other fields")
    original = await store.get_payment(ctx.conn, original_id, for_update=True)
    if original is None:
        return not_found(original_id)
    o = original.view
    # The money comes back from the payee: a customer may refund only what they received.
    if ctx.actor is not None and ctx.actor.is_customer:
        if o.kind in EXTERNAL_KINDS:
            return Reply.refusal(E.forbidden, "refunds of external payments are staff work")
        if denied := owner_only(ctx.actor, await _owner_of(ctx, original.payee_account_id)):
            return denied
    amount = amount if amount is not None else o.amount - original.refund_reserved
    if reversal and original.refund_reserved:
        return Reply.refusal(E.not_refundable, "a payment partly refunded is corrected by refunds, not reversed")
    if amount <= 0:
        return Reply.refusal(E.refund_exceeds_amount, "nothing is left to refund", {"remaining": 0})
    target = domain.RefundTarget(kind=o.kind, status=o.status, amount=o.amount, currency=o.currency,
                                 refunded_amount=original.refund_reserved, completed_at=original.completed_at)  # fmt: skip
    if refusal := domain.check_refund(target, amount, o.currency, ctx.now):
        return refuse(refusal)
    assert o.payer_account_id is not None, "refundable payments have a payer"
    view = c.PaymentView(
        payment_id=new_id, reference=domain.reference(kind, ctx.now, random8()), kind=kind, channel=o.channel,
        status=S.initiated, payer_account_id=original.payee_account_id, payee=c.Payee(account_id=o.payer_account_id),
        amount=amount, fee=o.fee if reversal else 0, currency=o.currency, fraud_score=domain.FRAUD_BASE,
        fraud_level=c.FraudLevel.low, refund_of=original_id, refunded_amount=0, maker=_subject(ctx.actor, actor),
        description=reason[:140], created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    row = PaymentRow(view=view, payee_account_id=o.payer_account_id, customer_id=original.customer_id,
                     needs_approval=False, charged_periods=[], refund_reserved=0, standing_order_id=None,
                     expires_at=None, completed_at=None, failure_reason=None, partner=None)  # fmt: skip
    await store.insert_payment(ctx.conn, row)
    # Reserved now, so two concurrent refunds can never give back more than the amount.
    await store.update_payment(ctx.conn, original_id, ctx.now, refund_reserved=original.refund_reserved + amount)
    await ctx.emit(c.PaymentInitiated(**_fact(row, ctx.now), fee=view.fee, fraud_score=view.fraud_score, fraud_level=view.fraud_level))
    transfers = domain.refund_transfers(new_id, view.reference, o.currency, original_kind=o.kind,
                                        original_payer=o.payer_account_id, original_payee=original.payee_account_id,
                                        amount=amount, fee=view.fee, reversal=reversal)  # fmt: skip
    return await _ask_ledger(ctx, row, "reverse" if reversal else "refund", transfers)


async def _owner_of(ctx: Context, account_id: UUID | None) -> UUID | None:
    account = await store.get_account(ctx.conn, account_id) if account_id else None
    return account.customer_id if account else None


async def _refund_posted(ctx: Context, row: PaymentRow, refusal: Refusal | None) -> Reply:
    if row.view.status != S.initiated:
        return _answer(row)
    if refusal is not None:
        row = await _fail(ctx, row, refusal.code, refusal.message)  # gives the reservation back
        return refuse(Refusal(refusal.code, refusal.message, {**(refusal.details or {}), "payment": _json(row)}))
    row = await store.update_payment(ctx.conn, row.view.payment_id, ctx.now, status=S.completed, completed_at=ctx.now)
    assert row.view.refund_of is not None
    original = await store.get_payment(ctx.conn, row.view.refund_of, for_update=True)
    assert original is not None
    refunded = original.view.refunded_amount + row.view.amount
    changes: dict[str, Any] = {"refunded_amount": refunded}
    if refunded == original.view.amount:
        changes["status"] = S.refunded
    original = await store.update_payment(ctx.conn, original.view.payment_id, ctx.now, **changes)
    await ctx.emit(c.PaymentCompleted(**_fact(row, ctx.now), fee=row.view.fee))
    await ctx.emit(c.PaymentRefunded(**_fact(original, ctx.now), refund_id=row.view.payment_id,
                                     refund_amount=row.view.amount, refunded_amount=refunded))  # fmt: skip
    return _answer(row)


async def _release_refund_reservation(ctx: Context, refund: PaymentRow) -> None:
    assert refund.view.refund_of is not None
    original = await store.get_payment(ctx.conn, refund.view.refund_of, for_update=True)
    assert original is not None
    await store.update_payment(ctx.conn, original.view.payment_id, ctx.now,
                               refund_reserved=original.refund_reserved - refund.view.amount)  # fmt: skip


# --- reads --------------------------------------------------------------------------------------------


async def get_payment(ctx: Context, cmd: c.GetPayment) -> Reply:
    row = await store.get_payment(ctx.conn, cmd.payment_id)
    if row is None:
        return not_found(cmd.payment_id)
    if ctx.actor is not None and ctx.actor.is_customer:
        # Either side of a payment may read it.
        owners = {row.customer_id, await _owner_of(ctx, row.payee_account_id)}
        if ctx.actor.customer_id not in owners:
            return Reply.refusal("not_owner", "this belongs to another customer")
    return Reply.success(row.view)


async def list_account_payments(ctx: Context, cmd: c.ListAccountPayments) -> Reply:
    if denied := owner_only(ctx.actor, await _owner_of(ctx, cmd.account_id)):
        return denied
    after = decode_time_id(cmd.cursor) if cmd.cursor is not None else None
    if cmd.cursor is not None and after is None:
        return Reply.refusal(ErrorCode.invalid_message, "cursor is not one this service issued")
    found = await store.account_payments(ctx.conn, cmd.account_id, after=after, limit=cmd.limit + 1)
    page, cursor = page_of(found, cmd.limit, lambda p: (p.created_at.isoformat(), p.payment_id))
    return Reply.success(c.PaymentPage(items=page, next_cursor=cursor))


# --- payees -------------------------------------------------------------------------------------------


async def add_payee(ctx: Context, cmd: c.AddPayee) -> Reply:
    payee = domain.normalize_payee(cmd.payee)
    if isinstance(payee, Refusal):
        return refuse(payee)
    existing = await store.get_payee(ctx.conn, cmd.payee_id)
    if existing is not None:
        if (existing.customer_id, existing.payee) == (cmd.customer_id, payee):
            return Reply.success(existing)  # a retry
        return Reply.refusal(E.payee_exists, f"payee {cmd.payee_id} exists with other fields")
    if await store.count_payees(ctx.conn, cmd.customer_id) >= MAX_PAYEES:
        return Reply.refusal(E.limit_exceeded, f"a customer keeps at most {MAX_PAYEES} payees", {"limit": "payees"})
    view = c.PayeeView(payee_id=cmd.payee_id, customer_id=cmd.customer_id, payee=payee, added_at=ctx.now)
    await store.insert_payee(ctx.conn, view)
    await ctx.emit(c.PayeeAdded(payee_id=view.payee_id, customer_id=view.customer_id, payee=payee, occurred_at=ctx.now))
    return Reply.success(view)


async def list_payees(ctx: Context, cmd: c.ListPayees) -> Reply:
    return Reply.success(c.PayeePage(items=await store.customer_payees(ctx.conn, cmd.customer_id, MAX_PAYEES)))


# --- helpers ----------------------------------------------------------------------------------------


def _answer(row: PaymentRow) -> Reply:
    return Reply.success(row.view)


def _json(row: PaymentRow) -> dict[str, Any]:
    return row.view.model_dump(mode="json")


def _fact(row: PaymentRow, now: datetime) -> dict[str, Any]:
    v = row.view
    return {
        "payment_id": v.payment_id, "reference": v.reference, "kind": v.kind, "payer_account_id": v.payer_account_id,
        "payee_account_id": row.payee_account_id, "customer_id": row.customer_id, "amount": v.amount,
        "currency": v.currency, "status": v.status, "occurred_at": now,
    }  # fmt: skip


# --- what the payment worker learns from the account worker ------------------------------------------


async def on_account_fact(ctx: Context, event: Any) -> None:
    """account.opened / frozen / unfrozen / closed: the newest status (and, on opening, the limits)."""
    await store.record_account(ctx.conn, event.model_dump(), event.occurred_at)


ACCOUNT_EVENTS = (
    account_events.AccountOpened,
    account_events.AccountFrozen,
    account_events.AccountUnfrozen,
    account_events.AccountClosed,
)


# --- duties: sweeps of due payments (every replica; row locks share the work) --------------------------


def duty_context(ctx_conn: Any, now: datetime, what: str) -> Context:
    """A context for work no message asked for: its steps answer nobody (reply_to is None)."""
    return Context(conn=ctx_conn, worker="payment", consumer=f"payment.{what}", message_id=f"{what}:{now.isoformat()}",
                   correlation_id=None, reply_to=None, actor=None, broker_user=None, now=now)  # fmt: skip


async def sweep_due_payments(conn: Any, now: datetime) -> int:
    """Approvals expired → failed; settlements timed out → failed; rail windows opened → submitted."""
    due = await store.due_payments(conn, now, SWEEP_BATCH)
    for row in due:
        # Each payment its own step id: the duty's message id carries the payment and the action.
        if row.expires_at is not None and row.expires_at <= now:
            code = "approval_expired" if row.view.status == S.pending else "settlement_timeout"
            ctx = duty_context(conn, now, f"expire:{row.view.payment_id}")
            await _fail_and_release(ctx, row, code, "approval expired" if code == "approval_expired"
                                    else "the clearing partner did not answer in time")  # fmt: skip
        else:
            await _release_to_rail(duty_context(conn, now, f"window:{row.view.payment_id}"), row)
    return len(due)


async def _standing_order_result(ctx: Context, row: PaymentRow, *, succeeded: bool) -> None:
    if row.standing_order_id is not None:
        await standing_orders.occurrence_finished(ctx, row, succeeded=succeeded)


SCHEDULER_BATCH = 50  # standing orders per scheduler transaction
OCCURRENCES_PER_RUN = 12  # per order and run; a longer catch-up continues on the next run


async def run_due_standing_orders(conn: Any, now: datetime) -> int:
    """Place every occurrence due by the scheduler's today, each once: the order row is locked
    (SKIP LOCKED: another replica takes other orders) and the occurrence's payment id is derived
    from the order, the nominal date and the attempt."""
    today = standing_orders.scheduler_today(now)
    due_orders = await store.due_standing_orders(conn, today, SCHEDULER_BATCH)
    for order in due_orders:
        occurrences = standing_orders.occurrences_due(order, today, OCCURRENCES_PER_RUN)
        for occurrence in occurrences:
            await _place_occurrence(conn, now, today, order, occurrence)
        await standing_orders.advance(duty_context(conn, now, f"so:{order.view.standing_order_id}"), order,
                                      occurrences, today)  # fmt: skip
    return len(due_orders)


async def _place_occurrence(conn: Any, now: datetime, today: Any, order: store.StandingOrderRow, occurrence: Any) -> None:
    v = order.view
    payment_id = schedule.occurrence_payment_id(v.standing_order_id, occurrence.nominal, occurrence.attempt)
    if not await store.insert_occurrence(conn, payment_id, v.standing_order_id, occurrence.nominal, occurrence.attempt, today):
        return  # placed by an earlier run
    ctx = duty_context(conn, now, f"occurrence:{payment_id}")
    placed = Order(
        payment_id=payment_id, kind=v.kind, channel=c.Channel.scheduler, payer_account_id=v.payer_account_id,
        payee=v.payee, payee_id=None, amount=v.amount, currency=v.currency,
        description=f"standing order {occurrence.nominal.isoformat()}", maker=order.actor,
        standing_order_id=v.standing_order_id,
    )  # fmt: skip
    answer = await place(ctx, placed)
    if isinstance(answer, Reply) and not answer.ok:
        # Refused before the ledger was asked (limits, a closed account, …): a failed attempt.
        await store.record_occurrence_result(conn, payment_id, False)
        exists = await store.get_payment(conn, payment_id) is not None
        await standing_orders.occurrence_result(
            ctx, v.standing_order_id, occurrence.nominal, occurrence.attempt, today, succeeded=False,
            code=answer.error.code if answer.error else None, payment_id=payment_id if exists else None,
        )  # fmt: skip
