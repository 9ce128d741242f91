"""The background duties every replica runs: the sweep of due payments (approvals expired,
settlements timed out, rail windows opened) and the standing-order scheduler."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from bus import handling
from bus.handling import Context
from contracts import payment as c
from contracts.common import Reply
from contracts.payment import PaymentStatus
from workers.payment import store
from workers.payment.domain import schedule
from workers.payment.handlers import calendar, standing_orders
from workers.payment.handlers.lifecycle import fail_and_release, release_to_rail
from workers.payment.handlers.orders import Order, place

S = PaymentStatus
SWEEP_BATCH = 100  # payments acted on per sweep transaction


# --- duties: sweeps of due payments (every replica; row locks share the work) --------------------------


SWEEP_INTERVAL_S = float(os.environ.get("CBS_PAYMENT_SWEEP_S", "1"))  # both duties, on every replica


def duty_context(conn: Any, now: datetime, what: str) -> Context:
    """Each payment its own context: its saga steps' ids name the payment and the action."""
    return handling.duty_context(conn, "payment", what, now)


async def sweep_due_payments(ctx: Context) -> bool:
    """Approvals expired → failed; settlements timed out → failed; rail windows opened → submitted.
    True when a full batch was acted on (more may be due)."""
    conn, now = ctx.conn, ctx.now
    due = await store.due_payments(conn, now, SWEEP_BATCH)
    for row in due:
        # Each payment its own step id: the duty's message id carries the payment and the action.
        if row.expires_at is not None and row.expires_at <= now:
            code = "approval_expired" if row.view.status == S.pending else "settlement_timeout"
            ctx = duty_context(conn, now, f"expire:{row.view.payment_id}")
            await fail_and_release(ctx, row, code, "approval expired" if code == "approval_expired"
                                    else "the clearing partner did not answer in time")  # fmt: skip
        else:
            await release_to_rail(duty_context(conn, now, f"window:{row.view.payment_id}"), row)
    return len(due) == SWEEP_BATCH


# --- duties: the standing-order scheduler ------------------------------------------------------------


SCHEDULER_BATCH = 50  # standing orders per scheduler transaction
OCCURRENCES_PER_RUN = 12  # per order and run; a longer catch-up continues on the next run


async def run_due_standing_orders(ctx: Context) -> bool:
    """Place every occurrence due by the scheduler's today, each once: the order row is locked
    (SKIP LOCKED: another replica takes other orders) and the occurrence's payment id is derived
    from the order, the nominal date and the attempt. True when a full batch was placed."""
    conn, now = ctx.conn, ctx.now
    today = await calendar.today(conn)
    if today is None:
        return False  # no business date yet: nothing is due
    cal = await calendar.bank_calendar(conn)
    due_orders = await store.due_standing_orders(conn, today, SCHEDULER_BATCH)
    for order in due_orders:
        occurrences = standing_orders.occurrences_due(order, today, OCCURRENCES_PER_RUN, cal)
        for occurrence in occurrences:
            await _place_occurrence(conn, now, today, order, occurrence)
        await standing_orders.advance(duty_context(conn, now, f"so:{order.view.standing_order_id}"), order,
                                      occurrences, today, cal)  # fmt: skip
    return len(due_orders) == SCHEDULER_BATCH


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
    answer = await place(ctx, placed, await store.get_payment(conn, payment_id))
    if isinstance(answer, Reply) and not answer.ok:
        # Refused before the ledger was asked (limits, a closed account, …): a failed attempt.
        await store.record_occurrence_result(conn, payment_id, False)
        exists = await store.get_payment(conn, payment_id) is not None
        await standing_orders.occurrence_result(
            ctx, v.standing_order_id, occurrence.nominal, occurrence.attempt, today, succeeded=False,
            code=answer.error.code if answer.error else None, payment_id=payment_id if exists else None,
        )  # fmt: skip
