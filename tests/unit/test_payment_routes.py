"""Payment's sheet: the saga continuations routes.py lists literally are exactly the step kinds
`ask_ledger` can record (they are persisted), and its joint combiner is on it. The folder's shape
is checked for every worker by test_layout.py and the import-linter contracts."""

from __future__ import annotations

from contracts import ledger
from workers.payment.handlers import lifecycle
from workers.payment.routes import LEDGER_TRANSFERS, ROUTES


def test_continuations_are_every_ledger_step_kind_and_nothing_else() -> None:
    kinds = {f"{lifecycle.STEP_LEDGER}_{action}" for action in lifecycle.LEDGER_ACTIONS}
    assert set(ROUTES.continuations) == kinds
    assert all(handler is lifecycle.ledger_answered for handler in ROUTES.continuations.values())


def test_the_ledger_transfers_combiner_is_on_the_sheet() -> None:
    assert ROUTES.joint == {ledger.CreateTransfers: LEDGER_TRANSFERS}
    assert LEDGER_TRANSFERS.max_items == ledger.MAX_BATCH
