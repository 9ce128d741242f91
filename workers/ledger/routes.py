"""The ledger's contract sheet. `create_transfers` is group-committed (DESIGN §7)."""

from __future__ import annotations

from bus.actor import staff_only
from bus.handling import Duty, EventRoute, Routes
from contracts import day, ledger
from workers.ledger.handlers import accounts, cob, reads, transfers

ROUTES = Routes(
    worker="ledger",
    # Customers read only their own accounts (the handlers check owners); they never move money
    # here directly: their payments go through the payment worker.
    commands={
        ledger.CreateAccounts: staff_only(accounts.create_accounts),
        ledger.SetAccountFlags: staff_only(accounts.set_account_flags),
        ledger.SetOverdraftLimit: staff_only(accounts.set_overdraft_limit),
        ledger.LookupAccounts: reads.lookup_accounts,
        ledger.LookupTransfers: reads.lookup_transfers,
        ledger.GetAccountHistory: reads.get_account_history,
        ledger.GetBalanceAt: reads.get_balance_at,
        ledger.Verify: staff_only(reads.verify),
        ledger.GetTrialBalance: staff_only(cob.get_trial_balance),
        ledger.GetDayEndBalances: staff_only(cob.get_day_end_balances),
        ledger.GetStatements: staff_only(cob.get_statements),
        ledger.GetJournal: staff_only(cob.get_journal),
    },
    batched={ledger.CreateTransfers: transfers.create_transfers},
    batch_units=lambda cmd: len(cmd.transfers),  # type: ignore[attr-defined]
    on_start=accounts.ensure_bank_accounts,
    # Every replica sweeps; the account locks make a hold expire exactly once.
    duties=(Duty("expiry sweep", transfers.expire_due_holds, transfers.EXPIRY_SWEEP_S),),
    # Close of business: the ledger's steps (`ledger.day_end_balances`, `ledger.trial_balance`)
    # when the day worker asks.
    events=(EventRoute(day.DayClosing, cob.on_day_closing),),
    publishes=ledger.EVENTS,  # and ledger.access_denied, which the runtime records
)
