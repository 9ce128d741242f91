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
