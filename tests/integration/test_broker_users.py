"""`cbs migrate`'s broker users: one per kind of process, made through either admin path."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import aio_pika
import pytest

from ops import broker_users
from bus.settings import PROCESSES, broker_user, load
from tests.conftest import VHOST

MANAGEMENT_API = "http://127.0.0.1:15672"  # scripts/prepare.sh enables the management plugin


@pytest.fixture
def own_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Users and secrets of this test alone (users are per node), deleted at its end."""
    monkeypatch.setenv("CBS_BROKER_USER_PREFIX", f"cbs-bu{uuid.uuid4().hex[:8]}.")
    monkeypatch.setenv("CBS_SECRETS_DIR", str(tmp_path))
    yield tmp_path
    broker_users.delete_users()


async def _logs_in(process: str) -> bool:
    try:
        connection = await aio_pika.connect(load().process_amqp_url(process), timeout=10)
    except aio_pika.exceptions.ProbableAuthenticationError:
        return False
    await connection.close()
    return True


@pytest.mark.parametrize("through", ["rabbitmqctl", "management API"])
async def test_every_process_gets_its_own_user_and_secret(through: str, infra: dict[str, str], own_prefix: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    if through == "management API":
        monkeypatch.setenv("CBS_RABBITMQ_API_URL", MANAGEMENT_API)  # as compose.yaml's migrate does
    made = broker_users.ensure_users(VHOST, infra["amqp_url"])
    assert made == [broker_user(p) for p in PROCESSES]
    secrets = {p: (own_prefix / f"broker-{p}.secret") for p in PROCESSES}
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in secrets.values()), "secrets readable by others"
    assert len({f.read_text() for f in secrets.values()}) == len(PROCESSES), "two processes share a secret"
    for process in ("edge", "ledger", "ops"):
        assert await _logs_in(process), process
    # Running it again keeps the secrets (processes already running keep working) ...
    before = {p: f.read_text() for p, f in secrets.items()}
    broker_users.ensure_users(VHOST, infra["amqp_url"])
    assert before == {p: f.read_text() for p, f in secrets.items()}
    # ... and a secret given in the environment wins over the file (production supplies its own).
    monkeypatch.setenv("CBS_EDGE_BROKER_PASSWORD", "edge-secret-from-the-environment")
    broker_users.ensure_users(VHOST, infra["amqp_url"])
    assert await _logs_in("edge")
    os.environ.pop("CBS_EDGE_BROKER_PASSWORD")
    assert not await _logs_in("edge"), "the file's old secret still opens the edge's user"


def test_permissions_are_least_privilege() -> None:
    """Pure: what each kind of process may do, as migrate sets it."""
    worker = broker_users.permissions_of("customer")
    assert (worker.configure, worker.commands_write) == ("^$", "^$")  # declares nothing, asks nobody
    assert worker.events_write == r"^(customer\.)" and worker.read == r"^(customer\.)"
    assert broker_users.permissions_of("payment").commands_write == r"^(ledger\.)"
    # Identity asks the notification worker to send a one-time password, and nothing else of anyone.
    assert broker_users.permissions_of("identity").commands_write == r"^(notification\.)"
    edge = broker_users.permissions_of("edge")
    assert edge.events_write == r"^(edge\.)" and "customer" not in edge.read
    assert broker_users.TAGS == {"dlq": ("impersonator",)}  # nobody else may keep another's user_id
