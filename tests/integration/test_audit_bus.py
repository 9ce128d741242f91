"""The audit worker through the bus: every command and event recorded once, redacted, chained."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bus import topology
from bus.settings import broker_user
from contracts import audit as au
from contracts import customer as cu
from contracts import identity as idn
from contracts import ledger as lg
from ops import cli
from tests.integration.conftest import BusClient, eventually, publish_as
from workers.audit import store
from workers.audit.handlers import records, retention
from workers.audit.handlers.taps import draft_of


async def record_of(admin_db: asyncpg.Pool, event_id: str, exchange: str | None = None) -> asyncpg.Record | None:
    sql = "SELECT * FROM audit.audit_record WHERE event_id = $1"
    if exchange is None:
        return await admin_db.fetchrow(sql, event_id)
    return await admin_db.fetchrow(sql + " AND exchange = $2", event_id, exchange)


async def recorded(admin_db: asyncpg.Pool, event_id: str, exchange: str | None = None) -> asyncpg.Record:
    async def check() -> asyncpg.Record | None:
        return await record_of(admin_db, event_id, exchange)

    return await eventually(check)


async def publish_event(bus: BusClient, event: Any, message_id: str, **kwargs: Any) -> None:
    """As the event's owner publishes it (its own broker user)."""
    await publish_as(event.routing_key.split(".", 1)[0], event.routing_key, event, message_id=message_id, **kwargs)


def registered(customer_id: uuid.UUID) -> cu.CustomerRegistered:
    return cu.CustomerRegistered(
        customer_id=customer_id, occurred_at=datetime.now(UTC), customer_number="C0000009",
        customer_type="individual", name="Audit Test", email="audit@example.com", phone="+919800000009",
        language="en", status="inactive", kyc_status="pending", risk_category="low",
    )  # fmt: skip


async def test_a_command_and_an_event_are_recorded(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    account_id, command_id = uuid.uuid4(), f"audit-cmd-{uuid.uuid4()}"
    command = lg.CreateAccounts(accounts=[lg.NewAccount(id=account_id, currency="INR", code="customer_deposit")])
    await bus.ok(command, message_id=command_id)
    row = await recorded(admin_db, command_id, "cbs.commands")
    assert (row["routing_key"], row["kind"], row["message_type"]) == ("ledger.create_accounts", "command", "ledger.create_accounts.v1")
    assert (row["entity_type"], row["entity_id"]) == ("account", str(account_id))
    assert (row["record_type"], row["severity"], row["status"], row["risk_score"]) == ("transaction", "medium", "pending", 30)
    assert row["retention"] == "long" and list(row["compliance_flags"]) == ["aml", "financial"]
    assert row["payload"] is not None and json.loads(row["payload"])["accounts"][0]["id"] == str(account_id)
    assert row["broker_user"] == broker_user("ops")
    assert len(row["hash"]) == len(row["prev_hash"]) == 32

    customer_id, event_id = uuid.uuid4(), f"audit-evt-{uuid.uuid4()}"
    await publish_event(bus, registered(customer_id), event_id, correlation_id="corr-1",
                        headers={"x-causation-id": "cause-1", "x-actor": json.dumps({"sub": "teller-7"})})  # fmt: skip
    row = await recorded(admin_db, event_id, "cbs.events")
    assert (row["routing_key"], row["kind"], row["entity_type"], row["entity_id"]) == (
        "customer.registered", "event", "customer", str(customer_id))  # fmt: skip
    assert (row["risk_score"], row["status"], row["correlation_id"], row["causation_id"], row["actor"]) == (
        5, "success", "corr-1", "cause-1", "teller-7")  # fmt: skip


async def test_a_redelivered_message_is_stored_once(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    event = registered(uuid.uuid4())
    event_id = f"audit-dup-{uuid.uuid4()}"
    for _ in range(3):  # the same message_id, as a publisher's retry would send it
        await publish_event(bus, event, event_id)
    await recorded(admin_db, event_id)
    sentinel = f"audit-sentinel-{uuid.uuid4()}"
    await publish_event(bus, registered(uuid.uuid4()), sentinel)
    await recorded(admin_db, sentinel)
    assert await admin_db.fetchval("SELECT count(*) FROM audit.audit_record WHERE event_id = $1", event_id) == 1


async def test_a_password_never_reaches_the_audit_table(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    message_id = f"audit-login-{uuid.uuid4()}"
    reply = await bus.send(idn.IssueToken(grant_type="password", username="nobody-audit", password=password),
                           message_id=message_id)  # fmt: skip
    assert not reply.ok  # no such user; audit records the request all the same
    row = await recorded(admin_db, message_id)
    assert json.loads(row["payload"])["password"] == idn.REDACTED
    assert (row["record_type"], row["routing_key"]) == ("login", "identity.issue_token")
    # An invalid body that carries a password: stored without payload, and the error quotes nothing.
    bad_id = f"audit-badlogin-{uuid.uuid4()}"
    body = json.dumps({"grant_type": "password", "username": "x" * 300, "password": password}).encode()
    await bus.publish_raw("identity.issue_token", body, message_id=bad_id, message_type=idn.IssueToken.message_type)
    bad = await recorded(admin_db, bad_id)
    assert bad["payload"] is None and bad["parse_error"] and bad["payload_sha256"] == hashlib.sha256(body).hexdigest()
    everything = await admin_db.fetchval("SELECT string_agg(r::text, E'\\n') FROM audit.audit_record r")
    assert password not in everything
    outbox = await admin_db.fetchval("SELECT coalesce(string_agg(o::text, E'\\n'), '') FROM audit.outbox o")
    assert password not in outbox


async def test_an_unparseable_message_is_stored_without_payload_and_acked(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    body = b"{not json at all"
    message_id = f"audit-poison-{uuid.uuid4()}"
    # A routing key no worker binds: only audit's tap sees it.
    await bus.publish_raw("audit.no_such_command", body, message_id=message_id, message_type="audit.no_such_command.v1")
    row = await recorded(admin_db, message_id)
    assert row["payload"] is None and "unknown message type" in row["parse_error"]
    assert (row["payload_sha256"], row["payload_bytes"]) == (hashlib.sha256(body).hexdigest(), len(body))
    known_id = f"audit-badjson-{uuid.uuid4()}"
    await bus.publish_raw("audit.list_records", body, message_id=known_id, message_type=au.ListRecords.message_type)
    known = await recorded(admin_db, known_id)
    assert known["payload"] is None and "json_invalid" in known["parse_error"]

    # The reader went past both (nothing waits or loops on them): what follows is recorded too,
    # and each of them once.
    after_id = f"audit-after-poison-{uuid.uuid4()}"
    await bus.publish_raw("audit.no_such_command", b"{}", message_id=after_id, message_type="audit.no_such_command.v1")
    await recorded(admin_db, after_id)
    counts = await admin_db.fetch("SELECT event_id, count(*) AS n FROM audit.audit_record WHERE event_id = ANY($1) "
                                  "GROUP BY event_id", [message_id, known_id, after_id])  # fmt: skip
    assert sorted(r["n"] for r in counts) == [1, 1, 1]


async def test_audit_commands_are_refused_to_customers(edge_bus: BusClient, admin_db: asyncpg.Pool) -> None:
    actor = json.dumps({"sub": "cust-1", "roles": ["customer"], "customer_id": str(uuid.uuid4())})
    message_id = uuid.uuid4().hex
    # As the edge publishes: the broker-validated user makes x-actor count.
    reply = await edge_bus.correlator.send(au.ListRecords(limit=1), message_id=message_id, timeout_s=10,
                                           headers={"x-actor": actor})  # fmt: skip
    assert reply.error is not None and reply.error.code == "forbidden"
    row = await recorded(admin_db, message_id)
    assert (row["actor"], row["broker_user"], row["severity"]) == ("cust-1", broker_user("edge"), "low")


async def test_list_records_filters_and_pages_newest_first(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    customer_id = uuid.uuid4()
    ids = [f"audit-page-{i}-{uuid.uuid4()}" for i in range(3)]
    for event_id in ids:
        await publish_event(bus, registered(customer_id), event_id)
    for event_id in ids:
        await recorded(admin_db, event_id)
    first = await bus.ok(au.ListRecords(entity_id=str(customer_id), routing_key_prefix="customer.", limit=2))
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = await bus.ok(au.ListRecords(entity_id=str(customer_id), limit=2, cursor=first["next_cursor"]))
    seqs = [r["seq"] for r in first["items"] + second["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 3
    assert {r["event_id"] for r in first["items"] + second["items"]} == set(ids)
    none = await bus.ok(au.ListRecords(entity_id=str(customer_id), routing_key_prefix="payment_"))
    assert none["items"] == []  # `_` is a literal in the prefix, not a wildcard


async def test_the_chain_verifies_and_a_tampered_record_is_found(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    event_id = f"audit-chain-{uuid.uuid4()}"
    await publish_event(bus, registered(uuid.uuid4()), event_id)
    target = await recorded(admin_db, event_id)
    check = await bus.ok(au.VerifyChain())
    assert check["ok"] and check["complete"] and check["records_checked"] >= target["seq"], check

    async with admin_db.acquire() as conn, conn.transaction():
        # The table refuses UPDATE even to its owner (a trigger); a superuser can switch that off.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("UPDATE audit.audit_record SET payload = '{\"tampered\": true}' WHERE seq = $1", target["seq"])
    try:
        broken = await bus.ok(au.VerifyChain())
        assert not broken["ok"] and (broken["first_broken_seq"], broken["reason"]) == (target["seq"], "hash_mismatch")
        assert broken["last_seq_checked"] == target["seq"] - 1 or target["seq"] == 1

        async def raised() -> asyncpg.Record | None:
            return await admin_db.fetchrow(
                "SELECT * FROM audit.audit_record WHERE routing_key = 'audit.chain_broken' "
                "AND (payload->>'first_broken_seq')::bigint = $1", target["seq"],
            )  # fmt: skip

        alarm = await eventually(raised)  # published through the outbox, recorded by audit itself
        assert (alarm["record_type"], alarm["severity"], alarm["retention"]) == ("security", "critical", "permanent")
    finally:
        async with admin_db.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("UPDATE audit.audit_record SET payload = $2 WHERE seq = $1", target["seq"], target["payload"])
    assert (await bus.ok(au.VerifyChain()))["ok"]


async def test_the_worker_role_cannot_rewrite_a_record(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    event_id = f"audit-rewrite-{uuid.uuid4()}"
    await publish_event(bus, registered(uuid.uuid4()), event_id)
    seq = (await recorded(admin_db, event_id))["seq"]
    # The worker's role lacks the privilege; the tables' owner role has it, and the trigger refuses.
    for role, refusal in (("cbs_audit", asyncpg.InsufficientPrivilegeError), ("cbs_audit_owner", asyncpg.RaiseError)):
        async with admin_db.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL ROLE {role}")
                    await conn.execute("UPDATE audit.audit_record SET actor = 'mallory' WHERE seq = $1", seq)
            except refusal as exc:
                assert role == "cbs_audit" or "append-only" in str(exc)
            else:
                raise AssertionError(f"an audit record was updated by {role}")


async def test_a_security_record_raises_a_security_event(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    message_id = f"audit-authfail-{uuid.uuid4()}"
    # A body its contract refuses: stored without payload, classified by its routing key all the same.
    await publish_as("edge", "edge.auth_failed", b"{}", message_id=message_id)
    row = await recorded(admin_db, message_id)
    assert (row["record_type"], row["payload"]) == ("authentication", None) and "invalid body" in row["parse_error"]

    async def raised() -> asyncpg.Record | None:
        return await admin_db.fetchrow(
            "SELECT * FROM audit.audit_record WHERE routing_key = 'audit.security_event_raised' "
            "AND payload->>'event_id' = $1", message_id,
        )  # fmt: skip

    alarm = await eventually(raised)
    payload = json.loads(alarm["payload"])
    assert (payload["record_seq"], payload["threat_type"]) == (row["seq"], "edge.auth_failed")
    # audit's own events raise no follow-up of their own
    assert await admin_db.fetchval(
        "SELECT count(*) FROM audit.outbox WHERE payload->>'event_id' = $1", alarm["event_id"]) == 0  # fmt: skip


async def test_a_refusal_for_who_asked_is_published_and_recorded(edge_bus: BusClient, admin_db: asyncpg.Pool) -> None:
    """A customer (x-actor from the edge's broker user) reading another customer's record: the
    customer worker answers not_owner and publishes customer.access_denied, which audit keeps."""
    message_id = uuid.uuid4().hex
    intruder = json.dumps({"sub": "mallory", "roles": ["customer"], "customer_id": str(uuid.uuid4())})
    reply = await edge_bus.correlator.send(cu.GetCustomer(customer_id=uuid.uuid4()), message_id=message_id,
                                           timeout_s=10, headers={"x-actor": intruder})  # fmt: skip
    assert reply.error is not None and reply.error.code == "not_owner", reply

    async def published() -> Any:
        return await admin_db.fetchrow(
            "SELECT payload, record_type, status FROM audit.audit_record WHERE routing_key = 'customer.access_denied' "
            "AND payload::jsonb->>'command_message_id' = $1",
            message_id,
        )

    row = await eventually(published)
    payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
    assert (payload["subject"], payload["code"], payload["command"]) == ("mallory", "not_owner", "customer.get_customer")
    assert (row["record_type"], row["status"]) == ("authorization", "failure")


# --- retention ----------------------------------------------------------------------------------


async def _as_audit(conn: asyncpg.Connection) -> None:
    """Act as the audit worker's own role, in its schema (inside a transaction)."""
    await conn.execute("SET LOCAL ROLE cbs_audit")
    await conn.execute("SET LOCAL search_path = audit")


async def _appended_days_ago(admin_db: asyncpg.Pool, days: int, count: int) -> list[int]:
    """Read commands (short retention: 30 days) chained as audit chains them, but carrying a time
    `days` ago: the database clock cannot be moved back, so the records are built here with
    audit's own record builder and appended under the chain's head lock."""
    drafts = [
        draft_of(json.dumps({"ids": [str(uuid.uuid4())]}).encode(), exchange=topology.COMMANDS.name, kind="command",
                 message_id=f"retention-{uuid.uuid4()}", routing_key=lg.LookupAccounts.routing_key,
                 message_type=lg.LookupAccounts.message_type, correlation_id=None, headers={}, user_id="guest",
                 max_body_bytes=1_000_000)  # fmt: skip
        for _ in range(count)
    ]
    async with admin_db.acquire() as conn, conn.transaction():
        await _as_audit(conn)
        head, now = await store.lock_head(conn)
        chained, prev = [], head.last_hash
        for offset, draft in enumerate(drafts, start=1):
            chained.append(records.chained(draft, head.last_seq + offset, prev, now - timedelta(days=days)))
            prev = chained[-1]["hash"]
        await store.insert_records(conn, chained)
        await store.set_head(conn, store.Head(head.last_seq + count, prev))
    return [r["seq"] for r in chained]


def _verify_archive(capsys: pytest.CaptureFixture[str], *paths: Any) -> tuple[int, list[dict[str, Any]]]:
    """`cbs audit verify-archive FILE…`: its exit code and the JSON line it prints per file."""
    capsys.readouterr()
    code = cli.main(["audit", "verify-archive", *map(str, paths)])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


async def test_an_expired_record_is_archived_whole_and_the_chain_still_verifies(
    bus: BusClient, admin_db: asyncpg.Pool, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = await _appended_days_ago(admin_db, 29, 1)  # not yet expired
    old = await _appended_days_ago(admin_db, 31, 3)
    payloads = {r["seq"]: r["payload"] for r in await admin_db.fetch(
        "SELECT seq, payload FROM audit.audit_record WHERE seq = ANY($1::bigint[])", old)}  # fmt: skip

    async with admin_db.acquire() as conn, conn.transaction():
        await _as_audit(conn)
        run = await retention.archive_expired(conn, tmp_path)
    assert run is not None and (run.first_seq, run.last_seq, run.count) == (old[0], old[-1], 3)

    stored = await admin_db.fetch(
        "SELECT seq, payload, archived_at, hash FROM audit.audit_record WHERE seq = ANY($1::bigint[]) ORDER BY seq",
        old + fresh,
    )
    by_seq = {r["seq"]: r for r in stored}
    assert all(by_seq[s]["payload"] is None and by_seq[s]["archived_at"] is not None for s in old)
    assert by_seq[fresh[0]]["payload"] is not None and by_seq[fresh[0]]["archived_at"] is None
    # The file holds each record whole, as hashed; every line recomputes to the hash the table kept.
    lines = [json.loads(text) for text in run.path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == old
    assert all(json.loads(payloads[line["seq"]]) == line["record"]["payload"] for line in lines)
    assert all(bytes.fromhex(line["hash"]) == bytes(by_seq[line["seq"]]["hash"]) for line in lines)
    assert _verify_archive(capsys, run.path) == (0, [{"file": str(run.path), "records": 3, "ok": True, "broken_seqs": []}])
    assert hashlib.sha256(run.path.read_bytes()).hexdigest() == run.sha256
    assert (await bus.ok(au.VerifyChain()))["ok"]

    # A line altered in the archive no longer verifies.
    lines[1]["record"]["payload"]["ids"] = ["someone-else"]
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert _verify_archive(capsys, run.path, tampered) == (1, [
        {"file": str(run.path), "records": 3, "ok": True, "broken_seqs": []},
        {"file": str(tampered), "records": 3, "ok": False, "broken_seqs": [old[1]]},
    ])  # fmt: skip

    # Nothing else may change, even for the worker's role: not a fresh payload, not another column
    # of an archived record, and no record may be deleted. The worker's role is refused by
    # privilege (it may update payload and archived_at only) or by the trigger, which refuses the
    # tables' owner role as well.
    for sql in (
        f"UPDATE audit_record SET payload = NULL, archived_at = clock_timestamp() WHERE seq = {fresh[0]}",
        f"UPDATE audit_record SET actor = 'mallory' WHERE seq = {old[0]}",
        f"UPDATE audit_record SET payload = NULL, archived_at = clock_timestamp(), actor = 'mallory' WHERE seq = {fresh[0]}",
        f"DELETE FROM audit_record WHERE seq = {old[0]}",
    ):
        for role in ("cbs_audit", "cbs_audit_owner"):
            async with admin_db.acquire() as conn:
                try:
                    async with conn.transaction():
                        await conn.execute(f"SET LOCAL ROLE {role}")
                        await conn.execute("SET LOCAL search_path = audit")
                        await conn.execute(sql)
                except asyncpg.InsufficientPrivilegeError:
                    assert role == "cbs_audit", sql
                except asyncpg.RaiseError as exc:
                    assert "append-only" in str(exc)
                else:
                    raise AssertionError(f"allowed to {role}: {sql}")
    async with admin_db.acquire() as conn, conn.transaction():
        await _as_audit(conn)
        assert await retention.archive_expired(conn, tmp_path) is None  # nothing more is due


async def test_a_batch_chained_already_does_not_wait_for_the_chain_head(admin_db: asyncpg.Pool) -> None:
    """A tap's batch read again (a reader's retry, a stream holding a message twice) finds its keys
    stored before it asks for the head's lock, which the other taps' readers hold in turn: it takes
    no place in their queue. And a new key still waits for the lock, as the chain needs."""
    drafts = [
        draft_of(json.dumps({"ids": [str(uuid.uuid4())]}).encode(), exchange=topology.COMMANDS.name, kind="command",
                 message_id=f"again-{uuid.uuid4()}", routing_key=lg.LookupAccounts.routing_key,
                 message_type=lg.LookupAccounts.message_type, correlation_id=None, headers={}, user_id="guest",
                 max_body_bytes=1_000_000)  # fmt: skip
        for _ in range(3)
    ]
    async with admin_db.acquire() as conn, conn.transaction():
        await _as_audit(conn)
        await records.append(conn, drafts)
    async with admin_db.acquire() as holder, admin_db.acquire() as again:
        async with holder.transaction():
            await _as_audit(holder)
            await store.lock_head(holder)  # another tap's batch, mid-append
            async with again.transaction():
                await _as_audit(again)
                await again.execute("SET LOCAL lock_timeout = '2s'")
                await records.append(again, drafts)  # every key stored: returns without the lock
                before = await again.fetchval("SELECT count(*) FROM audit_record WHERE event_id = ANY($1::text[])",
                                              [d.event_id for d in drafts])  # fmt: skip
                assert before == 3
            new = dataclasses.replace(drafts[0], event_id=f"new-{uuid.uuid4()}")
            with pytest.raises(asyncpg.LockNotAvailableError):
                async with again.transaction():
                    await _as_audit(again)
                    await again.execute("SET LOCAL lock_timeout = '200ms'")
                    await records.append(again, [new])
