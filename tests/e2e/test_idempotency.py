"""Two requests under one Idempotency-Key never cross, even when both outlive the edge's wait.

The attack as reported: two concurrent `POST /v1/payments` under one key with different bodies;
each client got 202, and each one's operation answered 200 with the *other* request's payment.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.conftest import Cluster
from tests.e2e.test_auth import login, new_user
from tests.e2e.test_flows import post, verified_customer
from tests.e2e.test_payments import balance, payable_account


def _cash_deposit(account_id: str, amount: int) -> dict[str, Any]:
    return {"payment_id": str(uuid.uuid4()), "kind": "cash_deposit", "channel": "branch",
            "payee": {"account_id": account_id}, "amount": amount, "currency": "INR"}  # fmt: skip


def _settled(client: httpx.Client, accepted: httpx.Response, timeout_s: float = 60) -> httpx.Response:
    """What a 202's status URL answers once the worker has the request."""
    deadline = time.monotonic() + timeout_s
    while (status := client.get(accepted.headers["Location"])).status_code in (404, 503):
        assert time.monotonic() < deadline, f"no answer for {accepted.headers['Location']}"
        time.sleep(0.3)
    return status


def test_two_bodies_under_one_key_both_accepted_then_each_answered_its_own(cluster: Cluster) -> None:
    with cluster.client(timeout=30) as staff:
        account = payable_account(staff, verified_customer(staff))
        before = balance(staff, account)
        key = uuid.uuid4().hex
        bodies = [_cash_deposit(account, 1_100), _cash_deposit(account, 2_200)]
        cluster.kill("payment")  # both requests outlive the edge's wait: the reported 202s
        try:
            with ThreadPoolExecutor(2) as pool:
                first, second = pool.map(lambda body: post(staff, "/v1/payments", body, key), bodies)
            assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
            assert first.headers["Location"] != second.headers["Location"]  # each names its own request
        finally:
            cluster.start("payment")
        answers = [_settled(staff, accepted) for accepted in (first, second)]
        cluster.wait_ready()
    done = [(body, a) for body, a in zip(bodies, answers, strict=True) if a.status_code == 201 or a.status_code == 200]
    refused = [a for a in answers if a.status_code == 409]
    assert len(done) == 1 and len(refused) == 1, [a.text for a in answers]
    [(body, answer)] = done
    assert answer.json()["payment_id"] == body["payment_id"]  # its own payment, never the other's
    assert refused[0].json()["code"] == "idempotency_key_reused"
    with cluster.client() as staff:
        assert balance(staff, account) == before + body["amount"]


def test_another_user_cannot_use_or_read_a_key_already_used(cluster: Cluster) -> None:
    """Another person's request under a used key is refused, not answered with the first's result,
    and the first's operation is unknown to them."""
    _, teller = new_user(cluster, ["teller"])
    with cluster.client(timeout=30) as staff, cluster.client(token=login(cluster, teller).json()["access_token"]) as other:
        account = payable_account(staff, verified_customer(staff))
        key, body = uuid.uuid4().hex, _cash_deposit(account, 700)
        placed = post(staff, "/v1/payments", body, key)
        assert placed.status_code == 201, placed.text
        reused = post(other, "/v1/payments", body, key)
        assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused", reused.text
        assert other.get(f"/v1/operations/payment.{key}").status_code == 404
        mine = staff.get(f"/v1/operations/payment.{key}")
        assert mine.status_code == 200 and mine.json()["payment_id"] == body["payment_id"], mine.text
