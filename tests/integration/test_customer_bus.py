"""The customer worker through its messages, against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import date, timedelta
from typing import Any

import aio_pika

from bus import topology
from contracts import account as a
from contracts import customer as cu
from tests.integration.conftest import BusClient, eventually

TODAY = date.today()


def registration(**overrides: Any) -> cu.RegisterCustomer:
    token = uuid.uuid4().hex[:10]
    fields: dict[str, Any] = {
        "customer_id": uuid.uuid4(),
        "customer_type": "individual",
        "first_name": "Asha",
        "last_name": f"Rao{token}",
        "date_of_birth": date(1990, 5, 17),
        "nationality": "IN",
        "national_id": f"NID-{token}",
        "email": f"asha.{token}@example.com",
        "phone": "+919800000001",
        "addresses": [{"street": "1 MG Road", "city": "Bengaluru", "country": "IN"}],
    }
    return cu.RegisterCustomer(**(fields | overrides))


def document(customer_id: uuid.UUID, document_type: str, issued_days_ago: int = 30) -> cu.AddKycDocument:
    return cu.AddKycDocument(
        customer_id=customer_id, document_id=uuid.uuid4(), document_type=document_type,
        number=f"{document_type}-{uuid.uuid4().hex[:8]}", issuer="Government of India",
        issue_date=TODAY - timedelta(days=issued_days_ago),
    )  # fmt: skip


def status_command(kind: type[cu._StatusCommand], customer_id: uuid.UUID) -> cu._StatusCommand:
    return kind(customer_id=customer_id, actor="officer-1", reason="customer request")


async def refused(bus: BusClient, command: Any) -> str:
    reply = await bus.send(command)
    assert not reply.ok and reply.error is not None, reply
    return reply.error.code


async def outbox_keys(admin_db, customer_id: uuid.UUID) -> list[str]:
    rows = await admin_db.fetch(
        "SELECT routing_key FROM customer.outbox WHERE payload->>'customer_id' = $1 ORDER BY id", str(customer_id)
    )
    return [r["routing_key"] for r in rows]


async def kyc_completed_customer(bus: BusClient) -> dict[str, Any]:
    """A registered individual with the required set (identity, proof of address, photo) verified."""
    customer = await bus.ok(registration())
    customer_id = uuid.UUID(customer["customer_id"])
    for kind in ("national_id", "utility_bill", "photo"):
        added = await bus.ok(document(customer_id, kind))
        document_id = added["documents"][-1]["document_id"]
        customer = await bus.ok(cu.VerifyKycDocument(customer_id=customer_id, document_id=document_id, reviewer="kyc-1"))
    return customer


# --- register, get, update ---------------------------------------------------------------------


async def test_register_and_get(bus: BusClient, admin_db) -> None:
    command = registration(contacts=[{"contact_type": "phone", "value": "+918000000002"}])
    customer = await bus.ok(command)
    assert customer["customer_number"].startswith("C") and len(customer["customer_number"]) == 11
    assert (customer["status"], customer["kyc_status"], customer["risk_category"], customer["version"]) == (
        "inactive", "pending", "low", 1,
    )  # fmt: skip
    assert [x["is_primary"] for x in customer["contacts"]] == [True, False, False]
    assert await bus.ok(cu.GetCustomer(customer_id=command.customer_id)) == customer
    assert await outbox_keys(admin_db, command.customer_id) == ["customer.registered"]

    assert await refused(bus, cu.GetCustomer(customer_id=uuid.uuid4())) == "customer_not_found"
    assert await refused(bus, registration(customer_id=command.customer_id)) == "duplicate_customer"
    assert await refused(bus, registration(date_of_birth=TODAY - timedelta(days=365 * 10))) == "customer_type_mismatch"


async def test_update_and_version_conflict(bus: BusClient, admin_db) -> None:
    customer = await bus.ok(registration())
    customer_id = uuid.UUID(customer["customer_id"])
    change = cu.UpdateCustomer(customer_id=customer_id, expected_version=1, occupation="engineer", pep=True)
    updated = await bus.ok(change)
    assert (updated["occupation"], updated["risk_category"], updated["version"]) == ("engineer", "high", 2)

    stale = cu.UpdateCustomer(customer_id=customer_id, expected_version=1, occupation="teacher")
    reply = await bus.send(stale)
    assert reply.error is not None and reply.error.code == "version_conflict" and reply.error.details == {"version": 2}

    same = await bus.ok(cu.UpdateCustomer(customer_id=customer_id, occupation="engineer"))
    assert same["version"] == 2  # nothing changed, nothing stored or announced
    keys = await outbox_keys(admin_db, customer_id)
    assert keys == ["customer.registered", "customer.updated", "customer.risk_changed"]
    assert await refused(bus, cu.UpdateCustomer(customer_id=uuid.uuid4(), occupation="x")) == "customer_not_found"


async def test_duplicate_email_and_national_id_are_refused(bus: BusClient, admin_db) -> None:
    first = await bus.ok(registration())
    assert await refused(bus, registration(email=first["email"].upper())) == "duplicate_email"
    assert await refused(bus, registration(national_id=first["national_id"])) == "duplicate_national_id"
    # No national id at all is not a duplicate of another customer's absent one.
    await bus.ok(registration(national_id=None))
    await bus.ok(registration(national_id=None))

    second = await bus.ok(registration())
    second_id = uuid.UUID(second["customer_id"])
    taken_email = cu.UpdateCustomer(customer_id=second_id, email=first["email"])
    assert await refused(bus, taken_email) == "duplicate_email"
    taken_national_id = cu.UpdateCustomer(customer_id=second_id, national_id=first["national_id"])
    assert await refused(bus, taken_national_id) == "duplicate_national_id"
    unchanged = await bus.ok(cu.GetCustomer(customer_id=second_id))
    assert (unchanged["email"], unchanged["version"]) == (second["email"], 1)
    count = await admin_db.fetchval(
        "SELECT count(*) FROM customer.customer WHERE lower(email) = lower($1)", first["email"]
    )
    assert count == 1


async def test_concurrent_registrations_with_one_email_register_one(bus: BusClient, admin_db) -> None:
    email = f"race.{uuid.uuid4().hex[:10]}@example.com"
    replies = await asyncio.gather(*(bus.send(registration(email=email, national_id=None)) for _ in range(6)))
    codes = sorted(r.error.code if r.error else "ok" for r in replies)
    assert codes == ["duplicate_email"] * 5 + ["ok"]
    assert await admin_db.fetchval("SELECT count(*) FROM customer.customer WHERE email = $1", email) == 1


async def test_search_pages_by_cursor(bus: BusClient) -> None:
    token = f"Zq{uuid.uuid4().hex[:8]}"
    ids = [(await bus.ok(registration(last_name=f"{token}son{i}")))["customer_id"] for i in range(3)]
    page = await bus.ok(cu.SearchCustomers(query=token.lower(), limit=2))
    assert [x["customer_id"] for x in page["items"]] == ids[:2] and page["next_cursor"]
    assert page["items"][0]["name"] == f"Asha {token}son0"
    page2 = await bus.ok(cu.SearchCustomers(query=token, limit=2, cursor=page["next_cursor"]))
    assert [x["customer_id"] for x in page2["items"]] == ids[2:] and page2["next_cursor"] is None

    third = await bus.ok(cu.GetCustomer(customer_id=uuid.UUID(ids[2])))
    for query in (third["customer_number"], third["email"].upper(), third["national_id"]):
        found = await bus.ok(cu.SearchCustomers(query=query))
        assert [x["customer_id"] for x in found["items"]] == [ids[2]], query
    assert (await bus.ok(cu.SearchCustomers(query=f"{token}%")))["items"] == []  # a literal %, not a wildcard
    assert await refused(bus, cu.SearchCustomers(query=token, cursor="not-a-cursor")) == "invalid_message"


# --- KYC documents -----------------------------------------------------------------------------


async def test_kyc_completes_with_the_required_set(bus: BusClient, admin_db) -> None:
    customer = await kyc_completed_customer(bus)
    customer_id = uuid.UUID(customer["customer_id"])
    assert (customer["status"], customer["kyc_status"]) == ("active", "completed")
    assert {d["status"] for d in customer["documents"]} == {"verified"}
    changes = await admin_db.fetch(
        "SELECT payload->>'old_status', payload->>'new_status', payload->>'status' FROM customer.outbox "
        "WHERE routing_key = 'customer.kyc_status_changed' AND payload->>'customer_id' = $1 ORDER BY id",
        str(customer_id),
    )
    moves = [tuple(r) for r in changes]
    assert moves == [("pending", "in_progress", "inactive"), ("in_progress", "completed", "active")]


async def test_document_refusals_and_rejection(bus: BusClient) -> None:
    customer = await bus.ok(registration())
    customer_id = uuid.UUID(customer["customer_id"])
    add = document(customer_id, "passport")
    added = await bus.ok(add)
    assert (added["kyc_status"], added["documents"][0]["status"]) == ("in_progress", "pending")
    assert await refused(bus, add) == "duplicate_document"
    assert await refused(bus, document(customer_id, "utility_bill", issued_days_ago=400)) == "document_expired"
    assert await refused(bus, document(customer_id, "photo", issued_days_ago=-5)) == "invalid_document_dates"
    assert await refused(bus, document(uuid.uuid4(), "photo")) == "customer_not_found"

    unknown = cu.VerifyKycDocument(customer_id=customer_id, document_id=uuid.uuid4(), reviewer="kyc-1")
    assert await refused(bus, unknown) == "document_not_found"
    reject = cu.RejectKycDocument(customer_id=customer_id, document_id=add.document_id, reviewer="kyc-1", reason="blurred")
    rejected = await bus.ok(reject)
    assert rejected["kyc_status"] == "rejected"
    assert (rejected["documents"][0]["status"], rejected["documents"][0]["notes"]) == ("rejected", "blurred")
    verify = cu.VerifyKycDocument(customer_id=customer_id, document_id=add.document_id, reviewer="kyc-1")
    assert await refused(bus, verify) == "invalid_transition"
    resubmitted = await bus.ok(document(customer_id, "passport"))
    assert resubmitted["kyc_status"] == "in_progress"  # resubmission reopens KYC


# --- status -------------------------------------------------------------------------------------


async def test_status_lifecycle_and_illegal_transitions(bus: BusClient, admin_db) -> None:
    onboarding = await bus.ok(registration())
    onboarding_id = uuid.UUID(onboarding["customer_id"])
    assert await refused(bus, status_command(cu.SuspendCustomer, onboarding_id)) == "invalid_transition"
    assert await refused(bus, status_command(cu.ReactivateCustomer, onboarding_id)) == "invalid_transition"
    assert (await bus.ok(status_command(cu.CloseCustomer, onboarding_id)))["status"] == "closed"

    customer_id = uuid.UUID((await kyc_completed_customer(bus))["customer_id"])
    assert await refused(bus, status_command(cu.ReactivateCustomer, customer_id)) == "invalid_transition"
    suspended = await bus.ok(status_command(cu.SuspendCustomer, customer_id))
    assert (suspended["status"], suspended["status_changed_by"], suspended["status_reason"]) == (
        "suspended", "officer-1", "customer request",
    )  # fmt: skip
    assert await refused(bus, status_command(cu.SuspendCustomer, customer_id)) == "invalid_transition"
    assert (await bus.ok(status_command(cu.ReactivateCustomer, customer_id)))["status"] == "active"
    assert (await bus.ok(status_command(cu.CloseCustomer, customer_id)))["status"] == "closed"
    for kind in (cu.SuspendCustomer, cu.ReactivateCustomer, cu.CloseCustomer):
        assert await refused(bus, status_command(kind, customer_id)) == "customer_closed"
    assert await refused(bus, cu.UpdateCustomer(customer_id=customer_id, occupation="x")) == "customer_closed"
    assert await refused(bus, document(customer_id, "photo")) == "customer_closed"
    assert await refused(bus, status_command(cu.SuspendCustomer, uuid.uuid4())) == "customer_not_found"

    keys = await outbox_keys(admin_db, customer_id)
    assert keys[-3:] == ["customer.suspended", "customer.reactivated", "customer.closed"]


# --- bus guarantees -----------------------------------------------------------------------------


async def test_same_message_id_gives_one_effect_and_the_same_reply(bus: BusClient, admin_db) -> None:
    command = registration()
    key = f"register-{uuid.uuid4()}"
    first = await bus.send(command, message_id=key)
    second = await bus.send(command, message_id=key)
    assert first.ok and first == second
    rows = await admin_db.fetchval(
        "SELECT count(*) FROM customer.customer WHERE customer_id = $1", command.customer_id
    )
    assert (rows, await outbox_keys(admin_db, command.customer_id)) == (1, ["customer.registered"])


async def _take_dead_letters(message_ids: set[str]) -> set[str]:
    """Ack the dead letters with these ids and put every other one back; the ids found."""
    connection = await aio_pika.connect(os.environ["CBS_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.DEAD_LETTER_QUEUE_NAME, ensure=True)
        fetched = []
        while len(fetched) < 1_000 and (message := await queue.get(no_ack=False, fail=False)) is not None:
            fetched.append(message)
        found = set()
        for message in fetched:
            if message.message_id in message_ids:
                found.add(message.message_id)
                await message.ack()
            else:
                await message.nack(requeue=True)
        return found


async def test_malformed_messages_are_answered_and_dead_lettered(bus: BusClient) -> None:
    sent = set()
    for routing_key, contract, body in (
        ("customer.get_customer", cu.GetCustomer, b'{"customer_id": "not-a-uuid"}'),
        ("customer.register_customer", cu.RegisterCustomer, b"not json"),
    ):
        message_id = f"malformed-{uuid.uuid4()}"
        reply = await bus.correlator.request(
            routing_key, body, contract.message_type, message_id=message_id, timeout_s=10  # type: ignore[arg-type]
        )
        assert reply.error is not None and reply.error.code == "invalid_message", reply
        sent.add(message_id)

    found: set[str] = set()

    async def all_dead() -> bool:
        found.update(await _take_dead_letters(sent - found))
        return found == sent

    await eventually(all_dead)


async def test_fire_and_forget_takes_effect_and_its_event_is_published(bus: BusClient, admin_db) -> None:
    command = registration()
    await bus.publish_raw(
        command.routing_key,
        json.dumps(command.model_dump(mode="json")).encode(),
        message_id=str(uuid.uuid4()),
        message_type=command.message_type,
    )

    async def published():
        return await admin_db.fetchval(
            "SELECT published_at IS NOT NULL FROM customer.outbox "
            "WHERE routing_key = 'customer.registered' AND payload->>'customer_id' = $1",
            str(command.customer_id),
        )

    await eventually(published)
    status = await admin_db.fetchval("SELECT status FROM customer.customer WHERE customer_id = $1", command.customer_id)
    assert status == "inactive"


# --- customer -> account ------------------------------------------------------------------------


async def test_account_opens_once_kyc_completes(bus: BusClient) -> None:
    customer = await bus.ok(registration())
    customer_id = uuid.UUID(customer["customer_id"])
    early = await refused(bus, a.OpenAccount(account_id=uuid.uuid4(), customer_id=customer_id, product_code="savings"))
    assert early in ("customer_unknown", "customer_not_eligible")  # whether or not customer.registered arrived yet

    customer_id = uuid.UUID((await kyc_completed_customer(bus))["customer_id"])
    account_id = uuid.uuid4()

    async def opened():
        reply = await bus.send(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="savings"))
        return reply.ok and reply.result

    account = await eventually(opened)
    assert account["customer_id"] == str(customer_id) and account["status"] == "active"


async def test_a_customer_with_an_open_account_cannot_be_closed(bus: BusClient, admin_db) -> None:
    customer_id = uuid.UUID((await kyc_completed_customer(bus))["customer_id"])
    account_id = uuid.uuid4()

    async def opened():
        reply = await bus.send(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="savings"))
        return reply.ok

    await eventually(opened)

    async def learnt():  # account.opened has reached the customer worker
        return await admin_db.fetchval(
            "SELECT count(*) FROM customer.open_product WHERE customer_id = $1 AND NOT closed", customer_id
        )

    await eventually(learnt)
    assert await refused(bus, status_command(cu.CloseCustomer, customer_id)) == "close_refused_open_products"
    await bus.ok(a.CloseAccount(account_id=account_id, actor="officer-1", reason="customer leaves"))

    async def closed():
        reply = await bus.send(status_command(cu.CloseCustomer, customer_id))
        return reply.ok and reply.result["status"] == "closed"  # type: ignore[index]

    await eventually(closed)
