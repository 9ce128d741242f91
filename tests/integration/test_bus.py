"""The bus's own machinery on the real services: dead letters, replay, migrations."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest


from bus import migrate, topology
from ops import dlq
from bus.settings import load
from contracts import account as a
from tests.integration.conftest import BusClient, dead_letter_as_guest, eventually


async def test_malformed_command_is_answered_and_dead_lettered_then_listed(bus: BusClient, infra) -> None:
    message_id = f"bad-{uuid.uuid4()}"
    reply = await bus.correlator.request(
        "account.get_account", {"account_id": "not-a-uuid"}, "account.get_account.v1", message_id=message_id, timeout_s=10
    )
    assert reply.error is not None and reply.error.code == "invalid_message"
    assert reply.error.details and reply.error.details[0]["loc"] == ["account_id"]

    async def listed():
        return [d for d in await dlq.list_dead(infra["amqp_url"]) if d.message_id == message_id]

    [letter] = await eventually(listed)
    assert letter.routing_key == "account.get_account" and letter.reason == "rejected"
    # Listing only peeks: the letter is still there.
    assert await listed()


async def test_replay_sends_a_dead_letter_back_to_its_queue_under_its_first_sender(infra, admin_db) -> None:
    message_id = f"replayed-{uuid.uuid4()}"
    command = a.FreezeAccount(account_id=uuid.uuid4(), actor="ops", reason="replay test")
    # As RabbitMQ dead-letters: same routing key and properties, onto cbs.dlx. Sent by a user that is
    # neither the edge, a partner nor a service ("guest"), whose user_id the replay must keep.
    await dead_letter_as_guest(infra["amqp_url"], command, message_id)

    async def listed():
        return [d for d in await dlq.list_dead(infra["amqp_url"]) if d.message_id == message_id]

    await eventually(listed)
    assert await dlq.replay(load().process_amqp_url("dlq"), {message_id}) == [message_id]

    async def refused():
        return await admin_db.fetchval(
            "SELECT payload FROM account.outbox WHERE routing_key = 'account.access_denied' "
            "AND payload->>'command_message_id' = $1",
            message_id,
        )

    # Back on its queue, still as guest's: so refused `unauthenticated`, not acted on as the replayer's.
    payload = await eventually(refused)
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert (payload["code"], payload["broker_user"]) == ("unauthenticated", "guest")
    assert not await listed()


async def test_migrations_are_recorded_and_an_edited_one_is_refused(infra, tmp_path: Path, monkeypatch) -> None:
    conn = await asyncpg.connect(load().database_url)
    try:
        assert await migrate.migrate_worker(conn, "account") == []  # already applied by the fixture
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM account.schema_migrations ORDER BY 1")]
        assert versions == sorted(m.version for m in migrate.migrations_for("account"))
        assert "0001_accounts" in versions and "bus_0001_inbox_outbox" in versions

        edited = tmp_path / "0001_accounts.sql"
        edited.write_text("-- edited after it was applied\n")
        monkeypatch.setattr(migrate, "migrations_for", lambda worker: [migrate.Migration("0001_accounts", edited)])
        with pytest.raises(migrate.MigrationError, match="was edited"):
            await migrate.migrate_worker(conn, "account")
    finally:
        await conn.close()


async def test_each_worker_role_sees_only_its_own_schema(infra) -> None:
    settings = load()
    conn = await asyncpg.connect(settings.worker_database_url("account"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM account.account") >= 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM customer.inbox")
    finally:
        await conn.close()


def test_every_queue_is_quorum_with_dead_lettering_and_bounds() -> None:
    for worker in topology.WORKER_CONTRACTS:
        for key in topology.command_keys(worker):
            queue = topology.command_queue(key)
            args = json.loads(json.dumps(queue.arguments))
            assert args["x-queue-type"] == "quorum"
            assert args["x-dead-letter-exchange"] == "cbs.dlx" and args["x-dead-letter-strategy"] == "at-least-once"
            assert args["x-overflow"] == "reject-publish"
            assert args["x-max-length"] > 0 and args["x-delivery-limit"] > 0


async def test_a_nul_character_is_refused_as_invalid_not_retried(bus: BusClient) -> None:
    """PostgreSQL text cannot hold U+0000: such a message is refused once, never redelivered."""
    reply = await bus.correlator.request(
        "customer.search_customers", {"query": "a\x00b"}, "customer.search_customers.v1",
        message_id=f"nul-{uuid.uuid4()}", timeout_s=10,
    )  # fmt: skip
    assert reply.error is not None and reply.error.code == "invalid_message" and "NUL" in reply.error.message
    legit = await bus.correlator.request(
        "customer.search_customers", {"query": "a\\u0000b"}, "customer.search_customers.v1",  # a backslash, not a NUL
        message_id=f"nul-{uuid.uuid4()}", timeout_s=10,
    )  # fmt: skip
    assert legit.ok


async def test_a_reply_counts_only_from_the_worker_asked(edge_bus: BusClient) -> None:
    """Every worker may write to the default exchange (to reply), so any could push a reply into
    the edge's reply queue: the correlator takes a reply only from the worker it asked."""
    import asyncio

    from bus.settings import broker_user
    from contracts.common import Reply
    from tests.integration.conftest import publish_as

    correlator = edge_bus.correlator
    correlation_id = uuid.uuid4().hex
    future = asyncio.get_running_loop().create_future()
    correlator._pending[correlation_id] = (future, broker_user("ledger"))  # as `request` leaves it
    forged = Reply.success({"results": []}).model_dump_json().encode()
    try:
        await publish_as("customer", correlator.reply_queue.name, forged, exchange="", correlation_id=correlation_id)
        await asyncio.sleep(1)
        assert not future.done(), "a reply from a worker that was not asked was taken"
        await publish_as("ledger", correlator.reply_queue.name, forged, exchange="", correlation_id=correlation_id)
        assert json.loads(await asyncio.wait_for(future, 10)) == {"ok": True, "result": {"results": []}, "error": None}
    finally:
        correlator._pending.pop(correlation_id, None)
