"""Placing a payment order: every way of placing one (a command, the scheduler) admits it the same
way (the parties, limits, screening, the watch list), stores it, and asks the ledger for its first
step. The ledger's answer is taken in `lifecycle.py`; a refund placed as a payment goes to `refunds.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from bus.actor import PARTNER, not_for_customers
from bus.handling import Context, Deferred
from contracts import ledger
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import EXTERNAL_KINDS, PaymentError, PaymentKind, PaymentStatus
from workers.payment import store
from workers.payment.domain.orders import (
    ATM_MONTH,
    DEBIT_KINDS,
    BankCalendar,
    Refusal,
    atm_period,
    atm_withdrawal_fee,
    branch_withdrawal_fee,
    check_different_accounts,
    check_limits,
    check_order_shape,
    check_rail_amount,
    execute_at,
    limit_periods,
    normalize_payee,
    payment_fee,
    reference,
    step_up_refusal,
)
from workers.payment.domain.screening import FRAUD_BASE, Screening, matches, screen
from workers.payment.domain.transfers import cash_transfers, internal_transfers, words_of
from workers.payment.handlers import calendar, lifecycle
from workers.payment.handlers.lifecycle import (
    ask_ledger,
    fact_fields,
    holds_for,
    random8,
    refuse,
    reply_with,
    subject_of,
    believes_verified,
    usable,
    usage_periods,
)
from workers.payment.handlers.refunds import refund_payment
from workers.payment.store import KnownAccount, PaymentRow

K, S, E = PaymentKind, PaymentStatus, PaymentError


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
                                 actor=cmd.actor, reason=cmd.description or "refund", verified=cmd.verified)  # fmt: skip
        return await refund_payment(ctx, refund)
    order = Order(
        payment_id=cmd.payment_id, kind=cmd.kind, channel=cmd.channel, payer_account_id=cmd.payer_account_id,
        payee=cmd.payee, payee_id=cmd.payee_id, amount=cmd.amount, currency=cmd.currency,
        description=cmd.description, maker=subject_of(ctx.actor, cmd.actor),
    )  # fmt: skip
    existing = await store.get_payment(ctx.conn, order.payment_id)
    if existing is None:  # a placed order is answered as it is
        actor = ctx.actor
        refusal = step_up_refusal(cmd.kind, cmd.channel, cmd.amount, by_customer=actor is not None and actor.is_customer,
                                  by_partner=actor is not None and actor.via == PARTNER,
                                  verified=cmd.verified and believes_verified(actor),
                                  threshold=lifecycle.CONFIG.step_up_threshold)  # fmt: skip
        if refusal is not None:
            return refuse(refusal)
    return await place(ctx, order, existing)


async def place(ctx: Context, order: Order, existing: PaymentRow | None) -> Reply | Deferred:
    """Admit and store a new order; one already placed under its id (`existing`, looked up in
    this transaction) is answered as it is, or refused when the fields differ."""
    if existing is not None:
        if order.same_as(existing):
            return reply_with(existing)
        return Reply.refusal(E.payment_exists, f"payment {order.payment_id} exists with other fields")
    admitted = await admit(ctx, order)
    if isinstance(admitted, Reply):
        return admitted
    row = admitted
    await store.insert_payment(ctx.conn, row, charge=usage_periods(row))
    if _at_atm(order):  # counted, whatever the amount; given back if it fails (lifecycle.fail_payment)
        await store.charge(ctx.conn, row.view.payer_account_id, atm_period(row.view.created_at), 1)
    await ctx.emit(c.PaymentInitiated(**fact_fields(row, ctx.now), fee=row.view.fee, fraud_score=row.view.fraud_score,
                                      fraud_level=row.view.fraud_level))  # fmt: skip
    return await _first_ledger_step(ctx, row)


async def admit(ctx: Context, order: Order) -> PaymentRow | Reply:
    """Every check before money is asked for; the payer account stays locked to the commit."""
    parties = await _parties(ctx, order)
    if isinstance(parties, Reply):
        return parties
    payee, payer, payee_account = parties
    periods = limit_periods(order.kind, ctx.now)
    counted = {**periods, **atm_period(ctx.now)} if _at_atm(order) else periods
    used, recent = await store.activity(ctx.conn, payer.account_id, counted, ctx.now - timedelta(hours=1)) if payer else ({}, 0)
    fee = _fee(order, payer, used)
    if refusal := check_rail_amount(order.kind, order.amount, upi_used_today=used.get("upi_day", 0)):
        return refuse(refusal)
    if payer is not None and (refusal := _check_limits(order, payer, used, order.amount + fee)):
        return refuse(refusal)
    saved_payee = await _saved_payee(ctx, order, payer)
    if isinstance(saved_payee, Reply):
        return saved_payee
    screening = screen(order.amount, now=ctx.now, payee_added_at=saved_payee, payments_last_hour=recent)
    if order.kind not in DEBIT_KINDS:
        # Money coming in (a teller's deposit) is not a payment out: nothing to score or approve.
        screening = Screening(FRAUD_BASE, c.FraudLevel.low, (), approval_required=False)
    if isinstance(screening, Refusal):
        details = screening.details or {}
        score, level, rules = int(details["score"]), c.FraudLevel.critical, tuple(details["rules"])
    else:
        score, level, rules = screening.score, screening.level, screening.rules
    watch_hits = matches(lifecycle.CONFIG.watch_list, payee)
    view = c.PaymentView(
        payment_id=order.payment_id, reference=reference(order.kind, ctx.now, random8()),
        kind=order.kind, channel=order.channel, status=S.initiated, payer_account_id=order.payer_account_id,
        payee=payee, amount=order.amount, fee=fee, currency=order.currency, fraud_score=score, fraud_level=level,
        refunded_amount=0, maker=order.maker, description=order.description,
        execute_at=execute_at(order.kind, ctx.now, await _calendar_for(ctx, order.kind)), created_at=ctx.now,
        updated_at=ctx.now,
    )  # fmt: skip
    owner = payer or payee_account
    row = PaymentRow(
        view=view, payee_account_id=payee.account_id if payee else None,
        customer_id=owner.customer_id if owner else None,
        # A watch-list hit holds the order for a checker, whatever its score.
        needs_approval=bool(watch_hits) or (isinstance(screening, Screening) and screening.approval_required),
        charged_periods=list(periods), refund_reserved=0, standing_order_id=order.standing_order_id,
        expires_at=None, completed_at=None, failure_reason=None, partner=None,
    )  # fmt: skip
    if rules + watch_hits:
        await ctx.emit(c.ScreeningHit(**fact_fields(row, ctx.now), rules=list(rules + watch_hits), fraud_score=score,
                                      fraud_level=level))  # fmt: skip
    if isinstance(screening, Refusal):
        # Critical: refused at once, and kept as a failed payment so the refusal can be reviewed.
        failed = replace(row, view=view.model_copy(update={"status": S.failed, "failure_code": E.fraud_suspected}),
                         charged_periods=[], failure_reason=screening.message)  # fmt: skip
        await store.insert_payment(ctx.conn, failed)
        await ctx.emit(c.PaymentFailed(**fact_fields(failed, ctx.now), code=E.fraud_suspected, reason=screening.message))
        return refuse(screening)
    return row


Parties = tuple["c.Payee | None", "KnownAccount | None", "KnownAccount | None"]


async def _parties(ctx: Context, order: Order) -> Parties | Reply:
    """The order's shape, who may place it, and both accounts usable: (payee, payer, payee account)."""
    if refusal := check_order_shape(order.kind, order.payer_account_id, order.payee):
        return refuse(refusal)
    if order.kind in (K.cash_deposit, K.cash_withdrawal) and not_for_customers(ctx.actor):
        return Reply.refusal(E.forbidden, "cash is handled by tellers")
    payee = normalize_payee(order.payee)
    if isinstance(payee, Refusal):
        return refuse(payee)
    payer = payee_account = None
    if order.payer_account_id is not None:
        # Locked: limits are checked and charged under this lock, so concurrent orders queue here.
        payer = await store.get_account(ctx.conn, order.payer_account_id, for_update=True)
        if (answer := usable(ctx.actor, payer, order.payer_account_id, order.currency, paying=True)) is not None:
            return answer
    if payee is not None and payee.account_id is not None:
        payee_account = await store.get_account(ctx.conn, payee.account_id)
        if (answer := usable(None, payee_account, payee.account_id, order.currency, paying=False)) is not None:
            return answer
        if refusal := check_different_accounts(order.payer_account_id, payee.account_id):
            return refuse(refusal)
    return payee, payer, payee_account


def _at_atm(order: Order) -> bool:
    return order.kind == K.cash_withdrawal and order.channel == c.Channel.atm


def _fee(order: Order, payer: KnownAccount | None, used: dict[str, int]) -> int:
    if _at_atm(order):
        assert payer is not None, "a withdrawal has a payer"
        return atm_withdrawal_fee(payer.free_atm_withdrawals, payer.atm_fee, used.get(ATM_MONTH, 0))
    if order.kind == K.cash_withdrawal and order.channel == c.Channel.branch:
        return branch_withdrawal_fee(order.amount)
    return payment_fee(order.kind, order.amount)


def _check_limits(order: Order, payer: KnownAccount, used: dict[str, int], amount: int) -> Refusal | None:
    """The product's limits, when the account worker told us them (an account opened before limits
    were published carries none, and is bounded by the ledger's balance alone)."""
    daily_limit = payer.daily_cash_withdrawal_limit if order.kind == K.cash_withdrawal else payer.daily_payments_out_limit
    if daily_limit is None or payer.monthly_debit_limit is None:
        return None
    daily_used = used.get("cash_day" if order.kind == K.cash_withdrawal else "day", 0)
    return check_limits(amount, used_daily=daily_used, used_monthly=used.get("month", 0),
                        daily_limit=daily_limit, monthly_limit=payer.monthly_debit_limit)  # fmt: skip


async def _saved_payee(ctx: Context, order: Order, payer: KnownAccount | None) -> datetime | None | Reply:
    """When the order names a saved payee: its added_at (for the score), or a refusal."""
    if order.payee_id is None:
        return None
    saved = await store.get_payee(ctx.conn, order.payee_id)
    if saved is None or payer is None or saved.customer_id != payer.customer_id:
        return Reply.refusal(E.payee_not_found, f"no payee {order.payee_id} of this customer")
    cooling_off = lifecycle.CONFIG.payee_cooling_off
    if ctx.now - saved.added_at < cooling_off:
        ready = saved.added_at + cooling_off
        return Reply.refusal(E.payee_cooling_off, "a new payee can be paid after its cooling-off period",
                             {"payable_from": ready.isoformat()})  # fmt: skip
    return saved.added_at


async def _first_ledger_step(ctx: Context, row: PaymentRow) -> Reply | Deferred:
    """Internal and cash orders post at once; approvals and external rails hold first."""
    if row.needs_approval or row.view.kind in EXTERNAL_KINDS:
        config = lifecycle.CONFIG
        timeout_s = int((config.approval_ttl if row.needs_approval else config.settlement_timeout).total_seconds())
        # The ledger's own timeout is a safety net behind ours: the hold outlives the longest wait.
        transfers = holds_for(row, timeout_s=timeout_s * 2 + 86_400)
        return await ask_ledger(ctx, row, "hold", transfers)
    return await ask_ledger(ctx, row, "post", _single_phase(row))


def _single_phase(row: PaymentRow) -> list[ledger.NewTransfer]:
    v = row.view
    if v.kind in (K.cash_deposit, K.cash_withdrawal):
        account = v.payee.account_id if v.kind == K.cash_deposit else v.payer_account_id  # type: ignore[union-attr]
        assert account is not None
        return cash_transfers(v.payment_id, words_of(v), v.currency, kind=v.kind, account=account,
                              amount=v.amount, fee=v.fee)  # fmt: skip
    assert v.payer_account_id is not None and row.payee_account_id is not None
    return internal_transfers(v.payment_id, words_of(v), v.currency, payer=v.payer_account_id,
                              payee=row.payee_account_id, amount=v.amount, fee=v.fee)  # fmt: skip


async def _calendar_for(ctx: Context, kind: PaymentKind) -> BankCalendar:
    """RTGS runs on business days only: the holidays the day worker published (one read, for it alone)."""
    return await calendar.bank_calendar(ctx.conn) if kind == PaymentKind.rtgs else BankCalendar()
