"""Where each worker's schema lives: `CBS_<WORKER>_DATABASE_URL` moves one to another server, and
its migrations, roles, status and backups follow it there (bus.settings)."""

from __future__ import annotations

import pytest

from bus.settings import WORKERS, Settings, server_label

ADMIN = "postgresql://postgres:admin-secret@db1.internal:5432/cbs?sslmode=require"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for worker in WORKERS:
        monkeypatch.delenv(f"CBS_{worker.upper()}_DATABASE_URL", raising=False)
        monkeypatch.delenv(f"CBS_{worker.upper()}_ADMIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("CBS_DB_ROLE_PASSWORD", raising=False)
    return Settings(database_url=ADMIN)


def test_every_schema_in_the_shared_database_by_default(settings: Settings) -> None:
    assert settings.admin_database_url("ledger") == ADMIN
    assert settings.worker_database_url("ledger") == "postgresql://cbs_ledger@db1.internal:5432/cbs?sslmode=require"
    assert settings.servers() == {ADMIN: WORKERS}


def test_a_worker_moved_to_another_server_is_migrated_there_as_the_administrator(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CBS_LEDGER_DATABASE_URL", "postgresql://cbs_ledger:ledger-secret@db2.internal:5433/books")
    assert settings.worker_database_url("ledger") == "postgresql://cbs_ledger:ledger-secret@db2.internal:5433/books"
    assert settings.admin_database_url("ledger") == "postgresql://postgres:admin-secret@db2.internal:5433/books"
    assert settings.admin_database_url("account") == ADMIN
    servers = settings.servers()
    assert servers == {ADMIN: tuple(w for w in WORKERS if w != "ledger"),
                       "postgresql://postgres:admin-secret@db2.internal:5433/books": ("ledger",)}  # fmt: skip
    assert server_label(settings.admin_database_url("ledger")) == "db2.internal:5433/books"  # no secret in it


def test_an_administrator_of_its_own_names_the_server_and_the_worker_connects_there(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CBS_AUDIT_ADMIN_DATABASE_URL", "postgresql://root:other@db3:6432/audit")
    monkeypatch.setenv("CBS_DB_ROLE_PASSWORD", "role-secret")
    settings = Settings(database_url=ADMIN)  # the role's password is read when settings are made
    assert settings.admin_database_url("audit") == "postgresql://root:other@db3:6432/audit"
    assert settings.worker_database_url("audit") == "postgresql://cbs_audit:role-secret@db3:6432/audit"


def test_an_administrative_dsn_without_credentials_keeps_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CBS_LEDGER_DATABASE_URL", "postgresql://cbs_ledger@127.0.0.1:5433/cbs_x")
    assert Settings(database_url="postgresql://127.0.0.1:5432/cbs_x").admin_database_url("ledger") == (
        "postgresql://127.0.0.1:5433/cbs_x"
    )


class _Pool:
    def __init__(self, name: str) -> None:
        self.name = name

    async def fetchval(self, query: str, *args: object) -> str:
        return self.name


async def test_admin_db_sends_a_statement_to_the_server_of_the_schema_it_names() -> None:
    from tests.pg_server import SchemaRoutedPool

    routed = SchemaRoutedPool(_Pool("shared"), {"ledger": _Pool("second")})  # type: ignore[arg-type]
    assert await routed.fetchval("SELECT count(*) FROM ledger.transfer") == "second"
    assert await routed.fetchval("SELECT count(*) FROM audit.audit_record WHERE routing_key = 'ledger.x'") == "shared"
    assert await routed.fetchval("SELECT count(*) FROM ledger_account") == "shared"  # no schema named
    with pytest.raises(AssertionError, match="two servers"):
        await SchemaRoutedPool(_Pool("s"), {"ledger": _Pool("l"), "audit": _Pool("a")}).fetchval(  # type: ignore[arg-type]
            "SELECT * FROM ledger.transfer, audit.audit_record")


def test_a_backup_hands_the_password_to_pg_dump_in_the_environment_only() -> None:
    from ops.backup import without_password

    assert without_password("postgresql://postgres:p%40ss@db:5432/cbs?sslmode=require") == (
        "postgresql://postgres@db:5432/cbs?sslmode=require", {"PGPASSWORD": "p@ss"})
    assert without_password("postgresql://postgres@db/cbs") == ("postgresql://postgres@db/cbs", {})


def test_a_manifest_reads_back_as_written_and_a_changed_file_is_refused(tmp_path) -> None:
    from ops import backup

    dump = tmp_path / "ledger.dump"
    dump.write_bytes(b"PGDMP fake")
    entry = backup.Entry(worker="ledger", schema="ledger", server="db:5432/cbs", latest_migration="0002_x",
                         migrations=["bus_0001", "0002_x"], file="ledger.dump", bytes=10, sha256=backup.sha256_of(dump),
                         tables={"transfer": backup.TableSum(3, "12345")})  # fmt: skip
    manifest = backup.Manifest(backup.FORMAT, "2026-12-06T17:00:00+00:00", "pg_dump (PostgreSQL) 15.20", [entry])
    (tmp_path / backup.MANIFEST).write_text(manifest.as_json())
    assert backup.Manifest.read(tmp_path) == manifest
    backup.check_files(tmp_path, manifest)
    dump.write_bytes(b"PGDMP fakf")
    with pytest.raises(backup.BackupError, match="does not match its sha256"):
        backup.check_files(tmp_path, manifest)
