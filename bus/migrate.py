"""The numbered-SQL migration runner (DESIGN §2).

For each worker: its database role and schema (the role owns the schema and nothing else),
then `bus/sql/*.sql` (inbox, outbox) and `workers/<worker>/migrations/NNNN_name.sql`, in
order, each in one transaction run as the worker's role. Progress is kept in
`<schema>.schema_migrations` with a checksum: editing an applied file is an error, never a
silent divergence. An advisory lock lets several runners start at once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bus.settings import Settings, database_name, role_name, with_database

ROOT = Path(__file__).resolve().parent.parent
BUS_SQL = ROOT / "bus" / "sql"
MIGRATION_LOCK = 0x0CB5_0001  # pg_advisory_lock key shared by every runner

log = logging.getLogger("cbs.migrate")


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    pass


def migrations_for(worker: str) -> list[Migration]:
    found = [Migration(f"bus_{p.stem}", p) for p in sorted(BUS_SQL.glob("*.sql"))]
    found += [Migration(p.stem, p) for p in sorted((ROOT / "workers" / worker / "migrations").glob("*.sql"))]
    return found


async def ensure_database(settings: Settings) -> None:
    name = database_name(settings.database_url)
    conn = await asyncpg.connect(with_database(settings.database_url, "postgres"))
    try:
        if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another runner won the race
    finally:
        await conn.close()


async def _ensure_role_and_schema(conn: asyncpg.Connection, worker: str, password: str | None) -> None:
    role = role_name(worker)
    if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
        try:
            await conn.execute(f"CREATE ROLE {role} LOGIN")
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            pass  # roles are cluster-wide: a concurrent runner for another database made it
    if password:
        await conn.execute(f"ALTER ROLE {role} PASSWORD {_literal(password)}")
    db = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {role}')
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {worker} AUTHORIZATION {role}")
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {worker}.schema_migrations ("
        "version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute(f"ALTER TABLE {worker}.schema_migrations OWNER TO {role}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def migrate_worker(conn: asyncpg.Connection, worker: str, password: str | None = None) -> list[str]:
    """Apply the worker's pending migrations; returns the versions applied now."""
    await _ensure_role_and_schema(conn, worker, password)
    applied = {
        r["version"]: r["checksum"] for r in await conn.fetch(f"SELECT version, checksum FROM {worker}.schema_migrations")
    }
    done: list[str] = []
    for migration in migrations_for(worker):
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise MigrationError(f"{worker}: applied migration {migration.path.name} was edited")
            continue
        async with conn.transaction():
            # Run as the worker's role so everything created belongs to it, in its schema.
            await conn.execute(f"SET LOCAL ROLE {role_name(worker)}")
            await conn.execute(f"SET LOCAL search_path = {worker}")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {worker}.schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
        done.append(migration.version)
        log.info("%s: applied %s", worker, migration.path.name)
    return done


async def migrate(settings: Settings, workers: tuple[str, ...]) -> dict[str, list[str]]:
    await ensure_database(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            return {w: await migrate_worker(conn, w, settings.db_role_password) for w in workers}
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await conn.close()
