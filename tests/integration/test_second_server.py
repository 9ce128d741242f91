"""A worker's schema on a second PostgreSQL server (`CBS_TEST_SECOND_SERVER=ledger`; tests/pg_server.py
makes the server, tests/conftest.py points CBS_LEDGER_DATABASE_URL at it): `cbs migrate` made the
ledger's roles and schema there and nothing of it on the shared server, the ledger worker runs
there unchanged, and its events still reach the workers on the shared server.

Run with the ledger's own integration tests: `make test-second-server`.
"""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import asyncpg
import pytest

from bus import migrate
from bus.settings import load, server_label
from contracts import ledger as L
from ops.cli import main as cbs
from tests.conftest import SECOND_SERVER
from tests.integration.conftest import BusClient, eventually

pytestmark = pytest.mark.second_server

MOVED = "ledger"


@pytest.fixture(scope="module", autouse=True)
def ledger_is_moved() -> None:
    assert MOVED in SECOND_SERVER, "run with CBS_TEST_SECOND_SERVER=ledger (make test-second-server)"


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


async def test_migrate_made_the_ledgers_roles_and_schema_on_its_own_server_only(infra: dict[str, str]) -> None:
    settings = load()
    there = settings.admin_database_url(MOVED)
    assert server_label(there) != server_label(settings.database_url)
    assert there.startswith(infra["second_server"])
    second, shared = await _connect(there), await _connect(settings.database_url)
    try:
        applied = [r["version"] for r in await second.fetch("SELECT version FROM ledger.schema_migrations ORDER BY 1")]
        assert applied == sorted(m.version for m in migrate.migrations_for(MOVED))
        assert await second.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'ledger'") == (
            migrate.owner_name(MOVED)
        )
        roles = {r["rolname"]: r["rolcanlogin"] for r in await second.fetch(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'cbs\\_%'")}  # fmt: skip
        assert roles == {"cbs_ledger": True, "cbs_ledger_owner": False}, "only the moved worker's roles are made there"
        assert await second.fetchval("SELECT has_table_privilege('cbs_ledger', 'ledger.transfer', 'INSERT')")
        assert not await second.fetchval("SELECT has_table_privilege('cbs_ledger', 'ledger.transfer', 'DELETE')")
        assert not await shared.fetchval("SELECT true FROM pg_namespace WHERE nspname = 'ledger'")
        assert await shared.fetchval("SELECT true FROM pg_namespace WHERE nspname = 'account'")
        # Migrating again is a no-op on both servers.
        assert await migrate.migrate(settings, (MOVED, "account")) == {MOVED: [], "account": []}
    finally:
        await second.close()
        await shared.close()


async def test_a_transfer_is_kept_on_the_second_server_and_its_event_reaches_audit_on_the_first(
    bus: BusClient, infra: dict[str, str]
) -> None:
    settings = load()
    debit, credit, transfer_id = uuid4(), uuid4(), uuid4()
    made = await bus.ok(L.CreateAccounts(accounts=[L.NewAccount(id=debit, currency="INR", code="suspense"),
                                                   L.NewAccount(id=credit, currency="INR", code="customer_deposit")]))  # fmt: skip
    assert [r["result"] for r in made["results"]] == ["ok", "ok"]
    moved = await bus.ok(L.CreateTransfers(transfers=[L.NewTransfer(
        id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=12_345, currency="INR",
        code="deposit")]))  # fmt: skip
    assert [r["result"] for r in moved["results"]] == ["ok"]

    second, shared = await _connect(settings.admin_database_url(MOVED)), await _connect(settings.database_url)
    try:
        row = await second.fetchrow("SELECT amount, state FROM ledger.transfer WHERE id = $1", transfer_id)
        assert (int(row["amount"]), row["state"]) == (12_345, "posted")
        # The running ledger is connected there, as its own role.
        assert await second.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'cbs_ledger' AND datname = current_database()"
        ) >= 1
        # Its outbox relay publishes from there: audit, on the shared server, records the fact.
        async def recorded() -> int:
            return await shared.fetchval(
                "SELECT count(*) FROM audit.audit_record WHERE routing_key = 'ledger.transfers_committed' "
                "AND payload::text LIKE $1", f"%{transfer_id}%")  # fmt: skip

        assert await eventually(recorded, timeout_s=20) == 1
    finally:
        await second.close()
        await shared.close()
    assert (await bus.ok(L.Verify()))["ok"] is True


async def test_cbs_status_reads_the_ledgers_outbox_on_its_own_server(
    bus: BusClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # `cbs` runs its own event loop: in a thread, while this loop keeps the workers answering.
    assert await asyncio.to_thread(cbs, ["status", "--once", "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert not [e for e in snap["errors"] if e.startswith("database")], snap["errors"]
    ledger = next(w for w in snap["workers"] if w["worker"] == MOVED)
    assert ledger["outbox_unsent"] is not None  # read on the second server: None would mean "no outbox table found"
