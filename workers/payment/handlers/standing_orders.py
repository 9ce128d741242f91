"""Standing orders: the commands that create, read and cancel them, and what an occurrence's
result does to its order (banking-rules §4; the schedule's rules are in `domain/schedule.py`).

The scheduler itself (`duties.run_due_standing_orders`) places occurrences as payments; this
module only keeps the order's state. Dates are business dates: "today" is the day worker's open
business date and the holidays are its calendar, both learned from its events (handlers/calendar.py).
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from bus.actor import owner_only
from bus.handling import Context
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import PaymentError, StandingOrderStatus
from workers.payment import store
from workers.payment.domain import schedule
from workers.payment.domain.orders import (
    BankCalendar,
    Refusal,
    check_different_accounts,
    check_order_shape,
    normalize_payee,
)
from workers.payment.handlers import calendar
from workers.payment.store import PaymentRow, StandingOrderRow

E = PaymentError
MAX_LISTED = 500


def not_found(standing_order_id: UUID) -> Reply:
    return Reply.refusal(E.standing_order_not_found, f"no standing order {standing_order_id}")


async def create_standing_order(ctx: Context, cmd: c.CreateStandingOrder) -> Reply:
    existing = await store.get_standing_order(ctx.conn, cmd.standing_order_id)
    if existing is not None:
        v = existing.view
        if (v.payer_account_id, v.amount, v.frequency, v.start_date) == (cmd.payer_account_id, cmd.amount, cmd.frequency, cmd.start_date):
            return Reply.success(v)
        return Reply.refusal(E.standing_order_exists, f"standing order {cmd.standing_order_id} exists with other fields")
    payer = await store.get_account(ctx.conn, cmd.payer_account_id)
    if payer is None:
        return Reply.refusal(E.account_not_found, f"no account {cmd.payer_account_id} known to payments")
    if denied := owner_only(ctx.actor, payer.customer_id):
        return denied
    if payer.status != "active":
        # A frozen, dormant or closed account pays nothing: refused now, not at every occurrence.
        return Reply.refusal(E.account_not_active, f"account {payer.account_id} is {payer.status}")
    if payer.currency != cmd.currency:
        return Reply.refusal(E.currency_mismatch, f"account {payer.account_id} is in {payer.currency}")
    today = await calendar.today(ctx.conn)
    if today is None:
        return calendar.UNKNOWN
    cal = await calendar.bank_calendar(ctx.conn)
    payee = normalize_payee(cmd.payee)
    refusal = (
        schedule.validate_standing_order(cmd.start_date, cmd.end_date, today, cmd.frequency, cmd.amount, cmd.kind)
        or check_order_shape(cmd.kind, cmd.payer_account_id, cmd.payee)
        or (payee if isinstance(payee, Refusal) else check_different_accounts(cmd.payer_account_id, payee.account_id))
    )
    if refusal is not None:
        return Reply.refusal(refusal.code, refusal.message, refusal.details)
    assert not isinstance(payee, Refusal)
    view = c.StandingOrderView(
        standing_order_id=cmd.standing_order_id, payer_account_id=cmd.payer_account_id, payee=payee, kind=cmd.kind,
        amount=cmd.amount, currency=cmd.currency, frequency=cmd.frequency, start_date=cmd.start_date,
        end_date=cmd.end_date, next_date=schedule.due_date(cmd.start_date, cal), failures=0,
        status=StandingOrderStatus.active, customer_id=payer.customer_id, created_at=ctx.now,
    )  # fmt: skip
    await store.insert_standing_order(ctx.conn, view, actor=ctx.actor.subject if ctx.actor else cmd.actor,
                                      next_due=schedule.due_date(cmd.start_date, cal))  # fmt: skip
    return Reply.success(view)


async def get_standing_order(ctx: Context, cmd: c.GetStandingOrder) -> Reply:
    row = await store.get_standing_order(ctx.conn, cmd.standing_order_id)
    if row is None:
        return not_found(cmd.standing_order_id)
    return owner_only(ctx.actor, row.view.customer_id) or Reply.success(row.view)


async def list_standing_orders(ctx: Context, cmd: c.ListStandingOrders) -> Reply:
    account = await store.get_account(ctx.conn, cmd.account_id)
    if denied := owner_only(ctx.actor, account.customer_id if account else None):
        return denied
    return Reply.success(c.StandingOrderPage(items=await store.account_standing_orders(ctx.conn, cmd.account_id, MAX_LISTED)))


async def cancel_standing_order(ctx: Context, cmd: c.CancelStandingOrder) -> Reply:
    row = await store.get_standing_order(ctx.conn, cmd.standing_order_id, for_update=True)
    if row is None:
        return not_found(cmd.standing_order_id)
    if denied := owner_only(ctx.actor, row.view.customer_id):
        return denied
    if row.view.status == StandingOrderStatus.cancelled:
        return Reply.success(row.view)  # a retry
    if row.view.status == StandingOrderStatus.ended:
        return Reply.refusal(E.invalid_transition, "the standing order has ended")
    row = await store.update_standing_order(ctx.conn, row.view.standing_order_id, ctx.now, status=StandingOrderStatus.cancelled)
    return Reply.success(row.view)


# --- what the scheduler decides, occurrence by occurrence ----------------------------------------


def occurrences_due(order: StandingOrderRow, today: date, limit: int, cal: BankCalendar) -> list[schedule.Occurrence]:
    """The retry owed (first: its nominal date is earlier), then every missed nominal date, in order."""
    due: list[schedule.Occurrence] = []
    if order.retry_on is not None and order.retry_nominal is not None and order.retry_on <= today:
        due.append(schedule.Occurrence(order.retry_nominal, order.retry_on, schedule.RETRY))
    if order.next_nominal is not None:
        v = order.view
        nominals = schedule.due_occurrences(start=v.start_date, frequency=v.frequency, end_date=v.end_date,
                                            next_nominal=order.next_nominal, today=today, calendar=cal,
                                            limit=max(limit - len(due), 1))  # fmt: skip
        due += [schedule.Occurrence.first(n, cal) for n in nominals]
    return due


async def advance(
    ctx: Context, order: StandingOrderRow, placed: list[schedule.Occurrence], today: date, cal: BankCalendar
) -> None:
    """After placing: the retry is spent, and the next nominal date moves past what was placed
    (or to none, when the schedule has nothing left before its end date)."""
    changes: dict[str, object] = {}
    if order.next_due is not None and order.next_due <= today and not any(o.attempt == schedule.FIRST for o in placed):
        changes.update(next_nominal=None, next_due=None)
    if any(o.attempt == schedule.RETRY for o in placed):
        changes.update(retry_on=None, retry_nominal=None)
    firsts = [o for o in placed if o.attempt == schedule.FIRST]
    if firsts:
        v = order.view
        nxt = schedule.next_nominal_after(v.start_date, v.frequency, v.end_date, firsts[-1].nominal)
        changes.update(next_nominal=nxt, next_due=schedule.due_date(nxt, cal) if nxt else None)
    current = await store.get_standing_order(ctx.conn, order.view.standing_order_id, for_update=True)
    assert current is not None
    retry_left = current.retry_on is not None and "retry_on" not in changes
    if "next_nominal" in changes and changes["next_nominal"] is None and not retry_left:
        if current.view.status == StandingOrderStatus.active:
            changes["status"] = StandingOrderStatus.ended
    if changes:
        await store.update_standing_order(ctx.conn, order.view.standing_order_id, ctx.now, **changes)


async def occurrence_finished(ctx: Context, payment: PaymentRow, *, succeeded: bool) -> None:
    """A placed occurrence completed or failed: count it (3 failures in a row suspend the order),
    and schedule the one retry a failed first attempt gets."""
    occurrence = await store.get_occurrence(ctx.conn, payment.view.payment_id)
    if occurrence is None or occurrence.succeeded is not None:
        return  # not an occurrence, or its result was already counted
    await store.record_occurrence_result(ctx.conn, payment.view.payment_id, succeeded)
    await occurrence_result(ctx, occurrence.standing_order_id, occurrence.nominal, occurrence.attempt,
                            occurrence.placed_on, succeeded=succeeded, code=payment.view.failure_code,
                            payment_id=payment.view.payment_id)  # fmt: skip


async def occurrence_result(ctx: Context, standing_order_id: UUID, nominal: date, attempt: int, tried_on: date, *,
                            succeeded: bool, code: str | None, payment_id: UUID | None) -> None:  # fmt: skip
    order = await store.get_standing_order(ctx.conn, standing_order_id, for_update=True)
    assert order is not None, "standing orders are never deleted"
    v = order.view
    if v.status in (StandingOrderStatus.suspended, StandingOrderStatus.cancelled):
        return  # nothing more will be placed; a late result changes nothing
    cal = await calendar.bank_calendar(ctx.conn)
    occ = schedule.Occurrence(nominal, schedule.due_date(nominal, cal), attempt)
    decision = schedule.after_result(schedule.Schedule(v.start_date, v.frequency, v.end_date), occ,
                                     failures=v.failures, succeeded=succeeded,
                                     today=max(tried_on, occ.due), calendar=cal)  # fmt: skip
    changes: dict[str, object] = {"failures": decision.failures}
    if decision.retry is not None:
        changes.update(retry_nominal=decision.retry.nominal, retry_on=decision.retry.due)
    if decision.suspended:
        changes["status"] = StandingOrderStatus.suspended
    elif order.next_nominal is None and decision.retry is None and order.retry_on is None:
        changes["status"] = StandingOrderStatus.ended
    elif decision.retry is not None and v.status == StandingOrderStatus.ended:
        changes["status"] = StandingOrderStatus.active
    order = await store.update_standing_order(ctx.conn, standing_order_id, ctx.now, **changes)
    if not succeeded:
        await ctx.emit(c.StandingOrderFailed(
            standing_order_id=standing_order_id, payer_account_id=v.payer_account_id, due_date=occ.due,
            amount=v.amount, currency=v.currency, code=code or "failed", failures=decision.failures,
            suspended=decision.suspended, payment_id=payment_id, occurred_at=ctx.now,
        ))  # fmt: skip
