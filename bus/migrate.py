"""The numbered-SQL migration runner (DESIGN §2).

Two database roles per worker, cluster-wide (every database on the server shares them):

- `cbs_<worker>_owner` (NOLOGIN) owns the worker's schema and everything in it. Only this
  runner acts as it (`SET LOCAL ROLE`); no running process can.
- `cbs_<worker>` (LOGIN) is what the running worker connects as (bus.settings
  `worker_database_url`). It owns nothing, so it cannot TRUNCATE, ALTER, DROP or change a
  trigger; it gets only the row privileges below. Neither role is a member of the other.

Roles are per server: a worker whose schema lives on a server of its own
(`CBS_<WORKER>_DATABASE_URL`) gets them made there, with its schema, by that server's
administrative DSN (`Settings.admin_database_url`).

For each worker: the roles and the schema, then `bus/sql/*.sql` (inbox, outbox, saga steps,
partner grants) and `workers/<worker>/migrations/NNNN_name.sql`, in order, each in one
transaction run as the owner role. Progress is kept in `<schema>.schema_migrations` with a
checksum: editing an applied file is an error, never a silent divergence. An advisory lock
lets several runners start at once.

Then, in one transaction, after every run (so the tables a new migration adds get them too),
the runtime role's privileges are set afresh:

- USAGE on its own schema (no CREATE) and nothing on any other: every privilege in the schema
  is revoked from PUBLIC;
- SELECT, INSERT, UPDATE on every table (no DELETE: no worker deletes rows today; never
  TRUNCATE, REFERENCES or TRIGGER), nothing on `schema_migrations`;
- USAGE, SELECT on every sequence (nextval, not setval); EXECUTE on the schema's functions;
- then `workers/<worker>/grants.sql`, if there is one, run as the owner role with the schema
  on the search path: where a worker narrows (or, with a reason, widens) the defaults. The
  audit worker's makes its records append-only by privilege as well as by trigger.

PUBLIC loses CREATE on schema `public` (already PostgreSQL 15's default) and TEMPORARY on the
database. A database migrated before the owner roles existed (everything owned by
`cbs_<worker>`) is converted by the next run (REASSIGN OWNED), with its grants in the same
transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from bus import db
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


async def ensure_database(settings: Settings | str) -> None:
    """Create the database an administrative DSN names (`settings`: `CBS_DATABASE_URL`'s), if missing."""
    dsn = settings if isinstance(settings, str) else settings.database_url
    name = database_name(dsn)
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        if not await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another runner won the race
    finally:
        await conn.close()


def owner_name(worker: str) -> str:
    """The role that owns the worker's schema: migrations only, never a running process."""
    return f"{role_name(worker)}_owner"


def grants_file(worker: str) -> Path:
    """Where a worker narrows its runtime role's default privileges (optional)."""
    return ROOT / "workers" / worker / "grants.sql"


async def _ensure_role(conn: asyncpg.Connection, role: str, *, login: bool) -> None:
    if await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
        return
    try:
        await conn.execute(f"CREATE ROLE {role} {'LOGIN' if login else 'NOLOGIN'}")
    except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
        pass  # roles are cluster-wide: a concurrent runner for another database made it


async def _ensure_roles(conn: asyncpg.Connection, worker: str, password: str | None) -> None:
    runtime, owner = role_name(worker), owner_name(worker)
    await _ensure_role(conn, runtime, login=True)
    await _ensure_role(conn, owner, login=False)
    # Checked before altering: roles are shared, and concurrent ALTERs of one role collide.
    if await conn.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", owner):
        await conn.execute(f"ALTER ROLE {owner} NOLOGIN")
    for member, group in ((runtime, owner), (owner, runtime)):
        if await conn.fetchval(
            "SELECT true FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
            "WHERE g.rolname = $1 AND u.rolname = $2",
            group,
            member,
        ):
            await conn.execute(f"REVOKE {group} FROM {member}")
    if password:
        await conn.execute(f"ALTER ROLE {runtime} PASSWORD {_literal(password)}")


async def ensure_roles(conn: asyncpg.Connection, worker: str, password: str | None = None) -> None:
    """The worker's two roles on `conn`'s server, as a migration makes them (a restore needs them
    before its schema, whose objects they own and are granted)."""
    await _ensure_roles(conn, worker, password)


async def _ensure_schema(conn: asyncpg.Connection, worker: str) -> None:
    """The schema and its migrations table, owned by the owner role (in the caller's transaction).

    A database migrated before owner roles existed has everything owned by the runtime role:
    REASSIGN OWNED hands it to the owner role (this database only), and the runtime role gets
    its grants back in the same transaction, so a worker still running never sees a gap."""
    runtime, owner = role_name(worker), owner_name(worker)
    current = await conn.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", worker)
    if current is None:
        await conn.execute(f"CREATE SCHEMA {worker} AUTHORIZATION {owner}")
    converting = await conn.fetchval(
        "SELECT true FROM pg_shdepend WHERE deptype = 'o' AND refclassid = 'pg_authid'::regclass "
        "AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) "
        "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
        runtime,
    )
    if converting:
        await conn.execute(f"REASSIGN OWNED BY {runtime} TO {owner}")
        log.info("%s: objects owned by %s now belong to %s", worker, runtime, owner)
    if current not in (None, owner):
        await conn.execute(f"ALTER SCHEMA {worker} OWNER TO {owner}")
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {worker}.schema_migrations ("
        "version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute(f"ALTER TABLE {worker}.schema_migrations OWNER TO {owner}")
    if converting:
        await _default_grants(conn, worker)


async def _default_grants(conn: asyncpg.Connection, worker: str) -> None:
    """The runtime role's privileges, set afresh (in the caller's transaction)."""
    runtime = role_name(worker)
    db = await conn.fetchval("SELECT current_database()")
    for statement in (
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",  # PostgreSQL 15's default; older ones grant it
        f'REVOKE TEMPORARY ON DATABASE "{db}" FROM PUBLIC',
        f'GRANT CONNECT ON DATABASE "{db}" TO {runtime}',
        f'REVOKE CREATE, TEMPORARY ON DATABASE "{db}" FROM {runtime}',
        f"REVOKE ALL ON SCHEMA {worker} FROM PUBLIC, {runtime}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {worker} FROM PUBLIC, {runtime}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {worker} FROM PUBLIC, {runtime}",
        f"REVOKE ALL ON ALL ROUTINES IN SCHEMA {worker} FROM PUBLIC, {runtime}",
        f"GRANT USAGE ON SCHEMA {worker} TO {runtime}",
        f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {worker} TO {runtime}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {worker} TO {runtime}",
        f"GRANT EXECUTE ON ALL ROUTINES IN SCHEMA {worker} TO {runtime}",
        f"REVOKE ALL ON {worker}.schema_migrations FROM {runtime}",
    ):
        await conn.execute(statement)


async def apply_grants(conn: asyncpg.Connection, worker: str) -> None:
    """The defaults, then the worker's grants.sql as its owner role, in one transaction."""
    async with conn.transaction():
        await _default_grants(conn, worker)
        narrowing = grants_file(worker)
        if narrowing.exists():
            await conn.execute(f"SET LOCAL ROLE {owner_name(worker)}")
            await conn.execute(f"SET LOCAL search_path = {worker}")
            await conn.execute(narrowing.read_text())


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def migrate_worker(conn: asyncpg.Connection, worker: str, password: str | None = None) -> list[str]:
    """Apply the worker's pending migrations, then its grants; returns the versions applied now."""
    await _ensure_roles(conn, worker, password)
    async with conn.transaction():
        await _ensure_schema(conn, worker)
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
            # Run as the owner role so everything created belongs to it, in its schema.
            await conn.execute(f"SET LOCAL ROLE {owner_name(worker)}")
            await conn.execute(f"SET LOCAL search_path = {worker}")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {worker}.schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
        done.append(migration.version)
        log.info("%s: applied %s", worker, migration.path.name)
    await apply_grants(conn, worker)
    return done


async def migrate(settings: Settings, workers: tuple[str, ...]) -> dict[str, list[str]]:
    """Every worker's migrations on the server and database that hold its schema (`Settings.servers`:
    `CBS_DATABASE_URL`'s, or its own by `CBS_<WORKER>_DATABASE_URL`), its roles made there too."""
    done: dict[str, list[str]] = {}
    for dsn, here in settings.servers(workers).items():
        done.update(await migrate_on(dsn, here, settings.db_role_password))
    return {w: done[w] for w in workers}


async def migrate_on(dsn: str, workers: tuple[str, ...], password: str | None = None) -> dict[str, list[str]]:
    """The workers' migrations in the database `dsn` names (made if missing), under the runners' lock."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            return {w: await migrate_worker(conn, w, password) for w in workers}
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await conn.close()


async def upkeep_warnings(settings: Settings, workers: tuple[str, ...]) -> list[str]:
    """`db.upkeep_warnings` of every server that holds a worker's schema, each named by host and port."""
    warnings = []
    for dsn in settings.servers(workers):
        where = urlsplit(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            warnings += [f"{where.hostname}:{where.port or 5432}: {w}" for w in await db.server_upkeep_warnings(conn)]
        finally:
            await conn.close()
    return warnings
