"""`cbs backup` and `cbs restore`: every worker's schema, each dumped from the server that holds it.

A backup is a folder: one `pg_dump --format=custom --schema=<worker>` file a worker, and
`manifest.json` naming, for each, its schema, its server (host:port/database, never a secret),
its latest applied migration, the file's size and sha256, and every table's row count and
checksum. The schemas that share a database are dumped from one exported snapshot (`pg_dump
--snapshot`), so together they are one moment of that database; schemas on different servers
are each consistent, and the bus (outbox, inbox, idempotent handlers) reconciles what was in
flight between them, as after any crash.

A restore goes into databases that do not hold the schemas yet (a new server, or a database
named by CBS_DATABASE_URL / CBS_<WORKER>_DATABASE_URL that is empty): each file's sha256 is
checked, the worker's roles are made (as `cbs migrate` makes them), `pg_restore` runs in one
transaction, and then the drill checks what it restored: the migrations table equals the
manifest's, every table's row count and checksum equal the manifest's, the ledger's balances
equal its transfers (the check `ledger.verify` answers with) and the audit hash chain verifies
to its head (as `cbs audit verify`). Last, `cbs migrate`'s runner sets the database-level
grants (a schema dump holds none) and applies any migration newer than the backup.

pg_dump and pg_restore must be of the servers' major version or newer: the programs are taken
from CBS_PG_BINDIR, else /usr/lib/postgresql/<the server's major>/bin (Debian), else PATH.
A password in a DSN is handed to them in PGPASSWORD, never on their command line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from bus import db, migrate
from bus.settings import WORKERS, Settings, server_label

MANIFEST = "manifest.json"
FORMAT = "cbs-backup/1"
# The row text a checksum hashes depends on these; both ends of a drill set them alike.
CANONICAL_SESSION = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "3"}
# A table's checksum: each row's text hashed (md5, its first 60 bits as a number) and summed, so the
# rows' order does not matter and no row is held in memory.
ROW_SUM = "coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint), 0)::text"
COMMAND_TIMEOUT_S = 3600  # one schema's dump or restore


class BackupError(RuntimeError):
    """A backup that cannot be made, or a restore that must not go on; the message says why."""


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: str  # order-free: the sum of every row's md5 (its first 60 bits), as text


@dataclass(frozen=True)
class Entry:
    worker: str
    schema: str
    server: str  # host:port/database it was dumped from
    latest_migration: str | None
    migrations: list[str]
    file: str
    bytes: int
    sha256: str
    tables: dict[str, TableSum] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    format: str
    created_at: str
    pg_dump: str
    entries: list[Entry]

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @staticmethod
    def read(folder: Path) -> Manifest:
        try:
            raw = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise BackupError(f"{folder}: no {MANIFEST}: not a cbs backup") from None
        if raw.get("format") != FORMAT:
            raise BackupError(f"{folder}: format {raw.get('format')!r}, expected {FORMAT!r}")
        entries = [Entry(**{**e, "tables": {t: TableSum(**s) for t, s in e["tables"].items()}}) for e in raw["entries"]]
        return Manifest(raw["format"], raw["created_at"], raw["pg_dump"], entries)


# -- the programs --------------------------------------------------------------------------------


def program(name: str, server_major: int | None = None) -> str:
    """pg_dump or pg_restore: CBS_PG_BINDIR's, else Debian's for the server's major version, else PATH's."""
    if os.environ.get("CBS_PG_BINDIR"):
        return str(Path(os.environ["CBS_PG_BINDIR"]) / name)
    if server_major is not None:
        debian = Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")
        if debian.exists():
            return str(debian)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"no {name}: install PostgreSQL's client programs or set CBS_PG_BINDIR")
    return found


def without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries it (PGPASSWORD)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, {}
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}")), {"PGPASSWORD": unquote(parts.password)}


async def _run(argv: list[str], env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, **env})  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BackupError(f"{Path(argv[0]).name}: no end within {COMMAND_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return out.decode()


async def _server_major(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SHOW server_version_num")) // 10_000


# -- what a schema holds -------------------------------------------------------------------------


async def table_sums(conn: asyncpg.Connection, schema: str) -> dict[str, TableSum]:
    """Every table of the schema: its row count and an order-free checksum of its rows' text."""
    tables = [r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema)]  # fmt: skip
    sums: dict[str, TableSum] = {}
    for table in tables:  # names from the catalog, quoted
        row = await conn.fetchrow(f'SELECT count(*) AS n, {ROW_SUM} AS s FROM "{schema}"."{table}" t')  # noqa: S608
        sums[table] = TableSum(int(row["n"]), row["s"])
    return sums


async def applied_migrations(conn: asyncpg.Connection, schema: str) -> list[str]:
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations"):
        return []
    # In the order they were applied (bus_* before the worker's own): the last is the latest.
    return [r["version"] for r in await conn.fetch(
        f"SELECT version FROM {schema}.schema_migrations ORDER BY applied_at, version")]  # fmt: skip


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- backup --------------------------------------------------------------------------------------


async def backup(settings: Settings, folder: Path, workers: tuple[str, ...] = WORKERS) -> Manifest:
    """Dump every worker's schema into `folder` (made; it must be empty) and write the manifest last."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: a backup goes into a folder of its own")
    entries: dict[str, Entry] = {}
    versions: set[str] = set()
    for dsn, here in settings.servers(workers).items():
        made, version = await _backup_server(dsn, here, folder)
        entries.update(made)
        versions.add(version)
    manifest = Manifest(FORMAT, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), " | ".join(sorted(versions)),
                        [entries[w] for w in workers])  # fmt: skip
    (folder / MANIFEST).write_text(manifest.as_json())
    return manifest


async def _backup_server(dsn: str, workers: tuple[str, ...], folder: Path) -> tuple[dict[str, Entry], str]:
    """The workers of one database, dumped from one exported snapshot (one moment of it)."""
    conn = await asyncpg.connect(dsn, server_settings=CANONICAL_SESSION)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            dump = program("pg_dump", await _server_major(conn))
            version = (await _run([dump, "--version"], {})).strip()
            plain, env = without_password(dsn)
            made: dict[str, Entry] = {}
            for worker in workers:
                if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", worker):
                    raise BackupError(f"{worker}: no schema in {server_label(dsn)} (run `cbs migrate`)")
                target = folder / f"{worker}.dump"
                await _run([dump, "--format=custom", f"--schema={worker}", f"--snapshot={snapshot}", "--no-password",
                            f"--file={target}", f"--dbname={plain}"], env)  # fmt: skip
                migrations = await applied_migrations(conn, worker)
                made[worker] = Entry(
                    worker=worker, schema=worker, server=server_label(dsn),
                    latest_migration=migrations[-1] if migrations else None, migrations=migrations, file=target.name,
                    bytes=target.stat().st_size, sha256=sha256_of(target), tables=await table_sums(conn, worker),
                )  # fmt: skip
            return made, version
    finally:
        await conn.close()


# -- restore -------------------------------------------------------------------------------------


@dataclass
class Restored:
    worker: str
    server: str
    latest_migration: str | None
    tables: int
    rows: int
    checks: dict[str, Any]
    applied_after: list[str]

    @property
    def ok(self) -> bool:
        return all(v is True or (isinstance(v, dict) and v.get("ok") is True) for v in self.checks.values())


def check_files(folder: Path, manifest: Manifest) -> None:
    for entry in manifest.entries:
        path = folder / entry.file
        if not path.exists():
            raise BackupError(f"{entry.worker}: {entry.file} is missing")
        if sha256_of(path) != entry.sha256:
            raise BackupError(f"{entry.worker}: {entry.file} does not match its sha256 in the manifest")


async def restore(settings: Settings, folder: Path, workers: tuple[str, ...] | None = None) -> list[Restored]:
    """Restore the backup's schemas (all, or `workers`) where `settings` puts each, then check them."""
    manifest = Manifest.read(folder)
    chosen = [e for e in manifest.entries if workers is None or e.worker in workers]
    if workers is not None and {e.worker for e in chosen} != set(workers):
        raise BackupError(f"not in the backup: {sorted(set(workers) - {e.worker for e in chosen})}")
    check_files(folder, manifest)
    return [await _restore_one(settings, folder, entry) for entry in chosen]


async def _restore_one(settings: Settings, folder: Path, entry: Entry) -> Restored:
    dsn = settings.admin_database_url(entry.worker)
    await migrate.ensure_database(dsn)
    conn = await asyncpg.connect(dsn, server_settings=CANONICAL_SESSION)
    try:
        if await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", entry.schema):
            raise BackupError(f"{entry.worker}: schema {entry.schema} exists in {server_label(dsn)}: a restore goes "
                              "into a database without it (drop it, or name another database)")  # fmt: skip
        await migrate.ensure_roles(conn, entry.worker, settings.db_role_password)
        plain, env = without_password(dsn)
        restore_program = program("pg_restore", await _server_major(conn))
        await _run([restore_program, "--exit-on-error", "--single-transaction", "--no-password", f"--dbname={plain}",
                    str(folder / entry.file)], env)  # fmt: skip
        checks: dict[str, Any] = {}
        migrations = await applied_migrations(conn, entry.schema)
        checks["migrations_match"] = migrations == entry.migrations
        sums = await table_sums(conn, entry.schema)
        differing = sorted(t for t in set(sums) | set(entry.tables) if sums.get(t) != entry.tables.get(t))
        checks["tables_match"] = {"ok": not differing, "differing": differing}
    finally:
        await conn.close()
    checks.update(await worker_checks(dsn, entry.worker))
    applied_after = (await migrate.migrate_on(dsn, (entry.worker,), settings.db_role_password))[entry.worker]
    return Restored(entry.worker, server_label(dsn), migrations[-1] if migrations else None, len(sums),
                    sum(s.rows for s in sums.values()), checks, applied_after)  # fmt: skip


async def worker_checks(dsn: str, worker: str) -> dict[str, Any]:
    """The worker's own check of its data, read as the worker reads it (its schema on the path):
    the ledger's balances against its transfers, the audit chain to its head."""
    if worker not in ("ledger", "audit"):
        return {}
    pool = await db.create_pool(dsn, worker, max_size=1, application_name="cbs-restore")
    try:
        async with pool.acquire() as conn:
            return {"ledger_verify": await ledger_verify(conn)} if worker == "ledger" else {
                "audit_chain": await audit_chain(conn)}  # fmt: skip
    finally:
        await pool.close()


async def ledger_verify(conn: asyncpg.Connection) -> dict[str, Any]:
    """What `cbs ledger verify` answers, computed here (the same query and rule as the worker's)."""
    from workers.ledger import store
    from workers.ledger.domain import accounts

    mismatches, totals, accounts_checked, transfers_checked = await store.verify(conn)
    result = accounts.verified(mismatches, totals, accounts_checked=accounts_checked,
                               transfers_checked=transfers_checked)  # fmt: skip
    return result.model_dump(mode="json")


async def audit_chain(conn: asyncpg.Connection) -> dict[str, Any]:
    """The hash chain from its first record to the stored head, as `cbs audit verify` walks it."""
    import sys

    from workers.audit import store
    from workers.audit.domain import chain
    from workers.audit.handlers.records import walk_chain

    head = await store.head(conn)
    walk = await walk_chain(conn, 1, chain.GENESIS, head.last_seq, sys.maxsize)
    if walk.broken is not None:
        return {"ok": False, "records_checked": walk.checked, "first_broken_seq": walk.broken[0], "reason": walk.broken[1]}
    if walk.last_hash != head.last_hash:
        return {"ok": False, "records_checked": walk.checked, "first_broken_seq": head.last_seq, "reason": "head_mismatch"}
    return {"ok": True, "records_checked": walk.checked, "last_seq": head.last_seq}
