"""Database roles (DESIGN §2): each schema belongs to an owner role no process logs in as; a
worker's runtime role reads and writes its own rows as its work needs, and nothing more."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bus import migrate
from bus.settings import WORKERS, database_name, load, role_name, with_database
from workers.audit import store as audit_store

REFUSED = asyncpg.InsufficientPrivilegeError
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
DEFAULT = {"SELECT", "INSERT", "UPDATE"}
# What a worker's grants.sql narrows (or widens): table → its table-level privileges, and columns it may UPDATE.
NARROWED: dict[tuple[str, str], tuple[set[str], set[str]]] = {
    ("audit", "audit_record"): ({"SELECT", "INSERT"}, {"payload", "archived_at"}),
    ("audit", "audit_chain_head"): ({"SELECT", "UPDATE"}, set()),
    # The indexes beside the chain are appended to only (workers/audit/grants.sql).
    **{("audit", table): ({"SELECT", "INSERT"}, set()) for table in ("audit_outcome", "audit_record_account", "audit_movement")},
    ("ledger", "day_end"): (DEFAULT | {"DELETE"}, set()),
    ("ledger", "day_end_balance"): (DEFAULT | {"DELETE"}, set()),
    # Written once: template versions and the development SMS provider's messages (notification's grants.sql).
    ("notification", "template"): ({"SELECT", "INSERT"}, set()),
    ("notification", "sms_message"): ({"SELECT", "INSERT"}, set()),
}

each_worker = pytest.mark.parametrize("worker", WORKERS)


@asynccontextmanager
async def runtime(worker: str) -> AsyncIterator[asyncpg.Connection]:
    """Connected exactly as the running worker connects (bus.db uses the same DSN and search_path)."""
    conn = await asyncpg.connect(load().worker_database_url(worker), server_settings={"search_path": worker})
    try:
        yield conn
    finally:
        await conn.close()


async def refused(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    """The statement is refused for want of a privilege; had it run, its effect is rolled back."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        with pytest.raises(REFUSED):
            await conn.execute(sql, *args)
    finally:
        await transaction.rollback()


async def tables_of(admin_db: asyncpg.Pool, schema: str) -> list[str]:
    rows = await admin_db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema)
    return [r["tablename"] for r in rows]


@each_worker
async def test_the_schema_belongs_to_an_owner_role_that_cannot_log_in(infra, admin_db: asyncpg.Pool, worker: str) -> None:
    owner, runtime_role = migrate.owner_name(worker), role_name(worker)
    assert await admin_db.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", worker) == owner
    owners = await admin_db.fetch(
        "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        worker,
    )
    assert {r["relname"] for r in owners} >= {"inbox", "outbox", "saga_step", "partner_grant", "schema_migrations"}
    assert {r["owner"] for r in owners} == {owner}
    functions = await admin_db.fetch(
        "SELECT pg_get_userbyid(p.proowner) AS owner FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
        worker,
    )
    assert {r["owner"] for r in functions} <= {owner}
    roles = {r["rolname"]: r for r in await admin_db.fetch(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = ANY($1::text[])", [owner, runtime_role])}  # fmt: skip
    assert not roles[owner]["rolcanlogin"] and roles[runtime_role]["rolcanlogin"]
    for role in roles.values():
        assert not (role["rolsuper"] or role["rolcreaterole"] or role["rolcreatedb"] or role["rolbypassrls"])
    # Neither may act as the other.
    assert not await admin_db.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", runtime_role, owner)
    assert not await admin_db.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", owner, runtime_role)
    parts = urlsplit(load().worker_database_url(worker))
    as_owner = urlunsplit(parts._replace(netloc=parts.netloc.replace(runtime_role, owner, 1)))
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="not permitted to log in"):
        await asyncpg.connect(as_owner)
    async with runtime(worker) as conn:
        await refused(conn, f"SET ROLE {owner}")


@each_worker
async def test_the_runtime_role_has_only_the_privileges_its_work_needs(
    infra, admin_db: asyncpg.Pool, worker: str
) -> None:
    runtime_role = role_name(worker)
    for table in await tables_of(admin_db, worker):
        held = {
            p for p in TABLE_PRIVILEGES
            if await admin_db.fetchval("SELECT has_table_privilege($1, $2, $3)", runtime_role, f"{worker}.{table}", p)
        }  # fmt: skip
        if table == "schema_migrations":
            expected, columns = set(), set()
        else:
            expected, columns = NARROWED.get((worker, table), (DEFAULT, set()))
        assert held == expected, (worker, table)
        updatable = {
            r["attname"] for r in await admin_db.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $2::regclass AND attnum > 0 AND NOT attisdropped "
                "AND has_column_privilege($1, attrelid, attnum, 'UPDATE')", runtime_role, f"{worker}.{table}")
        }  # fmt: skip
        if "UPDATE" not in expected:
            assert updatable == columns, (worker, table)
    for sequence in await admin_db.fetch("SELECT sequencename FROM pg_sequences WHERE schemaname = $1", worker):
        name = f"{worker}.{sequence['sequencename']}"
        assert await admin_db.fetchval("SELECT has_sequence_privilege($1, $2, 'USAGE')", runtime_role, name)
        assert not await admin_db.fetchval("SELECT has_sequence_privilege($1, $2, 'UPDATE')", runtime_role, name)
    assert await admin_db.fetchval("SELECT has_schema_privilege($1, $2, 'USAGE')", runtime_role, worker)
    for schema in (worker, "public"):
        assert not await admin_db.fetchval("SELECT has_schema_privilege($1, $2, 'CREATE')", runtime_role, schema)
    for privilege in ("CREATE", "TEMPORARY"):
        assert not await admin_db.fetchval(
            "SELECT has_database_privilege($1, current_database(), $2)", runtime_role, privilege
        )
    # And it does its work: reads every table of its own schema.
    async with runtime(worker) as conn:
        for table in await tables_of(admin_db, worker):
            if table != "schema_migrations":
                await conn.fetch(f"SELECT * FROM {worker}.{table} LIMIT 1")
        transaction = conn.transaction()
        await transaction.start()
        try:
            message_id = f"roles-{uuid.uuid4()}"
            await conn.execute(
                "INSERT INTO inbox (consumer, message_id, request_hash) VALUES ('roles-test', $1, 'h')", message_id
            )
            await conn.execute("UPDATE inbox SET reply = '{}'::jsonb WHERE consumer = 'roles-test' AND message_id = $1",
                               message_id)  # fmt: skip
        finally:
            await transaction.rollback()


# The tables a worker's grants.sql lets its runtime role delete from, each with its reason there:
# the ledger's day-end cut, taken anew when a date is closed again.
DELETE_WIDENED = {key for key, (privileges, _) in NARROWED.items() if "DELETE" in privileges}


@each_worker
async def test_the_runtime_role_is_refused_ddl_truncate_and_trigger_changes(
    infra, admin_db: asyncpg.Pool, worker: str
) -> None:
    tables = await tables_of(admin_db, worker)
    triggers = await admin_db.fetch(
        "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal",
        worker,
    )
    functions = await admin_db.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
        worker,
    )
    async with runtime(worker) as conn:
        await refused(conn, f"CREATE TABLE {worker}.intruder (x int)")
        await refused(conn, "CREATE TABLE public.intruder (x int)")
        await refused(conn, "CREATE TEMP TABLE intruder (x int)")
        await refused(conn, "CREATE SCHEMA intruder")
        await refused(conn, f"CREATE FUNCTION {worker}.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        for table in tables:
            name = f"{worker}.{table}"
            await refused(conn, f"TRUNCATE {name}")
            if (worker, table) not in DELETE_WIDENED:
                await refused(conn, f"DELETE FROM {name}")
            await refused(conn, f"ALTER TABLE {name} DISABLE TRIGGER ALL")
            await refused(conn, f"ALTER TABLE {name} ADD COLUMN intruder int")
            await refused(conn, f"CREATE INDEX ON {name} ((1))")
            await refused(conn, f"DROP TABLE {name}")
        for trigger in triggers:
            name = f"{worker}.{trigger['relname']}"
            await refused(conn, f"ALTER TABLE {name} DISABLE TRIGGER {trigger['tgname']}")
            await refused(conn, f"DROP TRIGGER {trigger['tgname']} ON {name}")
        for function in functions:
            # Changing a function (the audit trigger's, say) would change what a trigger does.
            await refused(conn, f"ALTER FUNCTION {function['signature']} RENAME TO intruder")
            await refused(conn, f"DROP FUNCTION {function['signature']}")
        await refused(conn, "SET session_replication_role = replica")  # what would skip every trigger


@each_worker
async def test_the_runtime_role_reads_nothing_in_another_schema(infra, admin_db: asyncpg.Pool, worker: str) -> None:
    async with runtime(worker) as conn:
        await refused(conn, f"SELECT * FROM {worker}.schema_migrations")
        for other in WORKERS:
            if other == worker:
                continue
            assert not await admin_db.fetchval("SELECT has_schema_privilege($1, $2, 'USAGE')", role_name(worker), other)
            for table in await tables_of(admin_db, other):
                await refused(conn, f"SELECT * FROM {other}.{table} LIMIT 1")
            await refused(conn, f"INSERT INTO {other}.inbox (consumer, message_id, request_hash) VALUES ('x', 'y', 'z')")


@each_worker
async def test_migrating_again_is_a_no_op_that_keeps_owners_and_grants(infra, admin_db: asyncpg.Pool, worker: str) -> None:
    before = await _privileges(admin_db, worker)
    assert "payload" in str(before) or worker != "audit"
    assert await migrate.migrate(load(), (worker,)) == {worker: []}
    assert await _privileges(admin_db, worker) == before


async def _privileges(conn: asyncpg.Pool | asyncpg.Connection, schema: str) -> list[tuple[object, ...]]:
    """Owners and access lists of the schema, everything in it, its columns, and the database."""
    rows = await conn.fetch(
        "SELECT 'schema', nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace WHERE nspname = $1 "
        "UNION ALL SELECT 'relation', c.relname, pg_get_userbyid(c.relowner), c.relacl::text FROM pg_class c "
        "  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 "
        "UNION ALL SELECT 'column', c.relname || '.' || a.attname, NULL, a.attacl::text FROM pg_attribute a "
        "  JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "  WHERE n.nspname = $1 AND a.attacl IS NOT NULL "
        "UNION ALL SELECT 'function', p.proname, pg_get_userbyid(p.proowner), p.proacl::text FROM pg_proc p "
        "  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 "
        "UNION ALL SELECT 'database', '', NULL, datacl::text FROM pg_database WHERE datname = current_database() "
        "UNION ALL SELECT 'public', '', NULL, nspacl::text FROM pg_namespace WHERE nspname = 'public' "
        "ORDER BY 1, 2",
        schema,
    )
    return [tuple(r) for r in rows]


async def _migrate_the_old_way(conn: asyncpg.Connection, worker: str) -> None:
    """As the runner did before owner roles: the runtime role owned the schema and ran the migrations."""
    role = role_name(worker)
    await conn.execute(f"CREATE SCHEMA {worker} AUTHORIZATION {role}")
    await conn.execute(
        f"CREATE TABLE {worker}.schema_migrations ("
        "version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute(f"ALTER TABLE {worker}.schema_migrations OWNER TO {role}")
    for migration in migrate.migrations_for(worker):
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            await conn.execute(f"SET LOCAL search_path = {worker}")
            await conn.execute(migration.sql)
            await conn.execute(f"INSERT INTO {worker}.schema_migrations (version, checksum) VALUES ($1, $2)",
                               migration.version, migration.checksum)  # fmt: skip


@each_worker
async def test_a_database_from_before_owner_roles_is_converted(infra, admin_db: asyncpg.Pool, worker: str) -> None:
    """The next migrate hands everything to the owner role and grants as on a fresh database."""
    settings = load()
    scratch = f"{database_name(settings.database_url)}_legacy_{worker}"
    legacy = replace(settings, database_url=with_database(settings.database_url, scratch))
    try:
        await migrate.ensure_database(legacy)
        conn = await asyncpg.connect(legacy.database_url)
        try:
            await _migrate_the_old_way(conn, worker)
            assert await migrate.migrate(legacy, (worker,)) == {worker: []}
            converted = await _privileges(conn, worker)
            assert await migrate.migrate(legacy, (worker,)) == {worker: []}  # and once converted, stays so
            assert await _privileges(conn, worker) == converted
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(with_database(settings.database_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            await admin.close()
    fresh = await _privileges(admin_db, worker)
    assert [p for p in converted if p[0] != "database"] == [p for p in fresh if p[0] != "database"]


async def test_the_audit_role_appends_and_archives_but_cannot_rewrite_or_erase(infra) -> None:
    async with runtime("audit") as conn:
        # INSERT and SELECT (in a transaction rolled back: the chain stays as the worker made it).
        transaction = conn.transaction()
        await transaction.start()
        try:
            seq = 10**15 + uuid.uuid4().int % 10**9
            await conn.execute(
                "INSERT INTO audit_record (seq, event_id, exchange, routing_key, kind, record_type, status, severity, "
                "risk_score, retention, compliance_flags, regulatory_tags, payload, payload_sha256, payload_bytes, "
                "recorded_at, prev_hash, hash) VALUES ($1, $2, 'cbs.events', 'roles.test', 'event', 'business', "
                "'success', 'info', 0, 'standard', '{}', '{}', '{}', 'sha', 2, now(), $3, $3)",
                seq, f"roles-{seq}", bytes(32),
            )  # fmt: skip
            assert await conn.fetchval("SELECT event_id FROM audit_record WHERE seq = $1", seq) == f"roles-{seq}"
            # Retention's change is allowed by privilege; the trigger still refuses it before expiry.
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(
                    "UPDATE audit_record SET payload = NULL, archived_at = clock_timestamp() WHERE seq = $1", seq
                )
        finally:
            await transaction.rollback()
        async with conn.transaction():
            await audit_store.expired(conn, 1)  # FOR UPDATE SKIP LOCKED, as retention reads
            await audit_store.head(conn)
        # Refused by privilege, whichever rows they would touch.
        await refused(conn, "UPDATE audit_record SET actor = 'mallory' WHERE seq = $1", 1)
        await refused(conn, "UPDATE audit_record SET hash = prev_hash")
        await refused(conn, "UPDATE audit_record SET payload = NULL, archived_at = now(), risk_score = 0")
        await refused(conn, "DELETE FROM audit_record WHERE seq = $1", 1)
        await refused(conn, "TRUNCATE audit_record")
        await refused(conn, "ALTER TABLE audit_record DISABLE TRIGGER audit_record_append_only")
        await refused(conn, "DROP TRIGGER audit_record_append_only ON audit_record")
        await refused(conn, "CREATE TRIGGER intruder BEFORE UPDATE ON audit_record "
                            "FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()")  # fmt: skip
        await refused(conn, "CREATE OR REPLACE FUNCTION audit_record_append_only() RETURNS trigger "
                            "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")  # fmt: skip
        await refused(conn, "INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (true, 0, $1)", bytes(32))
        await refused(conn, "DELETE FROM audit_chain_head")
