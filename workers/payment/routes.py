"""The payment worker's contract sheet: every command and event it consumes, and its handler."""

from __future__ import annotations

from bus import joint
from bus.actor import owned_by
from bus.batching import each
from bus.handling import Duty, EventRoute, Routes
from contracts import ledger
from contracts import payment as c
from workers.payment import approvals as ap
from workers.payment import duties
from workers.payment import handlers as h
from workers.payment import partner as pt
from workers.payment import reads as rd
from workers.payment import refunds as rf
from workers.payment import standing_orders as so
from workers.payment import steps as st

own = owned_by(lambda cmd: cmd.customer_id)

ROUTES = Routes(
    worker="payment",
    # Ownership is checked inside the handlers, against the accounts the payment names: a
    # customer pays only from their own accounts, reads only payments they are a side of, and
    # never approves, handles cash or speaks for the clearing partner.
    commands={
        c.GetPayment: rd.get_payment,
        c.ListAccountPayments: rd.list_account_payments,
        c.ApprovePayment: ap.approve_payment,
        c.RejectPayment: ap.reject_payment,
        c.CancelPayment: ap.cancel_payment,
        c.RefundPayment: rf.refund_payment,
        c.ReversePayment: rf.reverse_payment,
        c.AddPayee: own(rd.add_payee),
        c.ListPayees: own(rd.list_payees),
        c.CreateStandingOrder: so.create_standing_order,
        c.GetStandingOrder: so.get_standing_order,
        c.ListStandingOrders: so.list_standing_orders,
        c.CancelStandingOrder: so.cancel_standing_order,
        c.SettlePayment: pt.settle_payment,
        c.RejectExternalPayment: pt.reject_external_payment,
        c.IncomingCredit: pt.incoming_credit,
    },
    events=tuple(EventRoute(event, h.on_account_fact) for event in h.ACCOUNT_EVENTS),
    # Saga steps: the ledger's answers, one step name per thing asked of it.
    continuations={f"{st.STEP_LEDGER}_{action}": h.ledger_answered for action in st.LEDGER_ACTIONS},
    # Orders placed together commit together, and ask the ledger for their transfers in one
    # command (bus/joint.py): fewer deliveries, transactions and audit copies per payment.
    batched={c.InitiatePayment: each(h.initiate_payment)},
    joint={ledger.CreateTransfers: joint.LEDGER_TRANSFERS},
    # Every replica runs both; row locks (SKIP LOCKED) share the work and deterministic payment
    # ids make each occurrence happen once.
    duties=(
        Duty("sweep", duties.sweep_due_payments, duties.SWEEP_INTERVAL_S),  # expiries, timeouts, rail windows
        Duty("standing-order scheduler", duties.run_due_standing_orders, duties.SWEEP_INTERVAL_S),
    ),
)
# Sent (through the outbox, replies on payment.replies): ledger.create_transfers.
# Published events (through the outbox): payment.initiated, approval_required, approved, submitted,
# completed, failed, cancelled, refunded, payee_added, standing_order_failed, screening_hit.
