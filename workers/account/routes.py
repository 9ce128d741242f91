"""The account worker's contract sheet: every command and event it consumes, and its handler."""

from __future__ import annotations

from bus.actor import owned_by, staff_only
from bus.handling import EventRoute, Routes
from contracts import account, customer
from workers.account import handlers

own = owned_by(lambda cmd: cmd.customer_id)

ROUTES = Routes(
    worker="account",
    # A customer (x-actor from the edge) opens and reads only their own accounts (get_account
    # checks the stored owner); the lifecycle is staff work.
    commands={
        account.ListProducts: handlers.list_products,
        account.OpenAccount: own(handlers.open_account),
        account.GetAccount: handlers.get_account,
        account.ListCustomerAccounts: own(handlers.list_customer_accounts),
        account.FreezeAccount: staff_only(handlers.freeze_account),
        account.UnfreezeAccount: staff_only(handlers.unfreeze_account),
        account.CloseAccount: staff_only(handlers.close_account),
        account.PlaceHold: staff_only(handlers.place_hold),
        account.ReleaseHold: staff_only(handlers.release_hold),
        account.ListHolds: handlers.list_holds,
    },
    events=(
        EventRoute(customer.CustomerRegistered, handlers.on_customer_registered),
        EventRoute(customer.CustomerKycStatusChanged, handlers.on_kyc_status_changed),
        EventRoute(customer.CustomerSuspended, handlers.on_customer_status_changed),
        EventRoute(customer.CustomerReactivated, handlers.on_customer_status_changed),
        EventRoute(customer.CustomerClosed, handlers.on_customer_status_changed),
    ),
    # Saga steps: the ledger's replies to what the account asked of it.
    continuations={
        handlers.STEP_CREATE_LEDGER_ACCOUNT: handlers.ledger_account_answered,
        handlers.STEP_SET_LEDGER_FLAGS: handlers.ledger_flags_answered,
        handlers.STEP_PLACE_HOLD: handlers.hold_placed_answered,
        handlers.STEP_RELEASE_HOLD: handlers.hold_released_answered,
    },
    publishes=account.EVENTS,
)
# Sent (through the outbox, replies on account.replies): ledger.create_accounts, ledger.set_account_flags,
# ledger.create_transfers (holds: a pending transfer each; releases: its void).
