"""Audit's answers (issue 13), with the real workers on the real RabbitMQ and PostgreSQL: every
command's outcome from its reply, an account's whole trail, the reports, the investigations,
and the chain still verifying with the outcomes in it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from bus.replies import copies_bodies, reply_body
from bus.settings import broker_user
from contracts import audit as au
from contracts import day as dy
from contracts import identity as idn
from contracts import ledger as L
from contracts import payment as p
from contracts.common import Reply, ReplyCopy
from ops import cli
from tests.integration.conftest import BusClient, eventually, publish_as
from tests.integration.test_ledger_bus import A, accounts, nt
from tests.integration.test_payment_bus import deposit, open_account, pay
from workers.audit.handlers import reports

THRESHOLD = 1_000_000  # 10,000.00: the large-value threshold these tests plant around


@pytest.fixture
def report_config(monkeypatch: pytest.MonkeyPatch) -> reports.rules.ReportConfig:
    config = replace(reports.CONFIG, large_value_minor=THRESHOLD, structuring_band_bps=1_000, structuring_min_count=3)
    monkeypatch.setattr(reports, "CONFIG", config)
    return config


async def trail(bus: BusClient, account_id: UUID) -> list[dict[str, Any]]:
    """An account's whole trail, oldest first, every page."""
    items, cursor = [], None
    while True:
        page = await bus.ok(au.ListRecords(account_id=account_id, limit=500, cursor=cursor))
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items[::-1]


async def outcome_of(admin_db: asyncpg.Pool, command_id: str) -> asyncpg.Record:
    async def found() -> asyncpg.Record | None:
        return await admin_db.fetchrow("SELECT * FROM audit.audit_outcome WHERE command_id = $1", command_id)

    return await eventually(found)


async def report(bus: BusClient, kind: str, **params: Any) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        page = await bus.ok(au.GetReport(kind=kind, cursor=cursor, limit=2, **params))  # small pages: paging works
        rows += page["rows"]
        if not (cursor := page["next_cursor"]):
            return rows


async def business_date(bus: BusClient, admin_db: asyncpg.Pool) -> date:
    """The open business date, once audit has learnt it too."""
    opened = date.fromisoformat((await bus.ok(dy.GetBusinessDay()))["business_date"])

    async def learnt() -> bool:
        return await admin_db.fetchval("SELECT business_date FROM audit.audit_business_day") == opened

    await eventually(learnt)
    return opened


# --- outcomes -----------------------------------------------------------------------------------


async def test_a_refused_commands_outcome_is_its_refusal_code(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 100_000)
    message_id = f"refused-{uuid.uuid4()}"
    command = p.InitiatePayment(payment_id=uuid.uuid4(), kind=p.PaymentKind.internal, channel=p.Channel.branch,
                                payer_account_id=alice, payee=p.Payee(account_id=bob), amount=500_000, currency="INR",
                                actor="teller-1")  # fmt: skip
    reply = await bus.send(command, message_id=message_id)
    assert reply.error is not None and reply.error.code == "insufficient_funds"
    row = await outcome_of(admin_db, message_id)
    assert (row["result"], row["status"], row["code"], row["command_key"]) == (
        "refused", "failure", "insufficient_funds", "payment.initiate_payment")  # fmt: skip
    outcome = await admin_db.fetchrow("SELECT * FROM audit.audit_record WHERE seq = $1", row["outcome_seq"])
    assert (outcome["kind"], outcome["event_id"], outcome["causation_id"], outcome["exchange"]) == (
        "outcome", f"{message_id}.reply", message_id, "")  # fmt: skip
    assert (outcome["status"], outcome["severity"], outcome["broker_user"]) == ("failure", "high", broker_user("payment"))
    assert json.loads(outcome["payload"]) == {"command_id": message_id, "command": "payment.initiate_payment",
                                              "result": "refused", "code": "insufficient_funds"}  # fmt: skip

    # The command's own record (chained when it arrived, never changed) now reads with its outcome.
    # Its tap is another stream than the outcome's, read on its own: it may be recorded later.
    async def command_record() -> list[dict[str, Any]]:
        query = au.ListRecords(routing_key_prefix="payment.initiate_payment", entity_id=str(command.payment_id))
        return (await bus.ok(query))["items"]

    [view] = await eventually(command_record)
    assert view["event_id"] == message_id and view["status"] == "pending"
    assert (view["outcome"]["result"], view["outcome"]["code"], view["outcome"]["status"]) == (
        "refused", "insufficient_funds", "failure")  # fmt: skip

    # A login refused, a success, and a message that was wrong: failed, with its code.
    login_id = f"login-{uuid.uuid4()}"
    await bus.send(idn.IssueToken(grant_type="password", username="no-such-user", password="x" * 12), message_id=login_id)
    assert (await outcome_of(admin_db, login_id))["code"] == "invalid_credentials"
    read_id = f"read-{uuid.uuid4()}"
    await bus.ok(dy.GetBusinessDay(), message_id=read_id)
    assert ((await outcome_of(admin_db, read_id))["result"]) == "success"
    bad_id = f"bad-{uuid.uuid4()}"
    await bus.publish_raw("payment.get_payment", b'{"payment_id": "not a uuid"}', message_id=bad_id,
                          message_type=p.GetPayment.message_type)  # fmt: skip
    bad = await outcome_of(admin_db, bad_id)  # fire and forget (no reply_to): the tap still gets the outcome
    assert (bad["result"], bad["code"]) == ("failed", "invalid_message")


async def test_a_reply_from_anyone_but_the_commands_worker_is_not_believed(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    body = json.dumps({"ok": True, "result": {}}).encode()
    forged = f"forged-{uuid.uuid4()}"
    await publish_as("ledger", "audit.tap.replies", body, exchange="", message_id=f"{forged}.reply",
                     type="reply.v1", headers={"x-command": "payment.initiate_payment"})  # fmt: skip

    async def recorded() -> asyncpg.Record | None:
        return await admin_db.fetchrow("SELECT * FROM audit.audit_record WHERE event_id = $1", f"{forged}.reply")

    row = await eventually(recorded)
    assert row["kind"] == "outcome" and "not" in row["parse_error"]
    assert await admin_db.fetchval("SELECT count(*) FROM audit.audit_outcome WHERE command_id = $1", forged) == 0
    # Somebody answering for another worker is a security event, with its investigation.
    assert await admin_db.fetchval("SELECT status FROM audit.audit_investigation WHERE record_seq = $1 "
                                   "AND kind = 'security'", row["seq"]) == "open"  # fmt: skip


async def test_a_group_commits_outcomes_each_hash_the_reply_its_asker_received(bus: BusClient,
                                                                              admin_db: asyncpg.Pool) -> None:
    """Group-committed commands' replies reach audit as one `ReplyCopies` message a commit
    (bus/replies.py); each is still its own outcome record, hashing the bytes its asker got."""
    payer, payee = await accounts(bus, A(dr=True, fund=1_000), A())
    amounts = [100] * 8 + [1_000_000]  # eight fit, the last exceeds the payer's credits
    ids = [f"copied-{uuid.uuid4()}" for _ in amounts]
    replies = await asyncio.gather(*(bus.send(L.CreateTransfers(transfers=[nt(payer, payee, amount)]), message_id=i)
                                     for i, amount in zip(ids, amounts, strict=True)))  # fmt: skip
    for message_id, reply, amount in zip(ids, replies, amounts, strict=True):
        row = await outcome_of(admin_db, message_id)
        assert (row["result"], row["command_key"]) == ("success" if amount == 100 else "refused", "ledger.create_transfers")
        record = await admin_db.fetchrow("SELECT * FROM audit.audit_record WHERE seq = $1", row["outcome_seq"])
        assert (record["event_id"], record["broker_user"]) == (f"{message_id}.reply", broker_user("ledger"))
        assert record["payload_sha256"] == hashlib.sha256(reply_body(reply)).hexdigest()


async def test_reply_copies_from_anyone_but_the_commands_worker_are_not_believed(bus: BusClient,
                                                                                admin_db: asyncpg.Pool) -> None:
    forged = f"forged-{uuid.uuid4()}"
    copy = ReplyCopy(message_id=f"{forged}.reply", command="ledger.create_transfers",
                     body=reply_body(Reply.success({"results": []})).decode())  # fmt: skip
    [body] = copies_bodies([copy], 1_000_000)
    await publish_as("payment", "audit.tap.replies", body, exchange="", message_id=uuid.uuid4().hex,
                     type="reply_copies.v1")  # fmt: skip

    async def recorded() -> asyncpg.Record | None:
        return await admin_db.fetchrow("SELECT * FROM audit.audit_record WHERE event_id = $1", f"{forged}.reply")

    row = await eventually(recorded)
    assert row["kind"] == "outcome" and "broker user" in row["parse_error"]
    assert await admin_db.fetchval("SELECT count(*) FROM audit.audit_outcome WHERE command_id = $1", forged) == 0


# --- a payment's whole flow, and the account's trail ---------------------------------------------


async def test_a_payment_flow_is_in_audit_once_each_with_its_outcome_and_in_both_accounts_trails(
    bus: BusClient, admin_db: asyncpg.Pool
) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 500_000)
    payment_id = uuid.uuid4()
    placed = f"pay-{uuid.uuid4()}"
    command = p.InitiatePayment(payment_id=payment_id, kind=p.PaymentKind.internal, channel=p.Channel.mobile,
                                payer_account_id=alice, payee=p.Payee(account_id=bob), amount=123_456, currency="INR",
                                actor="alice")  # fmt: skip
    reply = await bus.send(command, message_id=placed)
    assert reply.ok and reply.result["status"] == "completed", reply.error
    ids = (str(payment_id), reply.result["reference"])  # the ledger knows the payment by its reference

    seen: dict[str, Any] = {}

    async def flow_recorded() -> list[dict[str, Any]] | None:
        records = await trail(bus, alice)
        keys = {r["routing_key"] for r in records if of_payment(r, ids)}
        waiting = [r["routing_key"] for r in records if r["kind"] == "command" and not r["outcome"]]
        seen.update(keys=keys, waiting=waiting)
        done = {"payment.initiate_payment", "payment.completed", "ledger.create_transfers",
                "ledger.transfers_committed"} <= keys and not waiting  # fmt: skip
        return records if done else None

    try:
        records = await eventually(flow_recorded, timeout_s=20)
    except AssertionError as exc:
        raise AssertionError(f"the flow's records so far: {seen}") from exc
    mine = [r for r in records if of_payment(r, ids)]
    # Once each: no message of the flow is in the chain twice.
    assert len({(r["exchange"], r["event_id"]) for r in mine}) == len(mine)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in mine:
        by_key.setdefault(r["routing_key"], []).append(r)
    assert [len(by_key[k]) for k in ("payment.initiate_payment", "ledger.create_transfers", "ledger.transfers_committed",
                                     "payment.completed")] == [1, 1, 1, 1]  # fmt: skip
    # Every command of the flow with its outcome: the order, and the ledger transfer the payment asked for.
    [order] = by_key["payment.initiate_payment"]
    assert order["event_id"] == placed and order["outcome"]["result"] == "success"
    [transfer] = by_key["ledger.create_transfers"]
    assert transfer["outcome"]["result"] == "success" and transfer["broker_user"] == broker_user("payment")
    debits = [t for t in transfer["payload"]["transfers"] if t["debit_account_id"] == str(alice)]
    assert [t["amount"] for t in debits] == [123_456]
    # The payment's events are in the trail too, each once; and in the payee's.
    assert by_key["payment.completed"][0]["payload"]["payment_id"] == str(payment_id)
    theirs = [r for r in await trail(bus, bob) if of_payment(r, ids)]
    assert {"payment.initiate_payment", "ledger.create_transfers", "ledger.transfers_committed",
            "payment.completed"} <= {r["routing_key"] for r in theirs}  # fmt: skip
    # Every command in the account's trail ended, each with an outcome (the deposit's too).
    assert all(r["outcome"] is not None for r in records if r["kind"] == "command")
    assert {r["outcome"]["result"] for r in records if r["kind"] == "command"} == {"success"}


def of_payment(record: dict[str, Any], ids: tuple[str, ...]) -> bool:
    """The record is of this payment: it names its id or reference anywhere in its body."""
    body = json.dumps(record["payload"]) if record["payload"] is not None else ""
    return any(i in body for i in ids)


# --- reports ------------------------------------------------------------------------------------


async def test_large_value_and_structuring_find_the_planted_cases_and_nothing_else(
    bus: BusClient, admin_db: asyncpg.Pool, report_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    today = await business_date(bus, admin_db)
    smurf = await open_account(bus, admin_db)
    few = await open_account(bus, admin_db)
    small = await open_account(bus, admin_db)
    big = await open_account(bus, admin_db)
    customers = dict(await admin_db.fetch("SELECT account_id, customer_id FROM payment.payment_account "
                                          "WHERE account_id = ANY($1)", [smurf, few, small, big]))  # fmt: skip

    async def cash_in(account: UUID, amount: int) -> UUID:
        payment_id = uuid.uuid4()
        reply = await pay(bus, p.PaymentKind.cash_deposit, amount, to=account, payment_id=payment_id)
        assert reply.ok and reply.result["status"] == "completed", reply.error
        return payment_id

    structured = [await cash_in(smurf, amount) for amount in (950_000, 900_000, 999_999)]  # 3 just below: planted
    [await cash_in(few, 960_000) for _ in range(2)]  # just below, but only two
    [await cash_in(small, 899_999) for _ in range(3)]  # three, but below the band
    at_threshold = await cash_in(big, THRESHOLD)  # large: reached at equality
    large = await cash_in(big, 2_500_000)
    await cash_in(big, THRESHOLD - 1)  # not large, and alone
    ours = {str(c) for c in customers.values()}

    async def both_recorded() -> bool:
        return await admin_db.fetchval("SELECT count(*) FROM audit.audit_movement WHERE payment_id = ANY($1)",
                                       [*structured, at_threshold, large]) == 5  # fmt: skip

    await eventually(both_recorded, timeout_s=20)
    large_rows = [r for r in await report(bus, "large-value", business_date=today) if r["customer_id"] in ours]
    assert [(r["payment_id"], r["amount"]) for r in large_rows] == [(str(at_threshold), THRESHOLD), (str(large), 2_500_000)]
    assert {r["customer_id"] for r in large_rows} == {str(customers[big])}
    cases = [r for r in await report(bus, "structuring", business_date=today) if r["customer_id"] in ours]
    assert cases == [{
        "business_date": today.isoformat(), "customer_id": str(customers[smurf]), "currency": "INR", "count": 3,
        "total": 950_000 + 900_000 + 999_999, "payment_ids": [str(x) for x in structured],
        "record_seqs": cases[0]["record_seqs"],
    }]  # fmt: skip
    # Every row names the chained record it came from: the payment's `payment.completed`.
    for seq, payment_id in zip(cases[0]["record_seqs"], structured, strict=True):
        row = await admin_db.fetchrow("SELECT routing_key, payload FROM audit.audit_record WHERE seq = $1", seq)
        assert row["routing_key"] == "payment.completed" and json.loads(row["payload"])["payment_id"] == str(payment_id)
    # Another business date has none of them.
    other = [r for r in await report(bus, "large-value", business_date=today - timedelta(days=1)) if r["customer_id"] in ours]
    assert other == []
    # The operator's `cbs audit report`, as CSV: the same planted rows.
    code = await asyncio.to_thread(cli.main, ["audit", "report", "--kind", "large-value", "--date", today.isoformat(),
                                              "--format", "csv"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0].startswith("record_seq,payment_id,")
    assert {str(at_threshold), str(large)} <= {line.split(",")[1] for line in lines[1:]}
    # A report without what its kind needs is refused with why.
    refused = await bus.send(au.GetReport(kind="structuring"))
    assert refused.error is not None and refused.error.code == "report_needs"


async def test_security_summary_and_actor_activity(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    who = f"mallory-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        await bus.send(idn.IssueToken(grant_type="password", username=who, password="wrong-password"))
    # A refused command of one actor (the edge's x-actor is believed from the edge's user only).
    officer = f"officer-{uuid.uuid4().hex[:6]}"
    refused_id = f"sec-{uuid.uuid4()}"
    refused = await bus.send(p.ApprovePayment(payment_id=uuid.uuid4(), actor=officer, permissions=["payments:approve"]),
                             message_id=refused_id)  # fmt: skip
    assert refused.error is not None
    await outcome_of(admin_db, refused_id)

    async def summary() -> list[dict[str, Any]] | None:
        rows = await report(bus, "security-summary", since=since, until=datetime.now(UTC) + timedelta(minutes=1))
        mine = {r["key"]: r for r in rows if r["group"] == "actor"}
        return rows if who in mine and mine[who]["failed_logins"] >= 2 else None

    rows = await eventually(summary, timeout_s=20)
    by_actor = {r["key"]: r for r in rows if r["group"] == "actor"}
    assert by_actor[who]["failed_logins"] == 2 and by_actor[who]["lockouts"] == 0
    assert sum(r["refusals"] for r in rows if r["group"] == "hour") >= 1
    assert sum(r["total"] for r in rows if r["group"] == "hour") == sum(r["total"] for r in rows if r["group"] == "actor")

    # A service of the bank is its broker user (it claims no x-actor).
    activity = await report(bus, "actor-activity", actor=broker_user("ops"), since=since)
    mine = [r for r in activity if r["routing_key"] == "payment.approve_payment"]
    assert mine and mine[0]["outcome"] == "refused" and mine[0]["outcome_code"] == refused.error.code


# --- investigations, and the chain -------------------------------------------------------------


async def test_an_investigation_is_assigned_noted_and_closed_and_each_change_is_audited(
    bus: BusClient, admin_db: asyncpg.Pool
) -> None:
    # A lockout is a security event: audit raises a follow-up and opens its investigation.
    event = idn.LockedOut(user_id=uuid.uuid4(), username=f"locked-{uuid.uuid4().hex[:6]}", failed_attempts=5,
                          locked_until=datetime.now(UTC) + timedelta(minutes=15), occurred_at=datetime.now(UTC))  # fmt: skip
    event_id = f"lock-{uuid.uuid4()}"
    await publish_as("identity", event.routing_key, event, message_id=event_id)

    async def opened() -> asyncpg.Record | None:
        return await admin_db.fetchrow(
            "SELECT i.* FROM audit.audit_investigation i JOIN audit.audit_record r ON r.seq = i.record_seq "
            "WHERE r.event_id = $1 AND i.kind = 'security'", event_id)  # fmt: skip

    seq = (await eventually(opened))["record_seq"]
    listed = await bus.ok(au.ListInvestigations(status="open", kind="security", limit=500))
    assert seq in [i["record_seq"] for i in listed["items"]]
    assigned = await bus.ok(au.AssignInvestigation(record_seq=seq, kind="security", assignee="inv-1", actor="lead-1"))
    assert (assigned["status"], assigned["assignee"]) == ("assigned", "inv-1")
    noted = await bus.ok(au.NoteInvestigation(record_seq=seq, kind="security", text="user called: typo", actor="inv-1"))
    assert [(n["by"], n["text"]) for n in noted["notes"]] == [("inv-1", "user called: typo")]
    close_id = f"close-{uuid.uuid4()}"
    closed = await bus.ok(au.CloseInvestigation(record_seq=seq, kind="security", resolution="benign", actor="inv-1"),
                          message_id=close_id)  # fmt: skip
    assert (closed["status"], closed["resolution"]) == ("closed", "benign") and closed["closed_at"]
    again = await bus.send(au.NoteInvestigation(record_seq=seq, kind="security", text="late", actor="inv-1"))
    assert again.error is not None and again.error.code == "investigation_closed"
    unknown = await bus.send(au.AssignInvestigation(record_seq=10**12, kind="security", assignee="x", actor="y"))
    assert unknown.error is not None and unknown.error.code == "investigation_not_found"
    # Each change is in the chain, with its outcome, and told as an event.
    assert (await outcome_of(admin_db, close_id))["result"] == "success"

    async def told() -> int:
        return await admin_db.fetchval(
            "SELECT count(*) FROM audit.audit_record WHERE routing_key = 'audit.investigation_changed' "
            "AND (payload->>'record_seq')::bigint = $1", seq)  # fmt: skip

    assert await eventually(lambda: _at_least(told, 3))


async def _at_least(check: Any, n: int) -> bool:
    return await check() >= n


async def test_the_chain_verifies_with_outcomes_in_it_and_the_cli_says_so(bus: BusClient, admin_db: asyncpg.Pool,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    message_id = f"verify-{uuid.uuid4()}"
    await bus.ok(dy.GetBusinessDay(), message_id=message_id)
    await outcome_of(admin_db, message_id)
    assert await admin_db.fetchval("SELECT count(*) FROM audit.audit_record WHERE kind = 'outcome'") > 0
    # The operator's tool, as an operator runs it (its own event loop: a thread of its own here).
    assert await asyncio.to_thread(cli.main, ["audit", "verify", "--timeout", "60"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["complete"] and result["records_checked"] >= 2
