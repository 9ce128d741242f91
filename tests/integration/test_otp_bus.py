"""Step-up one-time passwords on the real broker and database (banking-rules §2): identity issues
and verifies them, the notification worker delivers the code by the development SMS provider, the
payment worker refuses a large customer payment without the edge's `verified`.

Here the test speaks as the edge (its broker user and `x-actor`): what the edge does between the
two (POST /v1/otp, the X-OTP-* headers) is tests/e2e/test_step_up.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from contracts import identity as idn
from contracts import payment as p
from contracts.common import Reply
from tests.integration.conftest import BusClient, eventually, notification_worker
from tests.integration.test_account_bus import eligible_customer
from tests.integration.test_partners import add_partner, ask_as, granted  # noqa: F401 (a fixture)
from tests.integration.test_payment_bus import deposit, open_account, pay

# The notification worker's settings for this module only: the development SMS provider, fast loops.
NOTIFY_ENV = {"CBS_SMS_PROVIDER": "dev", "CBS_NOTIFY_SWEEP_S": "0.1", "CBS_NOTIFY_SEND_S": "0.05",
              "CBS_NOTIFY_QUIET_HOURS": "00:00-00:00"}  # fmt: skip
LARGE, SMALL = 1_500_000, 999_999  # 15,000.00 and 9,999.99: either side of the 10,000.00 threshold


@pytest.fixture(scope="module")
async def notifier(workers: dict[str, Any]) -> AsyncIterator[Any]:
    async with notification_worker(NOTIFY_ENV) as app:
        yield app


class Customer:
    """A customer's login as the edge speaks for it, with two accounts, the first funded."""

    def __init__(self, edge_bus: BusClient, customer_id: UUID, payer: UUID, payee: UUID) -> None:
        self.edge_bus, self.customer_id, self.payer, self.payee = edge_bus, customer_id, payer, payee
        self.subject = f"cust-{uuid.uuid4().hex[:8]}"

    def header(self, subject: str | None = None) -> str:
        return json.dumps({"sub": subject or self.subject, "roles": ["customer"], "customer_id": str(self.customer_id)})

    async def send(self, command: Any, *, subject: str | None = None, message_id: str | None = None) -> Reply:
        return await self.edge_bus.correlator.send(command, message_id=message_id or uuid.uuid4().hex, timeout_s=15,
                                                   headers={"x-actor": self.header(subject)})  # fmt: skip

    def order(self, amount: int, **changes: Any) -> p.InitiatePayment:
        fields = {"payment_id": uuid.uuid4(), "kind": p.PaymentKind.internal, "channel": p.Channel.mobile,
                  "payer_account_id": self.payer, "payee": p.Payee(account_id=self.payee), "amount": amount,
                  "currency": "INR", "actor": "whoever-the-body-says"} | changes  # fmt: skip
        return p.InitiatePayment(**fields)


def purpose_of(order: p.InitiatePayment) -> str:
    bound = order.model_dump(mode="json", include={"payment_id", "kind", "payer_account_id", "payee", "amount", "currency"})
    return "payment:" + hashlib.sha256(json.dumps(bound, sort_keys=True).encode()).hexdigest()


@pytest.fixture
async def someone(notifier: Any, bus: BusClient, edge_bus: BusClient, admin_db: Any) -> Customer:
    customer_id = await eligible_customer(bus, admin_db)
    payer = await open_account(bus, admin_db, customer_id=customer_id)
    payee = await open_account(bus, admin_db)
    await deposit(bus, payer, 10_000_000)

    async def known() -> bool:
        return bool(await admin_db.fetchval("SELECT phone FROM notification.recipient WHERE customer_id = $1", customer_id))

    await eventually(known)
    return Customer(edge_bus, customer_id, payer, payee)


async def issue(who: Customer, order: p.InitiatePayment) -> dict[str, Any]:
    reply = await who.send(idn.IssueOtp(otp_id=uuid.uuid4(), purpose=purpose_of(order)))
    assert reply.ok, reply.error
    assert isinstance(reply.result, dict)
    return reply.result


async def sms_code(admin_db: Any, issued: dict[str, Any]) -> str:
    """The code as an operator reads it from the development SMS provider's table."""
    (notification_id,) = issued["notification_ids"]

    async def body() -> str | None:
        found: str | None = await admin_db.fetchval(
            "SELECT body FROM notification.sms_message WHERE notification_id = $1", UUID(notification_id))
        return found

    # Critical messages are sent first, but within the provider's rate limit (60 a minute, §6): after
    # a module that made many SMS (tests/integration/test_payment_bus.py), an OTP may wait its turn.
    text = await eventually(body, timeout_s=90)
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def verify(otp: dict[str, Any], code: str, order: p.InitiatePayment) -> idn.VerifyOtp:
    return idn.VerifyOtp(otp_id=otp["otp_id"], code=code, purpose=purpose_of(order), consumed_by=str(order.payment_id))


def refused(reply: Reply, code: str) -> bool:
    return reply.error is not None and reply.error.code == code


async def test_a_large_mobile_payment_is_refused_then_placed_with_the_code_that_came_by_sms(
    someone: Customer, bus: BusClient, admin_db: Any
) -> None:
    order = someone.order(LARGE)
    assert refused(await someone.send(order), "verification_required")
    # The edge never forwards a body's `verified`; a bank service's is believed, a customer's
    # order is only the edge's to mark. Staff at the branch need no OTP (the back office).
    staff = await pay(bus, p.PaymentKind.internal, LARGE, payer=someone.payer, to=someone.payee)
    assert staff.ok and staff.result["status"] == "completed", staff.error
    small = await someone.send(someone.order(SMALL))
    assert small.ok and small.result["status"] == "completed", small.error

    otp = await issue(someone, order)
    assert otp["max_attempts"] == 3 and otp["channel"] == "sms"
    code = await sms_code(admin_db, otp)
    assert code not in json.dumps(otp)

    # The code for another body (another amount, another payee) is refused and burns no try.
    for other in (order.model_copy(update={"amount": LARGE + 1}), someone.order(LARGE)):
        assert refused(await someone.send(verify(otp, code, other)), "otp_mismatch")
    # Another login of the same customer learns nothing of it.
    assert refused(await someone.send(verify(otp, code, order), subject="cust-someone-else"), "otp_not_found")

    checked = await someone.send(verify(otp, code, order))
    assert checked.ok, checked.error
    key = uuid.uuid4().hex
    placed = await someone.send(order.model_copy(update={"verified": True}), message_id=key)
    assert placed.ok and placed.result["status"] == "completed", placed.error

    # A replay of the same request (same key): the OTP verifies again for this payment, and the
    # payment worker answers the same; the OTP cannot carry another payment.
    assert (await someone.send(verify(otp, code, order))).ok
    again = await someone.send(order.model_copy(update={"verified": True}), message_id=key)
    assert again.ok and again.result == placed.result
    second = order.model_copy(update={"payment_id": uuid.uuid4()})
    assert refused(await someone.send(idn.VerifyOtp(otp_id=otp["otp_id"], code=code, purpose=purpose_of(order),
                                                    consumed_by=str(second.payment_id))), "otp_used")  # fmt: skip

    # Only a salted HMAC is kept; the code is in no event, stored reply or OTP row of identity,
    # and in no data the notification worker keeps beside the message it sends.
    row = await admin_db.fetchrow("SELECT * FROM identity.otp WHERE otp_id = $1", UUID(otp["otp_id"]))
    assert row["consumed_by"] == str(order.payment_id) and code.encode() not in bytes(row["code_hash"])
    for table in ("identity.otp", "identity.inbox", "notification.inbox", "notification.outbox"):
        assert not await admin_db.fetchval(f"SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0", code), table
    # Nor in identity's outbox: the command that carried it is blanked once the notification worker answered.
    assert not await admin_db.fetchval("SELECT count(*) FROM identity.outbox WHERE strpos(payload::text, $1) > 0", code)
    sent_command = await admin_db.fetchval("SELECT payload->'secret_data'->>'code' FROM identity.outbox"
                                           " WHERE routing_key = 'notification.send_message' AND payload->>'send_id' = $1",
                                           otp["otp_id"])  # fmt: skip
    assert sent_command == "**********"
    payload = await admin_db.fetchval("SELECT payload::text FROM notification.notification WHERE notification_id = $1",
                                      UUID(otp["notification_ids"][0]))  # fmt: skip
    assert code not in payload

    async def audited() -> str | None:
        found: str | None = await admin_db.fetchval(
            "SELECT payload::text FROM audit.audit_record WHERE routing_key = 'notification.send_message'"
            " AND payload->>'send_id' = $1", otp["otp_id"])
        return found

    sent = await eventually(audited, timeout_s=20)
    assert code not in sent and "**********" in sent, sent  # audit chained it redacted


async def test_three_wrong_codes_lock_the_otp_and_an_expired_one_is_refused(someone: Customer, admin_db: Any) -> None:
    order = someone.order(LARGE)
    otp = await issue(someone, order)
    code = await sms_code(admin_db, otp)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    first = await someone.send(verify(otp, wrong, order))
    assert refused(first, "otp_invalid") and first.error.details == {"attempts_left": 2}
    assert refused(await someone.send(verify(otp, wrong, order)), "otp_invalid")
    assert refused(await someone.send(verify(otp, wrong, order)), "otp_locked")
    assert refused(await someone.send(verify(otp, code, order)), "otp_locked")  # the right code too, now
    assert refused(await someone.send(order), "verification_required")

    async def told() -> bool:
        return bool(await admin_db.fetchval(
            "SELECT true FROM identity.outbox WHERE routing_key = 'identity.otp_locked' AND payload->>'otp_id' = $1",
            otp["otp_id"]))

    assert await eventually(told)

    late = await issue(someone, order)
    late_code = await sms_code(admin_db, late)
    await admin_db.execute("UPDATE identity.otp SET expires_at = now() - interval '1 second' WHERE otp_id = $1",
                           UUID(late["otp_id"]))  # fmt: skip
    assert refused(await someone.send(verify(late, late_code, order)), "otp_expired")


async def test_only_a_customer_through_the_edge_asks_for_or_verifies_one(someone: Customer, bus: BusClient) -> None:
    order = someone.order(LARGE)
    purpose = purpose_of(order)
    assert refused(await bus.send(idn.IssueOtp(otp_id=uuid.uuid4(), purpose=purpose)), "forbidden")
    staff = json.dumps({"sub": "teller-1", "roles": ["teller"]})
    asked = await someone.edge_bus.correlator.send(idn.IssueOtp(otp_id=uuid.uuid4(), purpose=purpose),
                                                   message_id=uuid.uuid4().hex, timeout_s=10, headers={"x-actor": staff})  # fmt: skip
    assert refused(asked, "forbidden")
    otp = await issue(someone, order)
    assert refused(await bus.send(verify(otp, "000000", order)), "forbidden")


async def test_a_partners_verified_is_worth_nothing(someone: Customer, add_partner: Any, admin_db: Any) -> None:
    """A partner relaying a customer's mobile order may say `verified: true` in the body: the payment
    worker believes it only from the edge (which sets it after identity checked the code)."""
    partner = await add_partner(p.InitiatePayment.routing_key)
    await granted(admin_db, "payment", partner.user, {p.InitiatePayment.routing_key})
    relayed = someone.order(LARGE, verified=True)
    assert refused(await ask_as(partner, relayed), "verification_required")
    own = await ask_as(partner, someone.order(LARGE, channel=p.Channel.api))  # the partner's own channel
    assert own.ok and own.result["status"] == "completed", own.error


async def test_a_customers_large_refund_is_a_debit_too(someone: Customer, bus: BusClient, admin_db: Any) -> None:
    """A customer refunds what they received from their own account: the same step-up applies."""
    other = await open_account(bus, admin_db)
    await deposit(bus, other, 5_000_000)
    received = await pay(bus, p.PaymentKind.internal, LARGE, payer=other, to=someone.payer)
    assert received.ok, received.error
    refund = someone.order(LARGE, kind=p.PaymentKind.refund, refund_of=received.result["payment_id"],
                           payee=None)  # fmt: skip
    assert refused(await someone.send(refund), "verification_required")
    by_route = p.RefundPayment(refund_id=uuid.uuid4(), payment_id=received.result["payment_id"], actor="x", reason="r")
    assert refused(await someone.send(by_route), "verification_required")
    done = await someone.send(refund.model_copy(update={"verified": True}))
    assert done.ok and done.result["kind"] == "refund" and done.result["status"] == "completed", done.error
