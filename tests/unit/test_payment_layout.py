"""The payment worker's shape (the layout rule, issue 15): the folder holds the five names, no
`_private` name is imported across modules, the domain imports no bus or broker code, and the
saga continuations routes.py lists literally are exactly the step kinds `ask_ledger` can record."""

from __future__ import annotations

import ast
from pathlib import Path

from contracts import ledger
from workers.payment.handlers import lifecycle
from workers.payment.routes import LEDGER_TRANSFERS, ROUTES

ROOT = Path(__file__).resolve().parents[2] / "workers" / "payment"
TOP_LEVEL = {"__init__.py", "app.py", "routes.py", "handlers", "domain", "store.py", "migrations"}


def modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_the_folder_holds_the_five_names() -> None:
    assert {p.name for p in ROOT.iterdir() if p.name != "__pycache__"} == TOP_LEVEL


def test_no_private_name_is_imported_across_modules() -> None:
    crossing = [
        f"{path.relative_to(ROOT)}: {alias.name}"
        for path in modules()
        for node in imports(path)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert crossing == []


def test_the_domain_imports_no_bus_or_broker_code() -> None:
    forbidden = {"bus", "asyncpg", "faststream", "aio_pika"}
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "domain").rglob("*.py")
        for node in imports(path)
        for name in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        if name.split(".")[0] in forbidden
    ]
    assert found == []


def test_continuations_are_every_ledger_step_kind_and_nothing_else() -> None:
    kinds = {f"{lifecycle.STEP_LEDGER}_{action}" for action in lifecycle.LEDGER_ACTIONS}
    assert set(ROUTES.continuations) == kinds
    assert all(handler is lifecycle.ledger_answered for handler in ROUTES.continuations.values())


def test_the_ledger_transfers_combiner_is_on_the_sheet() -> None:
    assert ROUTES.joint == {ledger.CreateTransfers: LEDGER_TRANSFERS}
    assert LEDGER_TRANSFERS.max_items == ledger.MAX_BATCH
