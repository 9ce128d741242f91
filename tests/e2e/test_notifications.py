"""The notification worker as a real process behind the real edge: its routes (staff's and a
customer's own), `cbs notify test`, and a SIGKILL in the middle of a webhook send (banking-rules §6;
DESIGN §4 rule 8).

Only the edge, identity (for the admin's token) and the notification worker run. The webhook
receiver hangs on its first request; the worker is killed while it waits; the restarted worker
finds the attempt left `sending`, marks it `interrupted` after the lease and sends a second
attempt, which the receiver takes. Nothing is lost, and each attempt left once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import pytest

from contracts import audit
from tests.conftest import separate_infra
from tests.e2e.conftest import Cluster, _free_port
from tests.integration.conftest import publish_as

pytestmark = pytest.mark.e2e


class Receiver(BaseHTTPRequestHandler):
    calls: list[dict[str, str]] = []
    hang = threading.Event()  # set: the first request hangs until the test ends

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
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


@pytest.fixture(scope="module")
def mini(infra: dict[str, str]) -> Iterator[Cluster]:
    env = {**os.environ, "CBS_EDGE_PORT": str(_free_port()), "CBS_RATE_AUTH_PER_MIN": "1000",
           "CBS_NOTIFY_LEASE_S": "3", "CBS_NOTIFY_SEND_S": "0.05", "CBS_NOTIFY_SWEEP_S": "0.2",
           "CBS_NOTIFY_WEBHOOK_TIMEOUT_S": "60", "CBS_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "1"}  # fmt: skip
    cluster = Cluster(env)
    for name in ("edge", "identity", "notification"):
        cluster.start(name)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                cluster.token()
                break
            except (httpx.HTTPError, AssertionError):
                assert time.monotonic() < deadline, "edge and identity not up in 60 s"
                time.sleep(0.5)
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


def eventually(check: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {result!r}"
        time.sleep(0.2)


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
