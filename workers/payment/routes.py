"""The payment worker's contract sheet: every command, event, saga continuation, joint request and
duty it answers, and its handler."""

from __future__ import annotations

from bus import joint
from bus.actor import owned_by
from bus.handling import Duty, EventRoute, Routes, each
from contracts import account, day, ledger, payment
from workers.payment.domain import transfers
from workers.payment.handlers import (
    accounts,
    approvals,
    calendar,
    clearing,
    duties,
    lifecycle,
    orders,
    reads,
    refunds,
    standing_orders,
)

own = owned_by(lambda cmd: cmd.customer_id)

# How the ledger requests of orders committed together leave as one `ledger.create_transfers`
# (bus/joint.py): their transfers in member order, and the ledger's answer split back per member.
LEDGER_TRANSFERS: joint.Combiner[ledger.CreateTransfers] = joint.Combiner(
    contract=ledger.CreateTransfers,
    size=lambda command: len(command.transfers),
    merge=transfers.merge_transfer_requests,
    split=transfers.split_transfer_results,
    max_items=ledger.MAX_BATCH,
    joinable=transfers.closes_its_chain,
)

ROUTES = Routes(
    worker="payment",
    # Ownership is checked inside the handlers, against the accounts the payment names: a
    # customer pays only from their own accounts, reads only payments they are a side of, and
    # never approves, handles cash or speaks for the clearing partner.
    commands={
        payment.GetPayment: reads.get_payment,
        payment.ListAccountPayments: reads.list_account_payments,
        payment.ApprovePayment: approvals.approve_payment,
        payment.RejectPayment: approvals.reject_payment,
        payment.CancelPayment: approvals.cancel_payment,
        payment.RefundPayment: refunds.refund_payment,
        payment.ReversePayment: refunds.reverse_payment,
        payment.AddPayee: own(reads.add_payee),
        payment.ListPayees: own(reads.list_payees),
        payment.CreateStandingOrder: standing_orders.create_standing_order,
        payment.GetStandingOrder: standing_orders.get_standing_order,
        payment.ListStandingOrders: standing_orders.list_standing_orders,
        payment.CancelStandingOrder: standing_orders.cancel_standing_order,
        payment.SettlePayment: clearing.settle_payment,
        payment.RejectExternalPayment: clearing.reject_external_payment,
        payment.IncomingCredit: clearing.incoming_credit,
    },
    events=(
        EventRoute(day.DayOpened, calendar.on_day_opened),
        EventRoute(day.HolidaysChanged, calendar.on_holidays_changed),
        EventRoute(account.AccountOpened, accounts.on_account_fact),
        EventRoute(account.ProductMigrated, accounts.on_account_fact),
        EventRoute(account.AccountFrozen, accounts.on_account_fact),
        EventRoute(account.AccountUnfrozen, accounts.on_account_fact),
        EventRoute(account.AccountClosed, accounts.on_account_fact),
        EventRoute(account.AccountDormant, accounts.on_account_fact),
        EventRoute(account.AccountReactivated, accounts.on_account_fact),
    ),
    # Saga steps: the ledger's answers, one step kind per thing asked of it (`lifecycle.ask_ledger`).
    # The kinds are persisted in saga_step.kind: an in-flight step resumes under the same name.
    continuations={
        "ledger_post": lifecycle.ledger_answered,
        "ledger_hold": lifecycle.ledger_answered,
        "ledger_post_hold": lifecycle.ledger_answered,
        "ledger_void": lifecycle.ledger_answered,
        "ledger_refund": lifecycle.ledger_answered,
        "ledger_reverse": lifecycle.ledger_answered,
    },
    # Orders placed together commit together, and ask the ledger for their transfers in one
    # command: fewer deliveries, transactions and audit copies per payment.
    batched={payment.InitiatePayment: each(orders.initiate_payment)},
    joint={ledger.CreateTransfers: LEDGER_TRANSFERS},
    # Every replica runs both; row locks (SKIP LOCKED) share the work and deterministic payment
    # ids make each occurrence happen once.
    duties=(
        Duty("sweep", duties.sweep_due_payments, duties.SWEEP_INTERVAL_S),  # expiries, timeouts, rail windows
        Duty("standing-order scheduler", duties.run_due_standing_orders, duties.SWEEP_INTERVAL_S),
    ),
    publishes=payment.EVENTS,  # and payment.access_denied, which the runtime records
)
# Sent (through the outbox, answered on payment.replies): ledger.create_transfers.
