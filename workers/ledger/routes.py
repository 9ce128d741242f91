"""The ledger's contract sheet. `create_transfers` is group-committed (DESIGN §7)."""

from __future__ import annotations

from bus.actor import staff_only
from bus.handling import Duty, EventRoute, Routes
from contracts import day, ledger
from workers.ledger import handlers

ROUTES = Routes(
    worker="ledger",
    # Customers read only their own accounts (the handlers check owners); they never move money
    # here directly: their payments go through the payment worker.
    commands={
        ledger.CreateAccounts: staff_only(handlers.create_accounts),
        ledger.SetAccountFlags: staff_only(handlers.set_account_flags),
        ledger.SetOverdraftLimit: staff_only(handlers.set_overdraft_limit),
        ledger.LookupAccounts: handlers.lookup_accounts,
        ledger.LookupTransfers: handlers.lookup_transfers,
        ledger.GetAccountHistory: handlers.get_account_history,
        ledger.GetBalanceAt: handlers.get_balance_at,
        ledger.Verify: staff_only(handlers.verify),
        ledger.GetTrialBalance: staff_only(handlers.get_trial_balance),
        ledger.GetDayEndBalances: staff_only(handlers.get_day_end_balances),
        ledger.GetStatements: staff_only(handlers.get_statements),
        ledger.GetJournal: staff_only(handlers.get_journal),
    },
    batched={ledger.CreateTransfers: handlers.create_transfers},
    batch_units=lambda cmd: len(cmd.transfers),  # type: ignore[attr-defined]
    on_start=handlers.ensure_bank_accounts,
    # Every replica sweeps; the account locks make a hold expire exactly once.
    duties=(Duty("expiry sweep", handlers.expire_due_holds, handlers.EXPIRY_SWEEP_S),),
    # Close of business: the ledger's steps (`ledger.day_end_balances`, `ledger.trial_balance`)
    # when the day worker asks.
    events=(EventRoute(day.DayClosing, handlers.on_day_closing),),
    publishes=ledger.EVENTS,  # and ledger.access_denied, which the runtime records
)
