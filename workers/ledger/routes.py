"""The ledger's contract sheet. `create_transfers` is group-committed (DESIGN §7)."""

from __future__ import annotations

from bus.actor import staff_only
from bus.handling import Duty, Routes
from contracts import ledger as c
from workers.ledger import handlers as h

ROUTES = Routes(
    worker="ledger",
    # Customers read only their own accounts (the handlers check owners); they never move money
    # here directly: their payments go through the payment worker.
    commands={
        c.CreateAccounts: staff_only(h.create_accounts),
        c.SetAccountFlags: staff_only(h.set_account_flags),
        c.LookupAccounts: h.lookup_accounts,
        c.LookupTransfers: h.lookup_transfers,
        c.GetAccountHistory: h.get_account_history,
        c.GetBalanceAt: h.get_balance_at,
        c.Verify: staff_only(h.verify),
    },
    batched={c.CreateTransfers: h.create_transfers},
    batch_units=lambda cmd: len(cmd.transfers),  # type: ignore[attr-defined]
    on_start=h.ensure_bank_accounts,
    # Every replica sweeps; the account locks make a hold expire exactly once.
    duties=(Duty("expiry sweep", h.expire_due_holds, h.EXPIRY_SWEEP_S),),
)
# Published (through the outbox): contracts.ledger.EVENTS, i.e. ledger.transfer_posted,
# ledger.transfer_pending, ledger.transfer_voided, ledger.account_created,
# ledger.account_flags_changed; and, by the runtime, ledger.access_denied.
# Consumes no domain events; the runtime consumes partner.access_changed (grants) for it.
