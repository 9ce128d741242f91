"""The account worker's contract sheet: every command and event it consumes, and its handler."""

from __future__ import annotations

from bus.actor import owned_by, staff_only
from bus.handling import EventRoute, Routes
from contracts import account as c
from contracts import customer as customer_events
from workers.account import handlers as h

own = owned_by(lambda cmd: cmd.customer_id)

ROUTES = Routes(
    worker="account",
    # A customer (x-actor from the edge) opens and reads only their own accounts (get_account
    # checks the stored owner); the lifecycle is staff work.
    commands={
        c.ListProducts: h.list_products,
        c.OpenAccount: own(h.open_account),
        c.GetAccount: h.get_account,
        c.ListCustomerAccounts: own(h.list_customer_accounts),
        c.FreezeAccount: staff_only(h.freeze_account),
        c.UnfreezeAccount: staff_only(h.unfreeze_account),
        c.CloseAccount: staff_only(h.close_account),
    },
    events=(
        EventRoute(customer_events.CustomerRegistered, h.on_customer_registered),
        EventRoute(customer_events.CustomerKycStatusChanged, h.on_kyc_status_changed),
        EventRoute(customer_events.CustomerSuspended, h.on_customer_status_changed),
        EventRoute(customer_events.CustomerReactivated, h.on_customer_status_changed),
        EventRoute(customer_events.CustomerClosed, h.on_customer_status_changed),
    ),
    # Saga steps: the ledger's replies to what the account asked of it.
    continuations={
        h.STEP_CREATE_LEDGER_ACCOUNT: h.ledger_account_answered,
        h.STEP_SET_LEDGER_FLAGS: h.ledger_flags_answered,
    },
)
# Sent (through the outbox, replies on account.replies): ledger.create_accounts, ledger.set_account_flags.
# Published events (through the outbox): account.opened, account.frozen, account.unfrozen, account.closed.
