"""The notification worker as a real process in a cluster of real processes (banking-rules §6;
issue 13's end-to-end cases): a transfer through the edge produces an email, received by a local
SMTP server, and a signed webhook, received and verified by a local receiver; a customer with SMS
off gets none; quiet hours hold a marketing SMS but not a one-time password; an endpoint answering
500 is retried with backoff, then disabled; a SIGKILL in the middle of a webhook send loses
nothing and sends each attempt once; a customer's sign-in from a device their login has not used
before is mailed and texted to them, their first and known devices' are not. Also the edge's
notification routes and `cbs notify test`.

The module runs its own cluster (edge and every worker) on a vhost and database of its own, with
fast retries and this module's SMTP server: the package's cluster has a backlog of earlier
modules' notifications that the providers' rate limits would make these tests wait behind.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from bus import topology
from bus.settings import WORKERS
from contracts import audit, notification
from tests.conftest import separate_infra
from tests.e2e.conftest import Cluster, _free_port
from tests.e2e.test_auth import login, new_user
from tests.e2e.test_flows import post, verified_customer
from tests.e2e.test_payments import deposit, internal, payable_account, wait_for
from tests.integration.conftest import publish_as
from tests.notify_peers import Mailbox, signature_verifies

pytestmark = pytest.mark.e2e


class Receiver(BaseHTTPRequestHandler):
    """The SIGKILL test's receiver: its first request hangs until the module ends."""

    calls: list[dict[str, str]] = []
    bodies: list[bytes] = []
    hang = threading.Event()  # set: the first request hangs until the test ends

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append(self.rfile.read(length))
        Receiver.calls.append({k: v for k, v in self.headers.items()})
        if len(Receiver.calls) == 1:
            Receiver.hang.wait(30)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    Receiver.hang.set()
    server.shutdown()


@pytest.fixture(scope="module")
def infra() -> Iterator[dict[str, str]]:
    """A vhost and database of this module's own: the package's cluster, when an earlier module
    started it, runs a notification worker too, which would take these tests' messages under other
    settings (no private webhook addresses, a long lease)."""
    with separate_infra("notify") as made:
        yield made


class SigningReceiver(BaseHTTPRequestHandler):
    """A customer's or partner's endpoint: checks `CBS-Signature` as the README tells a receiver to
    (tests/notify_peers.py, not the worker's code), answers 500 on paths starting `/fail`, 200 on
    the others; keeps (monotonic time, parsed body, signature verified) per path."""

    secrets: dict[str, str] = {}  # path -> the secret the endpoint got at registration
    received: dict[str, list[tuple[float, dict[str, Any], bool]]] = {}

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        verified = signature_verifies(self.secrets.get(self.path, ""), self.headers.get(notification.SIGNATURE_HEADER, ""), body)
        self.received.setdefault(self.path, []).append((time.monotonic(), json.loads(body), verified))
        self.send_response(500 if self.path.startswith("/fail") else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def signed_receiver() -> Iterator[str]:
    """The receiver's base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SigningReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback (aiosmtpd, in its own thread) and its port."""
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def mini(infra: dict[str, str], mailbox: tuple[Mailbox, int]) -> Iterator[Cluster]:
    env = {**os.environ, "CBS_EDGE_PORT": str(_free_port()), "CBS_RATE_AUTH_PER_MIN": "1000",
           "CBS_RATE_ADMIN_PER_MIN": "100000", "CBS_SMTP_HOST": "127.0.0.1", "CBS_SMTP_PORT": str(mailbox[1]),
           "CBS_NOTIFY_LEASE_S": "3", "CBS_NOTIFY_SEND_S": "0.05", "CBS_NOTIFY_SWEEP_S": "0.2",
           "CBS_NOTIFY_RETRY_DELAY_S": "0.3", "CBS_NOTIFY_WEBHOOK_RETRY_DELAY_S": "0.4",
           "CBS_NOTIFY_WEBHOOK_DISABLE_AFTER": "3", "CBS_NOTIFY_WEBHOOK_TIMEOUT_S": "60",
           "CBS_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "1",  # the receivers are on loopback
           "CBS_NOTIFY_QUIET_HOURS": "00:00-00:00"}  # none unless a test stores them: CI runs at any hour  # fmt: skip
    cluster = Cluster(env)
    for name in ("edge", *WORKERS):
        cluster.start(name)
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop_all()


def query(infra: dict[str, str], sql: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(infra["database_url"])
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


# test_payments.wait_for, the package's one poll, with this module's longer default wait.
eventually = functools.partial(wait_for, timeout_s=30)


def test_the_edge_routes_and_a_sigkill_mid_send(mini: Cluster, receiver: str, infra: dict[str, str]) -> None:
    with mini.client() as http:
        created = http.post("/v1/webhook-endpoints", json={"url": receiver, "categories": ["security"]},
                            headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"]
        assert http.post("/v1/webhook-endpoints", json={"url": receiver, "categories": ["security"]}).status_code == 400
        listed = http.get("/v1/webhook-endpoints").json()["items"]
        mine = [e for e in listed if e["endpoint_id"] == endpoint["endpoint_id"]]
        assert len(mine) == 1 and mine[0]["secret"] is None, "the secret is shown once"

        templates = http.get("/v1/notification-templates").json()["items"]
        assert "one_time_password" in {t["key"] for t in templates}
        defined = http.post("/v1/notification-templates", headers={"Idempotency-Key": uuid.uuid4().hex},
                            json={"key": "welcome", "language": "hi", "subject": "स्वागत {{ name }}", "body": "नमस्ते"})  # fmt: skip
        assert defined.status_code == 201 and defined.json()["version"] == 1, defined.text
        bad = http.post("/v1/notification-templates", headers={"Idempotency-Key": uuid.uuid4().hex},
                        json={"key": "broken", "subject": "x", "body": "{% if %}"})  # fmt: skip
        assert bad.status_code == 422 and bad.json()["code"] == "template_invalid"

        customer_id = uuid.uuid4()
        prefs = {"rules": [{"channel": "sms", "category": "marketing", "enabled": False}], "marketing_consent": True}
        put = http.put(f"/v1/customers/{customer_id}/notification-preferences", json=prefs)
        assert put.status_code == 200, put.text
        got = http.get(f"/v1/customers/{customer_id}/notification-preferences").json()
        assert got["marketing_consent"] and got["quiet_start"] == "22:00" and len(got["rules"]) == 1
        assert http.get("/v1/me/notifications").status_code == 403, "staff have no in-app inbox"

    event = audit.SecurityEventRaised(
        record_seq=1, event_id=uuid.uuid4().hex, routing_key_seen="identity.locked_out", risk_score=80,
        occurred_at=datetime.now(UTC), threat_type="locked_out", threat_level="critical",
    )  # fmt: skip
    asyncio.run(publish_as("audit", event.routing_key, event))
    eventually(lambda: Receiver.calls)  # the first attempt is in the receiver's hands
    ours = "SELECT notification_id FROM notification.notification WHERE endpoint_id = $1"
    endpoint_id = uuid.UUID(endpoint["endpoint_id"])
    attempt_one = query(infra, f"SELECT * FROM notification.delivery_attempt WHERE notification_id IN ({ours})", endpoint_id)
    assert [(a["attempt"], a["status"]) for a in attempt_one] == [(1, "sending")], "recorded before it left"
    mini.kill("notification")
    mini.start("notification")

    def delivered() -> list[Any]:
        rows = query(infra, "SELECT * FROM notification.notification WHERE endpoint_id = $1", endpoint_id)
        return rows if rows and rows[0]["status"] == "delivered" else []

    note = eventually(delivered)[0]
    assert note["attempts"] == 2
    log = query(infra, "SELECT attempt, status FROM notification.delivery_attempt WHERE notification_id = $1 "
                       "ORDER BY attempt", note["notification_id"])  # fmt: skip
    assert [(a["attempt"], a["status"]) for a in log] == [(1, "interrupted"), (2, "ok")]
    assert len(Receiver.calls) == 2, "one request per attempt"
    ids = {c["CBS-Notification-Id"] for c in Receiver.calls}
    assert ids == {str(note["notification_id"])}, "a receiver deduplicates by the notification id"
    assert [c["CBS-Attempt"] for c in Receiver.calls] == ["1", "2"]


def test_cbs_notify_test_sends_one_message(mini: Cluster, infra: dict[str, str]) -> None:
    """The operator's `cbs notify test --to`: an SMS through the development provider, followed to the end."""
    phone = "+919812345678"
    done = subprocess.run([sys.executable, "-m", "ops.cli", "notify", "test", "--to", phone, "--note", "hello", "--wait"],
                          env=mini.env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"status": "delivered"' in done.stdout
    sms = query(infra, "SELECT body FROM notification.sms_message WHERE phone = $1", phone)
    assert len(sms) == 1 and "test message from CBS: hello" in sms[0]["body"]


def test_a_customer_reads_and_marks_their_own_in_app_notifications(mini: Cluster, infra: dict[str, str]) -> None:
    from contracts import account, customer

    customer_id = uuid.uuid4()
    username, password = f"c{uuid.uuid4().hex[:10]}", "a-long-customer-password-1"
    with mini.client() as admin:
        made = admin.post("/v1/users", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "user_id": str(uuid.uuid4()), "username": username, "password": password, "roles": ["customer"],
            "customer_id": str(customer_id), "display_name": "Asha Rao"})  # fmt: skip
        assert made.status_code == 201, made.text
    now = datetime.now(UTC)
    asyncio.run(publish_as("customer", customer.CustomerRegistered.routing_key, customer.CustomerRegistered(
        customer_id=customer_id, occurred_at=now, customer_number="C0001", customer_type="individual", name="Asha Rao",
        email="asha@example.com", phone="+919800000099", language="en", status="active", kyc_status="completed",
        risk_category="low")))  # fmt: skip
    eventually(lambda: query(infra, "SELECT 1 FROM notification.recipient WHERE customer_id = $1", customer_id))
    asyncio.run(publish_as("account", account.AccountFrozen.routing_key, account.AccountFrozen(
        account_id=uuid.uuid4(), customer_id=customer_id, number="SAV000000000099", product_code="savings", currency="INR",
        status="frozen", occurred_at=now, status_before_freeze="active", actor="officer-1", reason="court order")))  # fmt: skip

    with mini.client(token=mini.token(username, password)) as me:
        inbox = eventually(lambda: me.get("/v1/me/notifications").json()["items"])
        assert len(inbox) == 1 and inbox[0]["subject"] == "Account SAV000000000099 frozen" and inbox[0]["read_at"] is None
        one = me.get(f"/v1/notifications/{inbox[0]['notification_id']}")
        assert one.status_code == 200 and one.json()["channel"] == "in_app"
        marked = me.post("/v1/me/notifications/read", json={"notification_ids": [inbox[0]["notification_id"]]},
                         headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert marked.status_code == 200 and marked.json() == {"marked": 1}, marked.text
        assert me.get("/v1/me/notifications", params={"unread_only": True}).json()["items"] == []
        own = me.put(f"/v1/customers/{customer_id}/notification-preferences", json={"marketing_consent": True})
        assert own.status_code == 200 and own.json()["marketing_consent"]
        other = me.get(f"/v1/customers/{uuid.uuid4()}/notification-preferences")
        assert other.status_code == 403 and other.json()["code"] == "not_owner"
        assert me.get("/v1/notification-templates").status_code == 403, "templates are staff's"


# --- issue 13's cases, through the edge and every worker as real processes --------------------------


def _account_holder(staff: httpx.Client) -> dict[str, str]:
    """A verified customer with a funded savings account the payment worker knows, and their email."""
    customer_id = verified_customer(staff)
    account_id = payable_account(staff, customer_id)
    deposit(staff, account_id, 5_000_000)
    email = staff.get(f"/v1/customers/{customer_id}").json()["email"]
    return {"customer_id": customer_id, "account_id": account_id, "email": email}


def _transfer(client: httpx.Client, payer: str, payee: str, amount: int) -> dict[str, Any]:
    order = internal(payer, payee, amount, channel="branch")
    placed = post(client, "/v1/payments", order)
    assert placed.status_code == 201 and placed.json()["status"] == "completed", placed.text
    return dict(placed.json())


def _register_endpoint(staff: httpx.Client, base: str, path: str, categories: list[str]) -> dict[str, Any]:
    created = staff.post("/v1/webhook-endpoints", json={"url": base + path, "categories": categories},
                         headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert created.status_code == 201, created.text
    SigningReceiver.secrets[path] = created.json()["secret"]
    return dict(created.json())


def _notifications(infra: dict[str, str], customer_id: str) -> list[Any]:
    return query(infra, "SELECT channel, status, template, category, scheduled_at, notification_id "
                        "FROM notification.notification WHERE customer_id = $1", uuid.UUID(customer_id))  # fmt: skip


def test_a_transfer_sends_an_email_and_a_signed_webhook(
    mini: Cluster, infra: dict[str, str], mailbox: tuple[Mailbox, int], signed_receiver: str
) -> None:
    box, _ = mailbox
    with mini.client(timeout=30) as staff:
        _register_endpoint(staff, signed_receiver, "/transactions", ["transaction"])
        payer, payee = _account_holder(staff), _account_holder(staff)
        paid = _transfer(staff, payer["account_id"], payee["account_id"], 123_456)

    mails = eventually(lambda: [m for m in box.to(payer["email"]) if "1,234.56" in m["Subject"]])
    assert mails[0]["Subject"] == "Payment of INR 1,234.56 completed", mails[0]["Subject"]
    assert paid["reference"] in mails[0].get_payload(decode=True).decode(), "the email names the payment's reference"
    # One event, two customers told on the same channels: each notification is their own.
    assert eventually(lambda: [m for m in box.to(payee["email"]) if "1,234.56" in m["Subject"]]), "the payee is told too"

    def hooks() -> list[tuple[float, dict[str, Any], bool]]:
        return [h for h in SigningReceiver.received.get("/transactions", []) if h[1]["data"].get("payment_id") == paid["payment_id"]]

    received = eventually(hooks)
    assert all(verified for _, _, verified in received), "every webhook carried a signature the receiver verified"
    assert {h[1]["customer_id"] for h in received} <= {payer["customer_id"], payee["customer_id"]}
    assert received[0][1]["data"]["amount"] == 123_456 and received[0][1]["category"] == "transaction"


def test_a_customer_with_sms_off_gets_no_sms(mini: Cluster, infra: dict[str, str], mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    with mini.client(timeout=30) as staff:
        quiet, other = _account_holder(staff), _account_holder(staff)
        off = staff.put(f"/v1/customers/{quiet['customer_id']}/notification-preferences", json={
            "rules": [{"channel": "sms", "category": "transaction", "enabled": False}]})  # fmt: skip
        assert off.status_code == 200, off.text
        paid = _transfer(staff, quiet["account_id"], other["account_id"], 77_700)

    def of_the_transfer(customer_id: str) -> set[str]:
        rows = query(infra, "SELECT channel FROM notification.notification WHERE customer_id = $1 "
                            "AND payload->>'payment_id' = $2", uuid.UUID(customer_id), paid["payment_id"])  # fmt: skip
        return {r["channel"] for r in rows}

    eventually(lambda: [m for m in box.to(quiet["email"]) if "777.00" in m["Subject"]])
    # The worker decides every channel of one event in one transaction: the email's row is there, so
    # an SMS's would be too. The payee, with SMS on, got one for the same payment.
    told = of_the_transfer(quiet["customer_id"])
    assert {"email", "in_app"} <= told and "sms" not in told, told
    assert "sms" in eventually(lambda: of_the_transfer(other["customer_id"]))


def test_quiet_hours_hold_a_marketing_sms_but_not_a_one_time_password(
    mini: Cluster, infra: dict[str, str], signed_receiver: str
) -> None:
    now = datetime.now(UTC)
    with mini.client(timeout=30) as staff:
        me_, payee = _account_holder(staff), _account_holder(staff)
        # Quiet from an hour ago to two hours on, in UTC: whatever the hour the test runs at.
        quiet = {"marketing_consent": True, "time_zone": "UTC", "quiet_start": f"{(now.hour - 1) % 24:02d}:00",
                 "quiet_end": f"{(now.hour + 2) % 24:02d}:00"}  # fmt: skip
        stored = staff.put(f"/v1/customers/{me_['customer_id']}/notification-preferences", json=quiet)
        assert stored.status_code == 200, stored.text
    offer = notification.SendMessage(send_id=uuid.uuid4(), channels=["sms"], customer_id=uuid.UUID(me_["customer_id"]),
                        template="test_message", data={"note": "a new deposit scheme"},
                        category=notification.NotificationCategory.marketing, priority=notification.NotificationPriority.medium, expires_in_s=86_400)  # fmt: skip
    asyncio.run(publish_as("ops", offer.routing_key, offer, exchange=topology.COMMANDS.name))  # as `cbs notify` would

    def held() -> list[Any]:
        return [n for n in _notifications(infra, me_["customer_id"]) if n["category"] == "marketing"]

    marketing = eventually(held)[0]
    assert marketing["channel"] == "sms" and marketing["status"] == "pending"
    assert marketing["scheduled_at"] >= now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2) - timedelta(seconds=1), \
        "held until the quiet hours end"

    _, username = new_user(mini, ["customer"], customer_id=me_["customer_id"])
    with mini.client(token=login(mini, username).json()["access_token"], timeout=30) as me:
        asked = post(me, "/v1/otp", {"otp_id": str(uuid.uuid4()), "payment": internal(me_["account_id"], payee["account_id"], 1_500_000)})
        assert asked.status_code == 201, asked.text
    otp_note = uuid.UUID(asked.json()["notification_ids"][0])
    sms = eventually(lambda: query(infra, "SELECT body FROM notification.sms_message WHERE notification_id = $1", otp_note))
    assert re.search(r"\b\d{6}\b", sms[0]["body"]), "the one-time password went at once, quiet hours or not"
    time.sleep(1)  # several rounds of the sender: the marketing SMS still waits
    again = [n for n in held() if n["notification_id"] == marketing["notification_id"]]
    assert again[0]["status"] == "pending"
    assert not query(infra, "SELECT 1 FROM notification.sms_message WHERE notification_id = $1", marketing["notification_id"])
    code = re.search(r"\b\d{6}\b", sms[0]["body"]).group(0)  # type: ignore[union-attr]
    assert not any(code in json.dumps(h[1]) for hooks in SigningReceiver.received.values() for h in hooks), \
        "no webhook ever carries a one-time password"


def test_a_webhook_answering_500_is_retried_with_backoff_then_disabled(
    mini: Cluster, infra: dict[str, str], signed_receiver: str
) -> None:
    path = f"/fail-{uuid.uuid4().hex[:6]}"
    with mini.client(timeout=30) as staff:
        endpoint = _register_endpoint(staff, signed_receiver, path, ["alert"])
        holder = _account_holder(staff)
        frozen = post(staff, f"/v1/accounts/{holder['account_id']}/freeze", {"reason": "suspected fraud"})
        assert frozen.status_code == 200, frozen.text

        def disabled() -> list[Any]:
            found = [e for e in staff.get("/v1/webhook-endpoints").json()["items"] if e["endpoint_id"] == endpoint["endpoint_id"]]
            return found if found and not found[0]["enabled"] else []

        eventually(disabled, timeout_s=30)
        calls = SigningReceiver.received[path]
        assert len(calls) == 3 and all(verified for _, _, verified in calls), "three signed attempts, then no more"
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(calls)]
        assert gaps[0] >= 0.4 and gaps[1] >= 0.8, f"exponential backoff from 0.4 s: {gaps}"
        rows = query(infra, "SELECT n.status, n.attempts, d.attempt, d.error_code FROM notification.notification n "
                            "JOIN notification.delivery_attempt d USING (notification_id) WHERE n.endpoint_id = $1 "
                            "ORDER BY d.attempt", uuid.UUID(endpoint["endpoint_id"]))  # fmt: skip
        assert [(r["status"], r["attempts"], r["error_code"]) for r in rows] == [("failed", 3, "http_500")] * 3

        enabled = post(staff, f"/v1/webhook-endpoints/{endpoint['endpoint_id']}/enable", {})
        assert enabled.status_code == 200 and enabled.json()["enabled"], enabled.text
    time.sleep(1)
    assert len(SigningReceiver.received[path]) == 3, "enabling it again resends nothing that failed"


def test_a_sign_in_from_a_new_device_is_mailed_and_texted_to_the_customer(
    mini: Cluster, infra: dict[str, str], mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    with mini.client(timeout=30) as staff:
        holder = _account_holder(staff)
    user_id, username = new_user(mini, ["customer"], customer_id=holder["customer_id"])
    phone_a = {"X-Device-Id": uuid.uuid4().hex, "User-Agent": "CBSMobile/3.2.1 (Android 14; Pixel 8) okhttp/4.12.0"}
    phone_b = {"X-Device-Id": uuid.uuid4().hex, "User-Agent": "CBSMobile/3.2.1 (iOS 17.1) CFNetwork/1490.0.4"}
    for headers in (phone_a, phone_a, phone_b):
        signed_in = login(mini, username, headers=headers)
        assert signed_in.status_code == 200, signed_in.text

    def about_new_sign_ins() -> list[Any]:
        return [m for m in box.to(holder["email"]) if m["Subject"] == "New sign-in to your account"]

    mail = eventually(about_new_sign_ins)[0]
    body = mail.get_payload(decode=True).decode()
    assert "CBSMobile/3.2.1 CFNetwork/1490.0.4" in body and "127.0.0.1" in body, body
    assert "change your password" in body
    assert phone_b["X-Device-Id"] not in body and phone_a["X-Device-Id"] not in body
    told = query(infra, "SELECT channel FROM notification.notification WHERE customer_id = $1 "
                        "AND template = 'new_device_login'", uuid.UUID(holder["customer_id"]))  # fmt: skip
    assert sorted(r["channel"] for r in told) == ["email", "in_app", "sms"], "one event: device B's, on each channel"
    sms = eventually(lambda: query(infra, "SELECT s.body FROM notification.sms_message s JOIN notification.notification n "
                                          "USING (notification_id) WHERE n.customer_id = $1 AND n.template = 'new_device_login'",
                                   uuid.UUID(holder["customer_id"])))  # fmt: skip
    assert len(sms) == 1 and "CFNetwork/1490.0.4" in sms[0]["body"]
    time.sleep(1)  # several rounds of the sender: nothing else about a sign-in comes
    assert len(about_new_sign_ins()) == 1, "device A's logins, the first and a known one, told nothing"
    events = query(infra, "SELECT payload->>'device_label' AS label FROM identity.outbox "
                          "WHERE routing_key = 'identity.new_device_login' AND payload->>'user_id' = $1", user_id)  # fmt: skip
    assert [e["label"] for e in events] == ["CBSMobile/3.2.1 CFNetwork/1490.0.4"]

