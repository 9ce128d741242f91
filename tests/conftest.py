"""Test isolation: a fresh RabbitMQ vhost and a fresh PostgreSQL database per test run.

They are named after the run, created on first use by an integration or end-to-end test, and
dropped at the end, so runs never see each other's leftovers and never touch `make run`'s data.
Unit tests use neither.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

RUN_ID = uuid.uuid4().hex[:10]
VHOST = f"cbs_test_{RUN_ID}"
DATABASE = f"cbs_test_{RUN_ID}"
ADMIN_DSN = os.environ.get("CBS_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432")

# Set before any worker or edge module builds its settings.
# Another broker node (host:port; `rabbitmqctl` then needs its RABBITMQ_NODENAME) when the shared one is unwell.
AMQP_HOST = os.environ.get("CBS_TEST_AMQP_HOST", "127.0.0.1:5672")
os.environ["CBS_AMQP_URL"] = f"amqp://guest:guest@{AMQP_HOST}/{VHOST}"
os.environ["CBS_DATABASE_URL"] = f"{ADMIN_DSN}/{DATABASE}"
os.environ.setdefault("CBS_OUTBOX_POLL_MS", "100")
os.environ.setdefault("CBS_GRACEFUL_TIMEOUT_S", "5")
# Broker users are per node, not per vhost: the run's processes get users of their own
# (`cbs-t<run>.edge`, …), with secrets in a folder of the run's, deleted at the end.
os.environ["CBS_BROKER_USER_PREFIX"] = f"cbs-t{RUN_ID}."
os.environ["CBS_SECRETS_DIR"] = tempfile.mkdtemp(prefix=f"cbs-test-secrets-{RUN_ID}-")
# Removed at exit too: a run that never starts the infra (unit tests only) made the folder all the same.
atexit.register(shutil.rmtree, os.environ["CBS_SECRETS_DIR"], True)
# The first admin of the run's database (identity creates it on start), shared by every test.
os.environ.setdefault("CBS_ADMIN_USERNAME", "admin")
os.environ.setdefault("CBS_ADMIN_PASSWORD", "test-admin-password-not-a-secret")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def infra() -> Iterator[dict[str, str]]:
    """The run's own vhost and database, migrated and with the whole topology declared."""
    _rabbitmqctl("add_vhost", VHOST)
    _rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    from ops.cli import main as cbs

    assert cbs(["migrate"]) == 0
    try:
        yield {"amqp_url": os.environ["CBS_AMQP_URL"], "database_url": os.environ["CBS_DATABASE_URL"]}
    finally:
        from ops import broker_users

        _rabbitmqctl("delete_vhost", VHOST)
        broker_users.delete_users()
        shutil.rmtree(os.environ["CBS_SECRETS_DIR"], ignore_errors=True)
        asyncio.run(_drop_database())


async def _drop_database() -> None:
    conn = await asyncpg.connect(f"{ADMIN_DSN}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def admin_db(infra: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A superuser pool on the run's database, for assertions across schemas."""
    pool = await asyncpg.create_pool(infra["database_url"], min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()
