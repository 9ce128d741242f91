"""Every worker folder keeps one shape (DESIGN §9), so a newcomer who knows one knows all.

1. `workers/<w>/` holds exactly `__init__.py app.py routes.py handlers domain store.py migrations/`;
   a layer that outgrows its file becomes a package of the same name (`handlers/`, `domain/`).
2. `app.py` is `app = worker_app(ROUTES)`: every entry point is in `routes.py` (audit's taps too:
   they are streams, `Routes.streams`).
3. No `_private` name is imported from another module; `routes.py` uses no one-letter aliases.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
WORKERS = sorted(p for p in (ROOT / "workers").iterdir() if p.is_dir() and not p.name.startswith("__"))
LAYERS = ("handlers", "domain")  # each a module or a package of the same name
ALLOWED_EXTRAS = {"audit": {"grants.sql"}, "ledger": {"grants.sql"}, "notification": {"grants.sql"}}  # read by `cbs migrate` after the migrations


def test_there_are_workers_to_check() -> None:
    assert {w.name for w in WORKERS} >= {"customer", "account", "ledger", "identity", "payment", "audit"}


@pytest.mark.parametrize("worker", WORKERS, ids=lambda p: p.name)
def test_a_worker_folder_holds_the_five_names_and_nothing_else(worker: Path) -> None:
    names = {p.name for p in worker.iterdir() if p.name != "__pycache__"}
    layers = set()
    for layer in LAYERS:
        module, package = worker / f"{layer}.py", worker / layer
        assert module.is_file() != (package / "__init__.py").is_file(), f"{worker.name}: one {layer}, as a file or a package"
        layers.add(module.name if module.is_file() else layer)
    expected = {"__init__.py", "app.py", "routes.py", "store.py", "migrations", *layers}
    assert names == expected | ALLOWED_EXTRAS.get(worker.name, set()), f"{worker.name}: {sorted(names ^ expected)}"


@pytest.mark.parametrize("worker", WORKERS, ids=lambda p: p.name)
def test_app_py_is_one_line(worker: Path) -> None:
    tree = ast.parse((worker / "app.py").read_text())
    statements = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    statements = [s for s in statements if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    assert [ast.unparse(s) for s in statements] == ["app = worker_app(ROUTES)"]


def _python_files() -> list[Path]:
    return [p for top in ("workers", "bus", "api_edge", "ops", "contracts") for p in (ROOT / top).rglob("*.py")]


def test_no_private_name_is_imported_from_another_module() -> None:
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in {
                "workers", "bus", "api_edge", "ops", "contracts",
            }:  # fmt: skip
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
    assert not found


@pytest.mark.parametrize("worker", WORKERS, ids=lambda p: p.name)
def test_routes_name_modules_in_full(worker: Path) -> None:
    tree = ast.parse((worker / "routes.py").read_text())
    aliases = [a.asname for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names]
    assert not [a for a in aliases if a is not None and len(a) <= 2], "no one-letter aliases in routes.py"
