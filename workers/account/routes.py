"""The account worker's contract sheet: every command and event it consumes, and its handler."""

from __future__ import annotations

from bus.actor import owned_by, staff_only
from bus.handling import EventRoute, Routes
from contracts import account, customer, day, payment
from workers.account.handlers import (
    accounts,
    charges,
    cob,
    deposits,
    dormancy,
    holds,
    interest,
    lifecycle,
    products,
    statements,
)

own = owned_by(lambda cmd: cmd.customer_id)

ROUTES = Routes(
    worker="account",
    # A customer (x-actor from the edge) opens and reads only their own accounts (get_account
    # checks the stored owner); the lifecycle is staff work.
    commands={
        account.ListProducts: products.list_products,
        account.GetProduct: products.get_product,
        account.DefineProduct: staff_only(products.define_product),
        account.OpenAccount: own(accounts.open_account),
        account.GetAccount: accounts.get_account,
        account.ListCustomerAccounts: own(accounts.list_customer_accounts),
        account.FreezeAccount: staff_only(lifecycle.freeze_account),
        account.UnfreezeAccount: staff_only(lifecycle.unfreeze_account),
        account.CloseAccount: staff_only(lifecycle.close_account),
        account.ReactivateAccount: staff_only(dormancy.reactivate_account),
        account.SetOverdraft: staff_only(accounts.set_overdraft),
        account.MigrateProduct: staff_only(accounts.migrate_product),
        account.CloseCustomerAccounts: staff_only(lifecycle.close_customer_accounts),
        account.PlaceHold: staff_only(holds.place_hold),
        account.ReleaseHold: staff_only(holds.release_hold),
        account.ListHolds: holds.list_holds,
        account.GetInterest: interest.get_interest,
        account.ListCharges: charges.list_charges,
        account.ListStatements: statements.list_statements,
        account.GetStatement: statements.get_statement,
        account.OpenFixedDeposit: own(deposits.open_fixed_deposit),
        account.OpenRecurringDeposit: own(deposits.open_recurring_deposit),
        account.GetDeposit: deposits.get_deposit,
        account.CloseDepositEarly: staff_only(deposits.close_deposit_early),
    },
    events=(
        EventRoute(customer.CustomerRegistered, accounts.on_customer_registered),
        EventRoute(customer.CustomerKycStatusChanged, accounts.on_kyc_status_changed),
        EventRoute(customer.CustomerSuspended, accounts.on_customer_status_changed),
        EventRoute(customer.CustomerReactivated, accounts.on_customer_status_changed),
        EventRoute(customer.CustomerClosed, accounts.on_customer_status_changed),
        # Close of business: the account worker's steps (`account.interest`, `.charges`, `.dormancy`, `.statements`).
        EventRoute(day.DayClosing, cob.on_day_closing),
        EventRoute(day.DayOpened, deposits.on_day_opened),
        # Dormancy: the customer's own activity on an account.
        EventRoute(payment.PaymentCompleted, dormancy.on_payment_completed),
    ),
    # Saga steps: the ledger's replies to what the account asked of it.
    continuations={
        accounts.STEP_CREATE_LEDGER_ACCOUNT: accounts.ledger_account_answered,
        lifecycle.STEP_SET_LEDGER_FLAGS: lifecycle.ledger_flags_answered,
        accounts.STEP_SET_OVERDRAFT: accounts.ledger_overdraft_answered,
        lifecycle.STEP_LEAVING_CLOSE: lifecycle.leaving_close_answered,
        holds.STEP_PLACE_HOLD: holds.hold_placed_answered,
        holds.STEP_RELEASE_HOLD: holds.hold_released_answered,
        interest.STEP_PAGE: interest.page_answered,
        interest.STEP_POST: interest.post_answered,
        charges.STEP_POST: charges.post_answered,
        statements.STEP_PAGE: statements.page_answered,
        deposits.STEP_CREATE: deposits.ledger_account_answered,
        deposits.STEP_FUND: deposits.funding_answered,
        deposits.STEP_MATURE: deposits.payout_answered,
        deposits.STEP_RENEW: deposits.renewal_answered,
        deposits.STEP_INSTALMENTS: deposits.instalments_answered,
        deposits.STEP_UNFUNDED: deposits.unfunded_closed,
    },
    on_start=products.ensure_default_products,
    publishes=account.EVENTS,
)
# Sent (through the outbox, replies on account.replies): ledger.create_accounts, ledger.set_account_flags,
# ledger.set_overdraft_limit,
# ledger.create_transfers (holds: a pending transfer each; releases: its void; interest), and
# ledger.get_day_end_balances (close of business: the balances interest accrues on) and
# ledger.get_statements (the month's statement totals).
