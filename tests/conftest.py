"""Test isolation: a fresh RabbitMQ vhost and a fresh PostgreSQL database per test run.

They are named after the run, created on first use by an integration or end-to-end test, and
dropped at the end, so runs never see each other's leftovers and never touch `make run`'s data.
Unit tests use neither. The end-to-end tests take a second set of their own (`separate_infra`,
for the package's duration): the business they leave behind (hundreds of running loans) would
otherwise be accrued, collected and aged by every later close of business in the run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import asyncpg
import pytest

RUN_ID = uuid.uuid4().hex[:10]
VHOST = f"cbs_test_{RUN_ID}"
DATABASE = f"cbs_test_{RUN_ID}"
ADMIN_DSN = os.environ.get("CBS_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432")
# Another broker node (CBS_TEST_AMQP_ADDRESS host:port, with RABBITMQ_NODENAME for rabbitmqctl):
# for when the shared one cannot take a new vhost.
AMQP_ADDRESS = os.environ.get("CBS_TEST_AMQP_ADDRESS", "127.0.0.1:5672")
# What points a process at its vhost, database, broker users and their secrets.
PLACE = ("CBS_AMQP_URL", "CBS_DATABASE_URL", "CBS_BROKER_USER_PREFIX", "CBS_SECRETS_DIR")


def _place(run_id: str, amqp_address: str | None = None) -> dict[str, str]:
    """The vhost, database, broker-user prefix and secrets folder (made now) of `run_id`, on the
    broker at `amqp_address` (the run's, AMQP_ADDRESS, unless named)."""
    # Broker users are per node, not per vhost: the run's processes get users of their own
    # (`cbs-t<run>.edge`, …), with secrets in a folder of the run's, deleted at the end.
    secrets_dir = tempfile.mkdtemp(prefix=f"cbs-test-secrets-{run_id}-")
    # Removed at exit too: a run that never starts the infra (unit tests only) made the folder all the same.
    atexit.register(shutil.rmtree, secrets_dir, True)
    return {"CBS_AMQP_URL": f"amqp://guest:guest@{amqp_address or AMQP_ADDRESS}/cbs_test_{run_id}",
            "CBS_DATABASE_URL": f"{ADMIN_DSN}/cbs_test_{run_id}",
            "CBS_BROKER_USER_PREFIX": f"cbs-t{run_id}.", "CBS_SECRETS_DIR": secrets_dir}  # fmt: skip


# Set before any worker or edge module builds its settings.
os.environ.update(_place(RUN_ID))
os.environ.setdefault("CBS_OUTBOX_POLL_MS", "100")
os.environ.setdefault("CBS_GRACEFUL_TIMEOUT_S", "5")
# The first admin of the run's database (identity creates it on start), shared by every test.
os.environ.setdefault("CBS_ADMIN_USERNAME", "admin")
os.environ.setdefault("CBS_ADMIN_PASSWORD", "test-admin-password-not-a-secret")


# Workers whose schemas this run puts on a PostgreSQL server of its own (tests/pg_server.py), e.g.
# `CBS_TEST_SECOND_SERVER=ledger`: their CBS_<WORKER>_DATABASE_URL names it, and migrations, the
# workers and the tests run there unchanged (`make test-second-server`). Unset: one server.
SECOND_SERVER = tuple(w.strip() for w in os.environ.get("CBS_TEST_SECOND_SERVER", "").split(",") if w.strip())


def moved_env(database: str, server: str) -> dict[str, str]:
    """CBS_<WORKER>_DATABASE_URL of each worker in SECOND_SERVER: `database` on `server`, as its role."""
    host = urlsplit(server).netloc.rpartition("@")[2]
    return {f"CBS_{w.upper()}_DATABASE_URL": f"postgresql://cbs_{w}@{host}/{database}" for w in SECOND_SERVER}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `second_server` run only when the run has one (CBS_TEST_SECOND_SERVER)."""
    if SECOND_SERVER:
        return
    deselected = [item for item in items if item.get_closest_marker("second_server")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("second_server")]


# RabbitMQ 3.10 started with the default soft limit of 1,024 open files has a file handle cache of
# 927 handles, which two vhosts' queues and streams exhaust: every process that then asks for a
# handle waits forever, and the run hangs (CI's, 2026-12-07, in `cbs migrate`). scripts/prepare.sh
# restarts such a node with a higher limit; a run started without it is refused here, explained.
MIN_BROKER_FILE_HANDLES = 9_000


def broker_too_small(nodes: list[dict[str, object]]) -> list[str]:
    """The nodes of the management API's `/api/nodes` whose file handle limit is below the floor."""
    return [f"{n.get('name')}: {n.get('fd_total')} file handles" for n in nodes
            if isinstance(n.get("fd_total"), int) and int(n["fd_total"]) < MIN_BROKER_FILE_HANDLES]  # type: ignore[arg-type]  # fmt: skip


def _refuse_a_broker_too_small(amqp_address: str) -> None:
    """Through the broker's management API (port 15672 of its host), when it answers."""
    import httpx

    host = amqp_address.rpartition(":")[0] or "127.0.0.1"
    try:
        nodes = httpx.get(f"http://{host}:15672/api/nodes", auth=("guest", "guest"), timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return  # no management API here: nothing to tell from
    if isinstance(nodes, list) and (small := broker_too_small(nodes)):
        pytest.exit(f"RabbitMQ would hang this run: {'; '.join(small)}, below {MIN_BROKER_FILE_HANDLES}. "
                    "Run scripts/prepare.sh (it restarts the node with a higher open-files limit).", returncode=3)  # fmt: skip


# --- runs that died ------------------------------------------------------------------------------
# A run killed before its teardown (CI's time running out, a SIGKILL) leaves its vhosts, with their
# quorum queues and streams, its databases, broker users and secrets on the shared services; enough
# of them and the broker runs out of file handles again. Each run holds an exclusive lock on a file
# of its own while it lives (released by the kernel however it ends), and the next run to provision
# deletes what belongs to a run whose file it can lock. A run of code older than this has no file:
# it is never touched.
RUNS_DIR = Path(os.environ.get("CBS_TEST_RUNS_DIR", Path.home() / ".cache" / "cbs-test-runs"))
_RUN_LOCK_FILE: IO[str] | None = None


def hold_run_lock(runs_dir: Path, run_id: str) -> IO[str]:
    """This run's file, locked for as long as the returned file stays open."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    held = open(runs_dir / f"{run_id}.lock", "w")  # noqa: SIM115 (open for the whole run)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return held


def dead_runs(runs_dir: Path, own: str) -> list[str]:
    """The run ids whose file no living run holds."""
    dead = []
    for path in sorted(runs_dir.glob("*.lock")):
        if path.stem == own:
            continue
        with open(path) as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            dead.append(path.stem)
    return dead


def reap_dead_runs(runs_dir: Path, own: str) -> list[str]:
    """Delete what each dead run left: vhosts and databases `cbs_test_<run>*`, broker users
    `cbs-t<run>.*`, secrets folders; then its file. Returns what was deleted."""
    import glob

    from ops import broker_users

    dead = dead_runs(runs_dir, own)
    if not dead:
        return []
    gone: list[str] = []
    vhosts = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, timeout=60).stdout.split()
    databases = asyncio.run(run_databases())
    for run_id in dead:
        # Run ids are all RUN_ID's length: a name that starts with one run's belongs to that run
        # (`cbs_test_<run>`, `cbs_test_<run>_<package>`, users `cbs-t<run>.<process>`, …).
        for vhost in (v for v in vhosts if v.startswith(f"cbs_test_{run_id}")):
            _rabbitmqctl("delete_vhost", vhost)
            gone.append(f"vhost {vhost}")
        gone += [f"user {user}" for user in broker_users.delete_users(prefix=f"cbs-t{run_id}")]
        for database in (d for d in databases if d.startswith(f"cbs_test_{run_id}")):
            asyncio.run(drop_database(database))
            gone.append(f"database {database}")
        for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"cbs-test-secrets-{run_id}*")):
            shutil.rmtree(folder, ignore_errors=True)
        (runs_dir / f"{run_id}.lock").unlink(missing_ok=True)
    return gone


async def run_databases() -> list[str]:
    """Every test run's databases on the server (`cbs_test_*`)."""
    conn = await asyncpg.connect(f"{ADMIN_DSN}/postgres")
    try:
        return [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'cbs\\_test\\_%'")]
    finally:
        await conn.close()


def _this_run_provisions() -> None:
    """Once per run, before its first vhost on the shared node: refuse a node that would hang the
    run, hold this run's file, and reap the dead runs."""
    global _RUN_LOCK_FILE
    if _RUN_LOCK_FILE is not None:
        return
    _refuse_a_broker_too_small(AMQP_ADDRESS)
    _RUN_LOCK_FILE = hold_run_lock(RUNS_DIR, RUN_ID)
    atexit.register((RUNS_DIR / f"{RUN_ID}.lock").unlink, missing_ok=True)
    for what in reap_dead_runs(RUNS_DIR, RUN_ID):
        print(f"[tests] deleted what a dead run left: {what}")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def _provisioned() -> Iterator[dict[str, str]]:
    """The vhost and database `os.environ` names, made, migrated and with the whole topology
    declared and the broker users made; all of it (and the secrets folder) gone at the end."""
    vhost = urlsplit(os.environ["CBS_AMQP_URL"]).path.lstrip("/")
    database = urlsplit(os.environ["CBS_DATABASE_URL"]).path.lstrip("/")
    assert vhost.startswith("cbs_test_") and database.startswith("cbs_test_"), "a test run's own, never make run's"
    with contextlib.ExitStack() as stack:
        made: dict[str, str] = {}
        if SECOND_SERVER:
            from tests.pg_server import private_server

            made["second_server"] = stack.enter_context(private_server())
            moved = moved_env(database, made["second_server"])
            saved = {name: os.environ.get(name) for name in moved}
            stack.callback(_restore_env, saved)
            os.environ.update(moved)
        if "RABBITMQ_NODENAME" not in os.environ:  # the shared node, not a test's private cluster
            _this_run_provisions()
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        from ops.cli import main as cbs

        try:
            assert cbs(["migrate"]) == 0
            yield {"amqp_url": os.environ["CBS_AMQP_URL"], "database_url": os.environ["CBS_DATABASE_URL"], **made}
        finally:
            from ops import broker_users

            try:
                _rabbitmqctl("delete_vhost", vhost)
                broker_users.delete_users()
            finally:  # a broker that does not answer still leaves no database behind
                shutil.rmtree(os.environ["CBS_SECRETS_DIR"], ignore_errors=True)
                asyncio.run(drop_database(database))


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def infra() -> Iterator[dict[str, str]]:
    """The run's own vhost and database, migrated and with the whole topology declared."""
    with _provisioned() as made:
        yield made


@contextlib.contextmanager
def separate_infra(
    label: str, amqp_address: str | None = None, rabbitmq_node: str | None = None
) -> Iterator[dict[str, str]]:
    """A vhost, database, broker users and secrets of their own (`cbs_test_<run>_<label>`), made
    as `infra`'s are; `os.environ` names them until the end, then the run's own again.

    `amqp_address` and `rabbitmq_node` put them on another broker (tests/cluster: a private
    cluster, whose processes connect to `amqp_address` and whose users and vhost `rabbitmqctl`
    makes on `rabbitmq_node`)."""
    saved = {name: os.environ.get(name) for name in (*PLACE, "RABBITMQ_NODENAME")}
    os.environ.update(_place(f"{RUN_ID}_{label}", amqp_address))
    if rabbitmq_node is not None:
        os.environ["RABBITMQ_NODENAME"] = rabbitmq_node
    try:
        with _provisioned() as made:
            yield made
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def on_admin_database(statement: str) -> None:
    """One statement on the server's `postgres` database, as the admin (CREATE or DROP DATABASE)."""
    conn = await asyncpg.connect(f"{ADMIN_DSN}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def drop_database(database: str) -> None:
    await on_admin_database(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def admin_db(infra: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A superuser pool on the run's database, for assertions across schemas (with a second server,
    one that sends a statement naming a moved worker's schema to that server)."""
    pool = await asyncpg.create_pool(infra["database_url"], min_size=1, max_size=4)
    assert pool is not None
    if not SECOND_SERVER:
        yield pool
        await pool.close()
        return
    from bus.settings import load
    from tests.pg_server import SchemaRoutedPool

    moved = {}
    for worker in SECOND_SERVER:
        moved[worker] = await asyncpg.create_pool(load().admin_database_url(worker), min_size=1, max_size=2)
    routed = SchemaRoutedPool(pool, moved)
    yield routed  # type: ignore[misc]
    await routed.close()
