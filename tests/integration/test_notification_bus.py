"""The notification worker on the real broker and database, with a real local SMTP server
(aiosmtpd) and a real local HTTP receiver that verifies webhook signatures (banking-rules §6).

Only the notification worker runs here; the facts it acts on are published as their owners'
outboxes would (their own broker users). Retry delays are shortened through the environment,
set when the worker starts (handlers/config.py `reload`) and restored after the module.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from bus import topology
from bus.correlator import Correlator
from bus.settings import broker_user, load
from contracts import account, customer, notification, payment
from contracts.common import Command, Reply
from tests.integration.conftest import eventually, notification_worker, publish_as
from tests.notify_peers import Mailbox, signature_verifies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SMTP_PORT = _free_port()
# The worker's settings for this module only (set when its worker starts, restored after it): fast
# loops and retries, this module's SMTP server, loopback endpoints allowed.
NOTIFY_ENV = {
    "CBS_SMTP_HOST": "127.0.0.1", "CBS_SMTP_PORT": str(SMTP_PORT), "CBS_NOTIFY_SWEEP_S": "0.1",
    "CBS_NOTIFY_SEND_S": "0.05", "CBS_NOTIFY_RETRY_DELAY_S": "0.3", "CBS_NOTIFY_WEBHOOK_RETRY_DELAY_S": "0.4",
    "CBS_NOTIFY_WEBHOOK_DISABLE_AFTER": "3", "CBS_SMS_PROVIDER": "dev", "CBS_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "1",
    "CBS_NOTIFY_QUIET_HOURS": "00:00-00:00",  # none by default: a test must not depend on the hour it runs at
}  # fmt: skip


pytestmark = pytest.mark.asyncio(loop_scope="session")


# --- a real SMTP server and a real webhook receiver ------------------------------------------------


@pytest.fixture(scope="module")
def mailbox() -> Any:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    yield box
    controller.stop()


class Receiver:
    """Verifies `CBS-Signature` the way the contract documents it, independently of the worker's code."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}  # path -> secret
        self.received: dict[str, list[tuple[float, dict[str, Any], bool]]] = {}
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        ok = signature_verifies(self.secrets.get(path, ""), request.headers.get(notification.SIGNATURE_HEADER, "t=0,v1=x"), body)
        self.received.setdefault(path, []).append((time.monotonic(), await request.json(), ok))
        if path.startswith("/fail") or not ok:
            return web.Response(status=500 if ok else 401, text="no")
        return web.Response(status=200, text="ok")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    yield r
    await runner.cleanup()


# --- the worker and a client ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def notifier(infra: dict[str, str], mailbox: Mailbox) -> AsyncIterator[Any]:
    async with notification_worker(NOTIFY_ENV) as app:
        yield app


class Client:
    def __init__(self, correlator: Correlator) -> None:
        self.correlator = correlator

    async def send(self, command: Command) -> Reply:
        return await self.correlator.send(command, message_id=uuid.uuid4().hex, timeout_s=10)

    async def ok(self, command: Command) -> Any:
        reply = await self.send(command)
        assert reply.ok, reply.error
        return reply.result


@pytest.fixture(scope="module")
async def ops(notifier: Any) -> AsyncIterator[Client]:
    correlator = Correlator(load().process_amqp_url("ops"), user_id=broker_user("ops"),
                            reply_queue=topology.ops_reply_queue(uuid.uuid4().hex[:12]))  # fmt: skip
    await correlator.start()
    yield Client(correlator)
    await correlator.stop()


async def a_customer(email: str, phone: str) -> uuid.UUID:
    customer_id = uuid.uuid4()
    await publish_as("customer", customer.CustomerRegistered.routing_key, customer.CustomerRegistered(
        customer_id=customer_id, occurred_at=dt.datetime.now(dt.UTC), customer_number=f"C{customer_id.hex[:8]}",
        customer_type="individual", name="Asha Rao", email=email, phone=phone, language="en", status="inactive",
        kyc_status="pending", risk_category="low",
    ))  # fmt: skip
    return customer_id


def deposit(customer_id: uuid.UUID, amount: int = 250_000) -> payment.PaymentCompleted:
    return payment.PaymentCompleted(
        payment_id=uuid.uuid4(), reference=f"DEP{uuid.uuid4().hex[:10]}", kind="cash_deposit",
        payee_account_id=uuid.uuid4(), customer_id=customer_id, amount=amount, currency="INR", status="completed",
        occurred_at=dt.datetime.now(dt.UTC), fee=0,
    )  # fmt: skip


async def rows(admin_db: Any, sql: str, *args: Any) -> list[Any]:
    return await admin_db.fetch(sql.replace("FROM ", "FROM notification.", 1), *args)


async def known(admin_db: Any, customer_id: uuid.UUID) -> bool:
    return bool(await rows(admin_db, "SELECT 1 FROM recipient WHERE customer_id = $1", customer_id))


# --- the tests --------------------------------------------------------------------------------------


async def test_a_deposit_sends_an_email_a_signed_webhook_an_sms_and_an_in_app_message(
    ops: Client, mailbox: Mailbox, receiver: Receiver, admin_db: Any
) -> None:
    endpoint = await ops.ok(notification.RegisterWebhookEndpoint(
        endpoint_id=uuid.uuid4(), url=receiver.url("/ok"), categories=["transaction"]))  # fmt: skip
    assert endpoint["secret"], "the secret is given once, at registration"
    receiver.secrets["/ok"] = endpoint["secret"]
    email, phone = f"asha-{uuid.uuid4().hex[:6]}@example.com", "+919800000001"
    customer_id = await a_customer(email, phone)
    await eventually(lambda: known(admin_db, customer_id))
    event = deposit(customer_id)
    await publish_as("payment", event.routing_key, event)

    mails = await eventually(lambda: asyncio.sleep(0, mailbox.to(email)))
    assert "Cash deposit of INR 2,500.00 completed" in mails[0]["Subject"]
    assert event.reference in mails[0].get_payload()
    hooks = await eventually(lambda: asyncio.sleep(0, [h for h in receiver.received.get("/ok", [])
                                                        if h[1]["data"]["reference"] == event.reference]))  # fmt: skip
    assert hooks[0][2], "the receiver verified the signature"
    assert hooks[0][1]["customer_id"] == str(customer_id)
    # By its text: another module's customer may share the phone number.
    sms = await eventually(lambda: rows(admin_db, "SELECT * FROM sms_message WHERE phone = $1 AND body LIKE '%INR 2,500.00%'", phone))
    assert len(sms) == 1, "one SMS for the deposit"
    inbox = await ops.ok(notification.ListNotifications(customer_id=customer_id))
    assert [n["channel"] for n in inbox["items"]] == ["in_app"] and inbox["items"][0]["status"] == "delivered"

    async def all_done() -> list[Any]:
        found = await rows(admin_db, "SELECT channel, status FROM notification WHERE customer_id = $1", customer_id)
        return found if all(r["status"] in ("sent", "delivered") for r in found) and len(found) == 4 else []

    done = {r["channel"]: r["status"] for r in await eventually(all_done)}
    assert done == {"email": "sent", "sms": "delivered", "webhook": "delivered", "in_app": "delivered"}
    attempts = await rows(admin_db, "SELECT d.* FROM delivery_attempt d JOIN notification.notification n "
                                    "USING (notification_id) WHERE n.customer_id = $1", customer_id)  # fmt: skip
    assert sorted(a["provider"].split(":")[0] for a in attempts) == ["sms-dev", "smtp", "webhook"]
    assert all(a["status"] == "ok" and a["attempt"] == 1 and a["finished_at"] for a in attempts)


    async def published() -> list[tuple[str, str]]:
        found = await rows(admin_db, "SELECT routing_key, payload->>'channel' AS channel FROM outbox "
                                     "WHERE payload->>'customer_id' = $1 AND published_at IS NOT NULL", str(customer_id))  # fmt: skip
        return sorted((r["routing_key"], r["channel"]) for r in found) if len(found) >= 6 else []

    assert await eventually(published) == [
        ("notification.delivered", "in_app"), ("notification.delivered", "sms"), ("notification.delivered", "webhook"),
        ("notification.sent", "email"), ("notification.sent", "sms"), ("notification.sent", "webhook"),
    ]


async def test_a_customer_with_sms_off_gets_no_sms(ops: Client, mailbox: Mailbox, admin_db: Any) -> None:
    email, phone = f"ravi-{uuid.uuid4().hex[:6]}@example.com", "+919800000002"
    customer_id = await a_customer(email, phone)
    await eventually(lambda: known(admin_db, customer_id))
    prefs = notification.Preferences(customer_id=customer_id, rules=[
        notification.PreferenceRule(channel="sms", category="transaction", enabled=False)])  # fmt: skip
    await ops.ok(notification.SetPreferences(preferences=prefs))
    await publish_as("payment", payment.PaymentCompleted.routing_key, deposit(customer_id))
    await eventually(lambda: asyncio.sleep(0, mailbox.to(email)))
    assert not await rows(admin_db, "SELECT 1 FROM notification WHERE customer_id = $1 AND channel = 'sms'", customer_id)
    assert not await rows(admin_db, "SELECT 1 FROM sms_message WHERE phone = $1", phone)


async def test_quiet_hours_hold_a_normal_sms_but_not_a_critical_security_one(ops: Client, admin_db: Any) -> None:
    phone = "+919800000003"
    customer_id = await a_customer(f"quiet-{uuid.uuid4().hex[:6]}@example.com", phone)
    await eventually(lambda: known(admin_db, customer_id))
    now = dt.datetime.now(dt.UTC)
    quiet = notification.Preferences(
        customer_id=customer_id, time_zone="UTC", quiet_start=(now - dt.timedelta(hours=1)).strftime("%H:%M"),
        quiet_end=(now + dt.timedelta(hours=2)).strftime("%H:%M"),
    )  # fmt: skip
    await ops.ok(notification.SetPreferences(preferences=quiet))
    await publish_as("payment", payment.PaymentCompleted.routing_key, deposit(customer_id))
    held = await eventually(lambda: rows(admin_db, "SELECT * FROM notification WHERE customer_id = $1 AND channel = 'sms'",
                                         customer_id))  # fmt: skip
    assert held[0]["status"] == "pending" and held[0]["scheduled_at"] > now + dt.timedelta(minutes=90)

    sent = await ops.ok(notification.SendMessage(
        send_id=uuid.uuid4(), channels=["sms"], customer_id=customer_id, template="one_time_password",
        data={"code": "493817", "valid_minutes": 5},
    ))  # fmt: skip
    assert len(sent["notification_ids"]) == 1
    sms = await eventually(lambda: rows(admin_db, "SELECT * FROM sms_message WHERE phone = $1", phone))
    assert len(sms) == 1 and "493817" in sms[0]["body"], "only the one-time password went"
    await asyncio.sleep(0.5)
    still = await rows(admin_db, "SELECT status FROM notification WHERE notification_id = $1", held[0]["notification_id"])
    assert still[0]["status"] == "pending"

    # 24 h unsent (the clock moved on by hand): cancelled, never sent
    await admin_db.execute("UPDATE notification.notification SET expires_at = now() - interval '1 second' "
                           "WHERE notification_id = $1", held[0]["notification_id"])  # fmt: skip

    async def cancelled() -> list[Any]:
        found = await rows(admin_db, "SELECT * FROM notification WHERE notification_id = $1", held[0]["notification_id"])
        return found if found[0]["status"] == "cancelled" else []

    gone = (await eventually(cancelled))[0]
    assert gone["error_code"] == "expired" and gone["attempts"] == 0
    assert len(await rows(admin_db, "SELECT * FROM sms_message WHERE phone = $1", phone)) == 1


async def test_a_failing_webhook_endpoint_is_retried_with_backoff_then_disabled(
    ops: Client, receiver: Receiver, admin_db: Any
) -> None:
    endpoint_id = uuid.uuid4()
    path = f"/fail-{endpoint_id.hex[:6]}"
    registered = await ops.ok(notification.RegisterWebhookEndpoint(
        endpoint_id=endpoint_id, url=receiver.url(path), categories=["alert"]))  # fmt: skip
    receiver.secrets[path] = registered["secret"]
    customer_id = uuid.uuid4()
    frozen = account.AccountFrozen(
        account_id=uuid.uuid4(), customer_id=customer_id, number="SAV000000000017", product_code="savings",
        currency="INR", status="frozen", occurred_at=dt.datetime.now(dt.UTC), status_before_freeze="active",
        actor="officer-1", reason="court order",
    )  # fmt: skip
    await publish_as("account", frozen.routing_key, frozen)

    async def disabled() -> Any:
        found = await rows(admin_db, "SELECT * FROM webhook_endpoint WHERE endpoint_id = $1", endpoint_id)
        return found if found and not found[0]["enabled"] else None

    endpoint = (await eventually(disabled, timeout_s=15))[0]
    assert endpoint["consecutive_failures"] == 3 and endpoint["disabled_at"] is not None
    calls = receiver.received[path]
    assert len(calls) == 3 and all(ok for _, _, ok in calls), "three signed attempts"
    gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8, f"exponential backoff from 0.4 s: {gaps}"
    note = await rows(admin_db, "SELECT * FROM notification WHERE endpoint_id = $1", endpoint_id)
    assert note[0]["status"] == "failed" and note[0]["attempts"] == 3
    log = await rows(admin_db, "SELECT * FROM delivery_attempt WHERE notification_id = $1 ORDER BY attempt",
                     note[0]["notification_id"])  # fmt: skip
    assert [a["error_code"] for a in log] == ["http_500"] * 3

    listed = await ops.ok(notification.ListWebhookEndpoints())
    assert not next(e for e in listed["items"] if e["endpoint_id"] == str(endpoint_id))["enabled"]
    enabled = await ops.ok(notification.EnableWebhookEndpoint(endpoint_id=endpoint_id))
    assert enabled["enabled"] and enabled["consecutive_failures"] == 0


async def test_a_missing_template_variable_fails_at_once(ops: Client, mailbox: Mailbox, admin_db: Any) -> None:
    email = f"tpl-{uuid.uuid4().hex[:6]}@example.com"
    key = f"custom_{uuid.uuid4().hex[:6]}"
    defined = await ops.ok(notification.DefineTemplate(key=key, subject="Hello {{ name }}",
                                                       body="Your code is {{ code }} and {{ not_given }}."))  # fmt: skip
    assert defined["version"] == 1
    refused = await ops.send(notification.SendMessage(send_id=uuid.uuid4(), channels=["email"], to=email,
                                                      template=key, data={"name": "Asha", "code": "1"}))  # fmt: skip
    assert not refused.ok and refused.error is not None and refused.error.code == "template_invalid"
    failed = await rows(admin_db, "SELECT * FROM notification WHERE template = $1", key)
    assert [(r["status"], r["attempts"], r["error_code"]) for r in failed] == [("failed", 0, "template_invalid")]
    assert "not_given" in failed[0]["error"]
    bad = await ops.send(notification.DefineTemplate(key=key, subject="x", body="{% if %}"))
    assert not bad.ok and bad.error is not None and bad.error.code == "template_invalid"
    await asyncio.sleep(0.3)
    assert not mailbox.to(email)


async def test_a_template_cannot_reach_python(ops: Client, admin_db: Any) -> None:
    key = f"escape_{uuid.uuid4().hex[:6]}"
    await ops.ok(notification.DefineTemplate(key=key, subject="x", body="{{ ''.__class__.__mro__[1].__subclasses__() }}"))
    refused = await ops.send(notification.SendMessage(send_id=uuid.uuid4(), channels=["email"], to="a@example.com",
                                                      template=key))  # fmt: skip
    assert not refused.ok and refused.error is not None and refused.error.code == "template_invalid"


async def test_statistics_count_per_channel_per_day(ops: Client) -> None:
    stats = await ops.ok(notification.GetStatistics(days=1))
    channels = {item["channel"] for item in stats["items"]}
    assert {"email", "webhook"} <= channels


async def test_the_http_sms_provider_against_a_local_gateway() -> None:
    """The real adapter (configured by URL and key), against a local HTTP server playing the gateway."""
    from workers.notification.handlers.channels import HttpSmsProvider

    seen: list[tuple[str | None, dict[str, Any]]] = []
    answers = [web.json_response({"id": "gw-1"}), web.Response(status=429, headers={"Retry-After": "120"}),
               web.Response(status=400, text="bad number")]  # fmt: skip

    async def gateway(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), await request.json()))
        return answers[len(seen) - 1]

    app = web.Application()
    app.router.add_post("/sms", gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    try:
        provider = HttpSmsProvider(f"http://127.0.0.1:{port}/sms", "key-123", timeout_s=5)
        row = {"notification_id": uuid.uuid4(), "address": "+919800000009", "body": "hello"}
        now = dt.datetime.now(dt.UTC)
        sent = await provider.send(None, row, 1, now)  # type: ignore[arg-type]
        assert sent.ok and sent.provider_message_id == "gw-1"
        assert seen[0] == ("Bearer key-123", {"to": "+919800000009", "body": "hello", "reference": f"{row['notification_id']}:1"})
        busy = await provider.send(None, row, 2, now)  # type: ignore[arg-type]
        assert not busy.ok and not busy.permanent and busy.retry_after_s == 120 and busy.error_code == "http_429"
        refused = await provider.send(None, row, 3, now)  # type: ignore[arg-type]
        assert not refused.ok and refused.permanent and refused.error_code == "http_400"
    finally:
        await runner.cleanup()


async def test_over_the_daily_sms_cap_the_alert_stays_in_app(ops: Client, admin_db: Any) -> None:
    phone = "+919800000011"
    customer_id = await a_customer(f"cap-{uuid.uuid4().hex[:6]}@example.com", phone)
    await eventually(lambda: known(admin_db, customer_id))
    await ops.ok(notification.SetPreferences(preferences=notification.Preferences(customer_id=customer_id,
                                                                                  quiet_start="00:00", quiet_end="00:00")))  # fmt: skip
    for _ in range(11):
        await publish_as("payment", payment.PaymentCompleted.routing_key, deposit(customer_id, 100))

    async def counted() -> dict[str, int]:
        found = await rows(admin_db, "SELECT channel, count(*) AS n FROM notification WHERE customer_id = $1 AND channel <> 'webhook' "
                                     "GROUP BY channel", customer_id)  # fmt: skip
        counts = {r["channel"]: r["n"] for r in found}
        return counts if counts.get("email") == 11 else {}

    assert await eventually(counted) == {"email": 11, "sms": 10, "in_app": 11}


async def test_an_endpoint_must_be_an_http_url(ops: Client) -> None:
    refused = await ops.send(notification.RegisterWebhookEndpoint(endpoint_id=uuid.uuid4(), url="ftp://example.com/x",
                                                                  categories=["system"]))  # fmt: skip
    assert not refused.ok and refused.error is not None and refused.error.code == "invalid_url"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # loopback, a test relay
async def test_smtp_authentication_is_configurable() -> None:
    """A relay that requires AUTH: the configured username and password get in, a wrong one is refused."""
    import dataclasses

    from aiosmtpd.smtp import AuthResult, LoginPassword

    from workers.notification.handlers import channels, config

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"cbs", b"relay-secret")
        return AuthResult(success=ok)

    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_required=True,
                            auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        relay = dataclasses.replace(config.load(), smtp_host="127.0.0.1", smtp_port=port, smtp_username="cbs",
                                    smtp_password="relay-secret", smtp_starttls=False)  # fmt: skip
        row = {"notification_id": uuid.uuid4(), "address": "auth@example.com", "subject": "s", "body": "b", "html": None}
        sent = await channels.send_email(row, relay)
        assert sent.ok, sent
        assert box.to("auth@example.com")
        refused = await channels.send_email(row, dataclasses.replace(relay, smtp_password="wrong", smtp_timeout_s=3))
        assert not refused.ok and len(box.to("auth@example.com")) == 1, refused
    finally:
        controller.stop()


async def test_a_partner_gets_system_notices_only_and_sees_only_its_own_endpoints(
    ops: Client, receiver: Receiver, admin_db: Any
) -> None:
    """As the edge forwards a partner's API key: a partner registers endpoints for `system` only, lists
    and re-enables only its own; a customer may not register any."""
    import json

    edge = Correlator(load().process_amqp_url("edge"), user_id=broker_user("edge"),
                      reply_queue=topology.edge_reply_queue(uuid.uuid4().hex[:12]))  # fmt: skip
    await edge.start()
    try:
        async def as_(who: dict[str, Any], command: Command) -> Reply:
            return await edge.send(command, message_id=uuid.uuid4().hex, timeout_s=10,
                                   headers={"x-actor": json.dumps(who)})  # fmt: skip

        partner = {"sub": "key-of-acme", "roles": ["partner"]}
        staffs = await ops.ok(notification.RegisterWebhookEndpoint(endpoint_id=uuid.uuid4(), url=receiver.url("/staff"),
                                                                   categories=["system"]))  # fmt: skip
        wide = await as_(partner, notification.RegisterWebhookEndpoint(
            endpoint_id=uuid.uuid4(), url=receiver.url("/acme"), categories=["transaction"]))  # fmt: skip
        assert not wide.ok and wide.error is not None and wide.error.code == "forbidden"
        own = await as_(partner, notification.RegisterWebhookEndpoint(
            endpoint_id=uuid.uuid4(), url=receiver.url("/acme"), categories=["system"]))  # fmt: skip
        assert own.ok, own.error
        listed = await as_(partner, notification.ListWebhookEndpoints())
        assert [e["endpoint_id"] for e in listed.result["items"]] == [own.result["endpoint_id"]]  # type: ignore[index,call-overload]
        other = await as_(partner, notification.EnableWebhookEndpoint(endpoint_id=staffs["endpoint_id"]))
        assert not other.ok and other.error is not None and other.error.code == "endpoint_not_found"
        customer = {"sub": "asha", "roles": ["customer"], "customer_id": str(uuid.uuid4())}
        refused = await as_(customer, notification.RegisterWebhookEndpoint(
            endpoint_id=uuid.uuid4(), url=receiver.url("/me"), categories=["system"]))  # fmt: skip
        assert not refused.ok and refused.error is not None and refused.error.code == "forbidden"
        theirs = await as_(customer, notification.GetPreferences(customer_id=uuid.uuid4()))
        assert not theirs.ok and theirs.error is not None and theirs.error.code == "not_owner"
        denied = await rows(admin_db, "SELECT payload->>'code' AS code FROM outbox WHERE routing_key = 'notification.access_denied'")
        assert {d["code"] for d in denied} >= {"forbidden", "not_owner"}, "each refusal of who asked is recorded"
    finally:
        await edge.stop()


async def test_a_lockout_reaches_the_customer_whose_login_it_is(ops: Client, mailbox: Mailbox, admin_db: Any) -> None:
    from contracts import identity

    email = f"locked-{uuid.uuid4().hex[:6]}@example.com"
    customer_id = await a_customer(email, "+919800000012")
    await eventually(lambda: known(admin_db, customer_id))
    now = dt.datetime.now(dt.UTC)
    user_id = uuid.uuid4()
    await publish_as("identity", identity.UserCreated.routing_key, identity.UserCreated(
        user_id=user_id, username="asha", display_name="Asha", roles=["customer"], customer_id=customer_id, occurred_at=now))  # fmt: skip
    await eventually(lambda: rows(admin_db, "SELECT 1 FROM login WHERE user_id = $1", user_id))
    await publish_as("identity", identity.LockedOut.routing_key, identity.LockedOut(
        user_id=user_id, username="asha", failed_attempts=5, locked_until=now + dt.timedelta(minutes=15), occurred_at=now))  # fmt: skip
    mails = await eventually(lambda: asyncio.sleep(0, mailbox.to(email)))
    assert mails[0]["Subject"] == "Your login was locked" and "after 5 failed attempts" in mails[0].get_payload()


async def test_a_new_device_sign_in_reaches_the_customer_and_a_staff_login_gets_nothing(
    ops: Client, mailbox: Mailbox, admin_db: Any
) -> None:
    from contracts import identity

    email = f"device-{uuid.uuid4().hex[:6]}@example.com"
    customer_id = await a_customer(email, "+919800000013")
    await eventually(lambda: known(admin_db, customer_id))
    now = dt.datetime.now(dt.UTC)
    user_id, staff_id = uuid.uuid4(), uuid.uuid4()
    await publish_as("identity", identity.UserCreated.routing_key, identity.UserCreated(
        user_id=user_id, username="asha", display_name="Asha", roles=["customer"], customer_id=customer_id, occurred_at=now))  # fmt: skip
    await publish_as("identity", identity.UserCreated.routing_key, identity.UserCreated(
        user_id=staff_id, username="tina", display_name="Tina", roles=["teller"], occurred_at=now))  # fmt: skip
    await eventually(lambda: rows(admin_db, "SELECT 1 FROM login WHERE user_id = $1", user_id))
    staff_event = identity.NewDeviceLogin(user_id=staff_id, username="tina", device_label="Firefox/121.0",
                                          client_address="203.0.113.8", occurred_at=now)  # fmt: skip
    staff_message = uuid.uuid4().hex
    await publish_as("identity", staff_event.routing_key, staff_event, message_id=staff_message)
    await publish_as("identity", identity.NewDeviceLogin.routing_key, identity.NewDeviceLogin(
        user_id=user_id, username="asha", device_label="Chrome/120.0.0.0 Safari/537.36", client_address="203.0.113.7",
        occurred_at=now))  # fmt: skip
    mails = await eventually(lambda: asyncio.sleep(0, mailbox.to(email)))
    body = mails[0].get_payload()
    assert mails[0]["Subject"] == "New sign-in to your account"
    assert "Chrome/120.0.0.0 Safari/537.36" in body and "203.0.113.7" in body and "change your password" in body
    made = await rows(admin_db, "SELECT channel, category, priority FROM notification WHERE customer_id = $1 "
                                "AND template = 'new_device_login'", customer_id)  # fmt: skip
    assert {(r["channel"], r["category"], r["priority"]) for r in made} == {
        ("email", "security", "high"), ("sms", "security", "high"), ("in_app", "security", "high")}
    await eventually(lambda: rows(admin_db, "SELECT 1 FROM inbox WHERE message_id = $1", staff_message))  # handled
    assert not await rows(admin_db, "SELECT 1 FROM notification WHERE payload->>'user_id' = $1", str(staff_id))


async def test_past_the_providers_rate_limit_messages_wait(ops: Client, admin_db: Any) -> None:
    """The limits (60/min, 1,000/h, 10,000/day) made small: two more SMS may leave this hour, the rest wait."""
    from workers.notification.domain import delivery

    async def sent_this_hour() -> int:
        found = await rows(admin_db, "SELECT count(*) AS n FROM delivery_attempt WHERE provider = 'sms-dev' "
                                     "AND started_at > now() - interval '1 hour'")  # fmt: skip
        return int(found[0]["n"])

    shipped = delivery.RATE_LIMITS
    delivery.RATE_LIMITS = ((dt.timedelta(hours=1), await sent_this_hour() + 2),)
    try:
        phones = [f"+9198770000{i:02d}" for i in range(4)]
        for phone in phones:
            await ops.ok(notification.SendMessage(send_id=uuid.uuid4(), channels=["sms"], to=phone, template="test_message",
                                                  category="system", priority="high"))  # fmt: skip

        async def settled() -> list[Any]:
            found = await rows(admin_db, "SELECT status, scheduled_at FROM notification WHERE address = ANY($1)", phones)
            return found if sum(r["status"] == "delivered" for r in found) == 2 else []

        found = await eventually(settled)
        await asyncio.sleep(0.5)  # another round of claims: still only two
        found = await rows(admin_db, "SELECT status, scheduled_at FROM notification WHERE address = ANY($1)", phones)
        waiting = [r for r in found if r["status"] == "pending"]
        assert len(waiting) == 2 and all(r["scheduled_at"] > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1) for r in waiting)
    finally:
        delivery.RATE_LIMITS = shipped


async def test_two_replicas_batches_that_cross_recipients_do_not_deadlock(notifier: Any, admin_db: Any) -> None:
    """Two transactions of events, as two replicas run them, naming the same two customers in
    opposite orders. Locked event by event they deadlock (shown first, so the test can fail);
    `lock_for_events` takes the transaction's recipients first, in one order, and the second
    transaction waits for the first instead."""
    import asyncpg

    from workers.notification import store
    from workers.notification.handlers import triggers

    first, second = await a_customer("x1@example.com", "+919800000101"), await a_customer("x2@example.com", "+919800000102")
    await eventually(lambda: known(admin_db, first))
    await eventually(lambda: known(admin_db, second))
    crossing = [[deposit(first), deposit(second)], [deposit(second), deposit(first)]]

    async def replica(events: list[payment.PaymentCompleted], pre_lock: bool, both_hold_one: asyncio.Barrier) -> None:
        conn = await asyncpg.connect(load().admin_database_url("notification"), server_settings={"search_path": "notification"})
        try:
            async with conn.transaction():
                if pre_lock:
                    await triggers.lock_recipients(conn, events)
                await store.recipient_and_preference(conn, events[0].customer_id, lock=True)
                if not pre_lock:
                    await both_hold_one.wait()  # each holds its first recipient, then asks for the other
                await store.recipient_and_preference(conn, events[1].customer_id, lock=True)
        finally:
            await conn.close()

    barrier = asyncio.Barrier(2)
    outcomes = await asyncio.gather(*(replica(e, False, barrier) for e in crossing), return_exceptions=True)
    assert any(isinstance(o, asyncpg.DeadlockDetectedError) for o in outcomes), outcomes

    barrier = asyncio.Barrier(2)
    outcomes = await asyncio.wait_for(asyncio.gather(*(replica(e, True, barrier) for e in crossing),
                                                     return_exceptions=True), timeout=10)  # fmt: skip
    assert outcomes == [None, None]
