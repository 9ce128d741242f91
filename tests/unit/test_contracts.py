"""Every message's AMQP `type` is its routing key and version, written once (contracts/common.py)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from contracts import account, audit, customer, day, identity, ledger, partner, payment, security
from contracts.common import Command, Event, holds_nul

MODULES = (account, audit, customer, identity, ledger, partner, payment, security)


def test_every_command_and_event_is_typed_as_its_routing_key_version_1() -> None:
    found = [c for m in MODULES for c in (*getattr(m, "COMMANDS", ()), *getattr(m, "EVENTS", ()))]
    assert len(found) > 90
    for contract in found:
        assert contract.routing_key and contract.message_type == f"{contract.routing_key}.v1", contract


def test_a_new_version_says_so_and_keeps_its_own_type() -> None:
    class Example(Command):
        routing_key: ClassVar[str] = "example.do"

    class ExampleV2(Command):
        routing_key: ClassVar[str] = "example.do"
        message_type: ClassVar[str] = "example.do.v2"

    class Fact(Event):
        routing_key: ClassVar[str] = "example.done"

    assert (Example.message_type, ExampleV2.message_type, Fact.message_type) == (
        "example.do.v1", "example.do.v2", "example.done.v1")


def test_bank_account_ids_are_derived_as_the_ledgers_migration_derives_them() -> None:
    newest = sorted(p for p in (Path(__file__).parents[2] / "workers/ledger/migrations").glob("*.sql")
                    if "FUNCTION ensure_bank_accounts" in p.read_text())[-1]  # fmt: skip
    sql = newest.read_text()
    assert "md5('cbs.ledger.' || code || '.' || cur)::uuid" in sql
    codes = re.findall(r"'([a-z_]+)'", sql[sql.index("ARRAY[") : sql.index("]) AS code")])
    assert tuple(codes) == ledger.BANK_ACCOUNT_CODES
    assert ledger.bank_account_id("cash_vault", "INR") == uuid.UUID(hashlib.md5(b"cbs.ledger.cash_vault.INR").hexdigest())
    assert ledger.bank_account_id("fee_income", "USD") != ledger.bank_account_id("fee_income", "INR")


@pytest.mark.parametrize(
    ("text", "holds"),
    [("x\u0000y", True), ("\\\u0000", True), ("x\\u0000y", False), ("\\\\u0000", False), ("plain", False)],
)
def test_a_nul_is_found_raw_or_escaped_but_an_escaped_backslash_is_not_one(text: str, holds: bool) -> None:
    body = json.dumps({"field": text}).encode()
    assert holds_nul(body) is holds
    assert holds_nul(json.dumps({"field": text}, ensure_ascii=False).encode()) is holds


@pytest.mark.parametrize("module", [account, audit, customer, day, identity, ledger, partner, payment, security],
                         ids=lambda m: m.__name__)  # fmt: skip
def test_every_command_and_event_a_module_defines_is_in_its_lists(module: object) -> None:
    """A contract left out of COMMANDS or EVENTS is refused at publish time ("not in its routes'
    publishes") or never routed: caught here, not by a worker in production."""
    defined = [v for name, v in vars(module).items() if isinstance(v, type) and not name.startswith("_")
               and v.__module__ == module.__name__ and "routing_key" in vars(v)]  # fmt: skip
    listed = {*getattr(module, "COMMANDS", ()), *getattr(module, "EVENTS", ())}
    assert [c.__name__ for c in defined if c not in listed] == []
