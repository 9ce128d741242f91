"""Payments end to end: the edge, every worker and extra payment replicas as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LOGS, ROOT, Cluster
from tests.e2e.test_auth import login, new_user
from tests.e2e.test_flows import open_account_when_eligible, post, verified_customer

pytestmark = pytest.mark.e2e


def wait_for(check: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s} s (last: {result!r})"
        time.sleep(0.2)


def payable_account(client: httpx.Client, customer_id: str, product: str = "savings") -> str:
    """An account the payment worker already knows (it learns accounts from account.opened)."""
    account_id = open_account_when_eligible(client, customer_id, product)["account_id"]
    probe = {"payment_id": str(uuid.uuid4()), "kind": "cash_deposit", "channel": "branch",
             "payee": {"account_id": account_id}, "amount": 1, "currency": "INR"}  # fmt: skip

    def deposited() -> bool:
        response = post(client, "/v1/payments", {**probe, "payment_id": str(uuid.uuid4())})
        assert response.status_code in (201, 404), response.text
        return response.status_code == 201

    wait_for(deposited, what=f"payments to know account {account_id}")
    return account_id


def deposit(client: httpx.Client, account_id: str, amount: int) -> None:
    body = {"payment_id": str(uuid.uuid4()), "kind": "cash_deposit", "channel": "branch",
            "payee": {"account_id": account_id}, "amount": amount, "currency": "INR"}  # fmt: skip
    response = post(client, "/v1/payments", body)
    assert response.status_code == 201 and response.json()["status"] == "completed", response.text


def balance(client: httpx.Client, account_id: str) -> int:
    response = client.get(f"/v1/accounts/{account_id}/balance")
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


def internal(payer: str, payee: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"payment_id": str(uuid.uuid4()), "kind": "internal", "channel": "mobile", "payer_account_id": payer,
            "payee": {"account_id": payee}, "amount": amount, "currency": "INR", **extra}  # fmt: skip


def test_a_customer_pays_from_their_own_account_only(cluster: Cluster) -> None:
    with cluster.client() as staff:
        alice_customer, bob_customer = verified_customer(staff), verified_customer(staff)
        alice = payable_account(staff, alice_customer)
        bob = payable_account(staff, bob_customer)
        deposit(staff, alice, 1_000_000)
        deposit(staff, bob, 1_000_000)
    _, username = new_user(cluster, ["customer"], customer_id=alice_customer)
    with cluster.client(token=login(cluster, username).json()["access_token"]) as client:
        paid = post(client, "/v1/payments", internal(alice, bob, 25_000))
        assert paid.status_code == 201 and paid.json()["status"] == "completed", paid.text
        assert client.get(f"/v1/payments/{paid.json()['payment_id']}").status_code == 200
        theft = post(client, "/v1/payments", internal(bob, alice, 25_000))
        assert theft.status_code == 403 and theft.json()["code"] == "not_owner", theft.text
        cash = post(client, "/v1/payments", {"payment_id": str(uuid.uuid4()), "kind": "cash_deposit",
                                             "channel": "branch", "payee": {"account_id": alice}, "amount": 1,
                                             "currency": "INR"})  # fmt: skip
        assert cash.status_code == 403, cash.text
        listed = client.get(f"/v1/accounts/{alice}/payments")
        assert listed.status_code == 200 and paid.json()["payment_id"] in {p["payment_id"] for p in listed.json()["items"]}
        assert client.get(f"/v1/accounts/{bob}/payments").status_code == 403
    with cluster.client() as staff:
        assert balance(staff, alice) == 1_000_001 - 25_000
        assert balance(staff, bob) == 1_000_001 + 25_000


def test_maker_checker_over_http(cluster: Cluster) -> None:
    maker_id, maker = new_user(cluster, ["officer"])
    _, checker = new_user(cluster, ["officer"])
    with cluster.client() as staff:
        alice = payable_account(staff, verified_customer(staff), "current")
        bob = payable_account(staff, verified_customer(staff))
        deposit(staff, alice, 30_000_000)
    with cluster.client(token=login(cluster, maker).json()["access_token"]) as client:
        placed = post(client, "/v1/payments", internal(alice, bob, 15_000_000))
        assert placed.status_code == 201 and placed.json()["status"] == "pending", placed.text
        payment_id = placed.json()["payment_id"]
        own = post(client, f"/v1/payments/{payment_id}/approve", {})
        assert own.status_code == 403 and own.json()["code"] == "maker_cannot_approve", own.text
    with cluster.client(token=login(cluster, checker).json()["access_token"]) as client:
        approved = post(client, f"/v1/payments/{payment_id}/approve", {})
        assert approved.status_code == 200 and approved.json()["status"] == "completed", approved.text
        assert approved.json()["maker"] == maker_id and approved.json()["approver"] != maker_id
    with cluster.client() as staff:
        assert balance(staff, bob) == 1 + 15_000_000


def close_days_until(staff: httpx.Client, after: date) -> None:
    """Close of business, day after day, until the open business date is past `after`."""
    while True:
        view = staff.get("/v1/business-day").json()
        if date.fromisoformat(view["business_date"]) > after:
            return
        if view["status"] == "open":
            assert staff.post("/v1/business-day/close", json={"business_date": view["business_date"]}).status_code == 200
        time.sleep(0.1)


def test_standing_order_with_two_replicas_runs_each_occurrence_once_and_catches_up(cluster: Cluster) -> None:
    """Created for the next business date; the payment worker is stopped while the bank closes
    days past three due dates; two replicas started afterwards learn the business date from the
    day worker's events and place each missed occurrence exactly once."""
    with cluster.client() as staff:
        alice = payable_account(staff, verified_customer(staff))
        bob = payable_account(staff, verified_customer(staff))
        deposit(staff, alice, 1_000_000)
        start = date.fromisoformat(staff.get("/v1/business-day").json()["next_business_date"])
        order_id = str(uuid.uuid4())
        created = post(staff, "/v1/standing-orders", {
            "standing_order_id": order_id, "payer_account_id": alice, "payee": {"account_id": bob},
            "kind": "internal", "amount": 7_000, "currency": "INR", "frequency": "weekly",
            "start_date": start.isoformat(),
        })  # fmt: skip
        assert created.status_code == 201 and created.json()["next_date"] == start.isoformat(), created.text
        time.sleep(2)
        assert balance(staff, bob) == 1, "nothing is due before its start date"

    cluster.stop("payment")
    with cluster.client() as staff:
        close_days_until(staff, start + timedelta(days=14))  # start, start + 7 and start + 14 have passed meanwhile
    replicas = ("payment-a", "payment-b")
    for name in replicas:
        cluster.start(name, worker="payment")
    try:
        with cluster.client() as staff:
            wait_for(lambda: balance(staff, bob) == 1 + 3 * 7_000, timeout_s=30, what="three occurrences paid")
            time.sleep(3)  # more scheduler rounds on both replicas: nothing more is placed
            assert balance(staff, bob) == 1 + 3 * 7_000
            payments = staff.get(f"/v1/accounts/{alice}/payments").json()["items"]
            occurrences = [p for p in payments if p["channel"] == "scheduler"]
            assert len(occurrences) == 3 and all(p["status"] == "completed" for p in occurrences)
            order = staff.get(f"/v1/standing-orders/{order_id}").json()
            assert order["failures"] == 0 and order["next_date"] == (start + timedelta(days=21)).isoformat()
    finally:
        for name in replicas:
            cluster.stop(name)
        cluster.start("payment")
        cluster.wait_ready()


def _cbs(cluster: Cluster, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env={**cluster.env, **(env or {})}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_the_clearing_partner_settles_external_payments_and_credits_incoming_once(cluster: Cluster) -> None:
    """The simulator runs as its own process, with its own broker user, on the published contracts."""
    name = f"clr{uuid.uuid4().hex[:8]}"
    added = _cbs(cluster, "partner", "add", name, "--events", "payment.submitted", "--may-send",
                 "payment.settle_payment", "payment.reject_external_payment", "payment.incoming_credit")  # fmt: skip
    assert added.returncode == 0, added.stderr
    secret = {"CBS_PARTNER_SECRET": json.loads(added.stdout)["password"]}
    log = open(LOGS / f"clearing-sim-{name}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "ops.cli", "partner", "clearing-sim", "--name", name,
                                "--delay-s", "0.2", "--reject-rate", "0"], env={**cluster.env, **secret}, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        with cluster.client() as staff:
            alice = payable_account(staff, verified_customer(staff))
            deposit(staff, alice, 1_000_000)
            placed = post(staff, "/v1/payments", {
                "payment_id": str(uuid.uuid4()), "kind": "imps", "channel": "internet_banking",
                "payer_account_id": alice, "amount": 100_000, "currency": "INR",
                "payee": {"name": "Ravi Kumar", "account_number": "123456789012", "ifsc": "HDFC0001234"},
            })  # fmt: skip
            assert placed.status_code == 201 and placed.json()["status"] == "processing", placed.text
            payment_id = placed.json()["payment_id"]

            def settled() -> bool:
                return staff.get(f"/v1/payments/{payment_id}").json()["status"] == "completed"

            wait_for(settled, what="settlement by the clearing partner")
            view = staff.get(f"/v1/payments/{payment_id}").json()
            assert view["partner_reference"].startswith("CLR") and view["fee"] == 200
            assert balance(staff, alice) == 1_000_001 - 100_200

            number = staff.get(f"/v1/accounts/{alice}").json()["number"]
            credit = ["partner", "clearing-sim", "credit", "--name", name, "--reference", f"UTR{uuid.uuid4().hex[:10]}",
                      "--rail", "neft", "--account-number", number, "--amount", "55500", "--payer-name", "Acme Ltd"]  # fmt: skip
            for _ in range(2):  # the partner repeats itself: credited once
                sent = _cbs(cluster, *credit, env=secret)
                assert sent.returncode == 0, sent.stderr
            assert balance(staff, alice) == 1_000_001 - 100_200 + 55_500
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        _cbs(cluster, "partner", "remove", name)


def test_concurrent_orders_over_http_never_exceed_the_daily_limit(cluster: Cluster) -> None:
    """Savings: 100,000.00 a day. 30 orders of 9,000.00 at once through the edge: exactly 11 fit."""
    from concurrent.futures import ThreadPoolExecutor

    with cluster.client() as staff:
        alice = payable_account(staff, verified_customer(staff))
        bob = payable_account(staff, verified_customer(staff))
        deposit(staff, alice, 50_000_000)

    def order(_: int) -> httpx.Response:
        with cluster.client(timeout=30) as client:
            return post(client, "/v1/payments", internal(alice, bob, 900_000))

    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(pool.map(order, range(30)))
    accepted = [a for a in answers if a.status_code == 201]
    assert {a.json()["code"] for a in answers if a.status_code != 201} == {"limit_exceeded"}
    assert len(accepted) == 11 and all(a.json()["status"] == "completed" for a in accepted)
    with cluster.client() as staff:
        assert balance(staff, bob) == 1 + 11 * 900_000
