"""The backup and restore drill (ops/backup.py): state made through the bus, `cbs backup` of every
schema, `cbs restore` into a fresh database, and the copy equals what was backed up — every
table's rows, the ledger's balances — with the ledger's verify clean and the audit chain whole.
A tampered file, a database that already has the schemas, and a corrupted copy are each caught."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from bus.settings import WORKERS, load, with_database
from contracts import ledger as L
from ops import backup
from tests.conftest import DATABASE, SECOND_SERVER, drop_database
from tests.integration.conftest import BusClient, eventually

ROOT = Path(__file__).resolve().parents[2]
RESTORED = f"{DATABASE}_restored"

pytestmark = pytest.mark.skipif(bool(SECOND_SERVER), reason="the drill restores every schema into one fresh database")


def cbs(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`cbs …` as an operator runs it: its own process, this run's environment (plus `env`)."""
    return subprocess.run([sys.executable, "-m", "ops.cli", *argv], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
async def state(bus: BusClient, admin_db) -> dict[str, object]:
    """Accounts and transfers through the ledger, waited for until audit has recorded them."""
    funder, a, b = uuid4(), uuid4(), uuid4()
    made = await bus.ok(L.CreateAccounts(accounts=[
        L.NewAccount(id=funder, currency="INR", code="suspense"),
        L.NewAccount(id=a, currency="INR", code="customer_deposit"),
        L.NewAccount(id=b, currency="INR", code="customer_deposit")]))  # fmt: skip
    assert [r["result"] for r in made["results"]] == ["ok"] * 3
    transfers = [(funder, a, 50_000), (funder, b, 20_000), (a, b, 7_500), (b, a, 1_250)]
    ids = [uuid4() for _ in transfers]
    for tid, (debit, credit, amount) in zip(ids, transfers, strict=True):
        result = await bus.ok(L.CreateTransfers(transfers=[L.NewTransfer(
            id=tid, debit_account_id=debit, credit_account_id=credit, amount=amount, currency="INR",
            code="internal_transfer")]))  # fmt: skip
        assert [r["result"] for r in result["results"]] == ["ok"]

    async def audited() -> bool:
        found = await admin_db.fetchval(
            "SELECT count(*) FROM audit.audit_record WHERE routing_key = 'ledger.transfers_committed' "
            "AND payload::text LIKE ANY($1::text[])", [f"%{i}%" for i in ids])  # fmt: skip
        return found == len(ids)

    await eventually(audited, timeout_s=20)
    return {"accounts": [funder, a, b], "transfers": ids}


@pytest.fixture(scope="module")
async def drill(state: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, object]]:
    """`cbs backup` then `cbs restore` into a database of its own (dropped at the end)."""
    folder = tmp_path_factory.mktemp("backup") / "cbs-backup"
    made = await asyncio.to_thread(cbs, "backup", str(folder))
    assert made.returncode == 0, made.stderr
    restored_url = with_database(load().database_url, RESTORED)
    try:
        done = await asyncio.to_thread(cbs, "restore", str(folder), env={"CBS_DATABASE_URL": restored_url})
        yield {"folder": folder, "backup": json.loads(made.stdout), "restore": done, "url": restored_url}
    finally:
        await drop_database(RESTORED)


async def test_every_schema_is_backed_up_with_a_manifest(drill: dict[str, object]) -> None:
    folder = drill["folder"]
    assert isinstance(folder, Path)
    manifest = backup.Manifest.read(folder)
    assert [e.worker for e in manifest.entries] == list(WORKERS)
    assert "15." in manifest.pg_dump or "PostgreSQL" in manifest.pg_dump
    for entry in manifest.entries:
        assert entry.schema == entry.worker and entry.server.endswith(f"/{DATABASE}")
        assert entry.sha256 == backup.sha256_of(folder / entry.file) and entry.bytes == (folder / entry.file).stat().st_size
        assert entry.latest_migration == entry.migrations[-1] and "schema_migrations" in entry.tables
    ledger = next(e for e in manifest.entries if e.worker == "ledger")
    assert ledger.tables["transfer"].rows >= 4


async def test_the_restored_copy_equals_the_original_and_checks_clean(
    drill: dict[str, object], state: dict[str, object], admin_db
) -> None:
    done = drill["restore"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {r["worker"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert list(lines) == list(WORKERS)
    for worker, line in lines.items():
        assert line["ok"] and line["checks"]["migrations_match"] and line["checks"]["tables_match"]["ok"], line
        assert line["server"].endswith(f"/{RESTORED}") and line["applied_after"] == []
    assert lines["ledger"]["checks"]["ledger_verify"]["ok"] and lines["ledger"]["checks"]["ledger_verify"]["transfers_checked"] >= 4
    assert lines["audit"]["checks"]["audit_chain"]["records_checked"] >= 4

    # Independently of the tool: the accounts' balances and the transfers, read from both databases.
    accounts, transfers = state["accounts"], state["transfers"]
    restored = await asyncpg.connect(str(drill["url"]))
    try:
        sql_accounts = ("SELECT id, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger.ledger_account "
                        "WHERE id = ANY($1::uuid[]) ORDER BY id")  # fmt: skip
        sql_transfers = "SELECT id, amount, state FROM ledger.transfer WHERE id = ANY($1::uuid[]) ORDER BY id"
        assert [tuple(r) for r in await restored.fetch(sql_accounts, accounts)] == [
            tuple(r) for r in await admin_db.fetch(sql_accounts, accounts)]  # fmt: skip
        assert len(await restored.fetch(sql_transfers, transfers)) == 4
        assert [tuple(r) for r in await restored.fetch(sql_transfers, transfers)] == [
            tuple(r) for r in await admin_db.fetch(sql_transfers, transfers)]  # fmt: skip
        # The runtime roles can work on the copy: its grants were set (a schema dump holds no database grants).
        assert await restored.fetchval("SELECT has_database_privilege('cbs_ledger', current_database(), 'CONNECT')")
        assert await restored.fetchval("SELECT has_table_privilege('cbs_ledger', 'ledger.transfer', 'INSERT')")
    finally:
        await restored.close()


async def test_the_checks_catch_a_corrupted_copy(drill: dict[str, object], state: dict[str, object]) -> None:
    """Each check can fail: a balance changed behind the ledger's back, an audit head rewritten."""
    folder = drill["folder"]
    assert isinstance(folder, Path)
    manifest = backup.Manifest.read(folder)
    ledger = next(e for e in manifest.entries if e.worker == "ledger")
    account: UUID = state["accounts"][1]  # type: ignore[index]
    conn = await asyncpg.connect(str(drill["url"]), server_settings=backup.CANONICAL_SESSION)
    transaction = conn.transaction()  # rolled back: the copy stays as restored
    await transaction.start()
    try:
        await conn.execute("UPDATE ledger.ledger_account SET credits_posted = credits_posted + 1 WHERE id = $1", account)
        assert (await backup.table_sums(conn, "ledger"))["ledger_account"] != ledger.tables["ledger_account"]
        await conn.execute("SET LOCAL search_path = ledger")
        verdict = await backup.ledger_verify(conn)
        assert not verdict["ok"] and verdict["mismatches"][0]["id"] == str(account)
        await conn.execute("SET LOCAL search_path = audit")
        assert (await backup.audit_chain(conn))["ok"]
        await conn.execute("SET LOCAL session_replication_role = replica")  # past audit's append-only triggers
        await conn.execute("UPDATE audit_chain_head SET last_hash = $1", bytes(32))
        assert (await backup.audit_chain(conn))["reason"] == "head_mismatch"
    finally:
        await transaction.rollback()
        await conn.close()


async def test_a_restore_refuses_a_tampered_file_and_a_database_that_has_the_schemas(drill: dict[str, object]) -> None:
    folder = drill["folder"]
    assert isinstance(folder, Path)
    again = await asyncio.to_thread(cbs, "restore", str(folder), "--worker", "day", env={"CBS_DATABASE_URL": str(drill["url"])})
    assert again.returncode == 1 and "schema day exists" in again.stderr
    tampered = folder.parent / "tampered"
    tampered.mkdir()
    for path in folder.iterdir():
        tampered.joinpath(path.name).write_bytes(path.read_bytes())
    dump = tampered / "ledger.dump"
    dump.write_bytes(dump.read_bytes()[:-1] + bytes([dump.read_bytes()[-1] ^ 1]))
    with pytest.raises(backup.BackupError, match="ledger.dump does not match its sha256"):
        await backup.restore(load(), tampered)
    assert (await asyncio.to_thread(cbs, "backup", str(folder))).returncode == 1  # never into a folder already used
