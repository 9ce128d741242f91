"""Step-up one-time passwords through the real edge and every worker as real processes
(banking-rules §2): a customer's 15,000.00 mobile payment is refused `verification_required`,
then placed with the code that arrived by SMS, read from the development SMS provider's table as
an operator would; wrong codes lock an OTP; another body's OTP is refused; below the threshold and
at the branch none is needed.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LOGS, Cluster
from tests.e2e.test_auth import login, new_user
from tests.e2e.test_flows import post, verified_customer
from tests.e2e.test_notifications import query
from tests.e2e.test_payments import deposit, internal, payable_account, wait_for

pytestmark = pytest.mark.e2e

LARGE, SMALL = 1_500_000, 999_999  # 15,000.00 and 9,999.99


def _sms_code(infra: dict[str, str], notification_id: str) -> str:
    """What the customer's phone shows: the development provider's message for that notification."""
    rows = wait_for(lambda: query(infra, "SELECT body FROM notification.sms_message WHERE notification_id = $1",
                                  uuid.UUID(notification_id)),
                    timeout_s=90, what="the SMS (critical first, within the provider's rate limit of 60 a minute)")  # fmt: skip
    match = re.search(r"\b(\d{6})\b", rows[0]["body"])
    assert match, rows[0]["body"]
    return match.group(1)


def _ask(me: httpx.Client, infra: dict[str, str], order: dict[str, Any]) -> tuple[str, str]:
    asked = post(me, "/v1/otp", {"otp_id": str(uuid.uuid4()), "payment": order})
    assert asked.status_code == 201, asked.text
    otp = asked.json()
    assert otp["channel"] == "sms" and otp["max_attempts"] == 3 and len(otp["notification_ids"]) == 1, otp
    return otp["otp_id"], _sms_code(infra, otp["notification_ids"][0])


def _pay(me: httpx.Client, order: dict[str, Any], otp_id: str, code: str, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex, "X-OTP-Id": otp_id, "X-OTP-Code": code}
    return me.post("/v1/payments", json=order, headers=headers)


@pytest.fixture(scope="module")
def customer(cluster: Cluster) -> dict[str, str]:
    with cluster.client(timeout=30) as staff:
        customer_id = verified_customer(staff)
        payer = payable_account(staff, customer_id)
        payee = payable_account(staff, verified_customer(staff))
        deposit(staff, payer, 10_000_000)
    _, username = new_user(cluster, ["customer"], customer_id=customer_id)
    token = login(cluster, username).json()["access_token"]
    return {"payer": payer, "payee": payee, "token": token}


def test_a_large_mobile_payment_needs_the_code_that_came_by_sms(cluster: Cluster, infra: dict[str, str],
                                                                 customer: dict[str, str]) -> None:  # fmt: skip
    payer, payee = customer["payer"], customer["payee"]
    with cluster.client(token=customer["token"], timeout=20) as me:
        order = internal(payer, payee, LARGE)
        refused = post(me, "/v1/payments", order)
        assert refused.status_code == 428 and refused.json()["code"] == "verification_required", refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        # The body's word is worth nothing.
        lied = post(me, "/v1/payments", {**order, "verified": True})
        assert lied.status_code == 400 and lied.json()["code"] == "invalid_message", lied.text

        small = post(me, "/v1/payments", internal(payer, payee, SMALL))
        assert small.status_code == 201 and small.json()["status"] == "completed", small.text

        otp_id, code = _ask(me, infra, order)
        # The same OTP on another amount or another payee: refused, the order untouched.
        for other in ({**order, "amount": LARGE + 1}, {**order, "payee": {"account_id": payer}}):
            mismatch = _pay(me, other, otp_id, code)
            assert mismatch.status_code == 403 and mismatch.json()["code"] == "otp_mismatch", mismatch.text

        key = uuid.uuid4().hex
        placed = _pay(me, order, otp_id, code, key)
        assert placed.status_code == 201 and placed.json()["status"] == "completed", placed.text
        replay = _pay(me, order, otp_id, code, key)  # the client's retry: the same answer, no second payment
        assert replay.status_code == 201 and replay.json() == placed.json(), replay.text
        payments = me.get(f"/v1/accounts/{payer}/payments").json()["items"]
        assert [p["payment_id"] for p in payments].count(order["payment_id"]) == 1
        another = {**order, "payment_id": str(uuid.uuid4())}
        used = _pay(me, another, otp_id, code)
        assert used.status_code == 403 and used.json()["code"] in ("otp_mismatch", "otp_used"), used.text
    # The code is in no process's log (as a number of its own: not inside a longer number or a hex id).
    alone = re.compile(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])")
    leaks = [path.name for path in sorted(LOGS.glob("*.log")) if alone.search(path.read_text(errors="replace"))]
    assert not leaks, leaks


def test_three_wrong_codes_lock_the_otp(cluster: Cluster, infra: dict[str, str], customer: dict[str, str]) -> None:
    with cluster.client(token=customer["token"], timeout=20) as me:
        order = internal(customer["payer"], customer["payee"], LARGE)
        otp_id, code = _ask(me, infra, order)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        answers = [_pay(me, order, otp_id, wrong) for _ in range(3)]
        assert [(a.status_code, a.json()["code"]) for a in answers] == [
            (403, "otp_invalid"), (403, "otp_invalid"), (403, "otp_locked")]
        assert answers[0].json()["details"] == {"attempts_left": 2}
        late = _pay(me, order, otp_id, code)
        assert late.status_code == 403 and late.json()["code"] == "otp_locked", late.text


def test_staff_at_the_branch_need_no_otp(cluster: Cluster, customer: dict[str, str]) -> None:
    with cluster.client(timeout=20) as staff:
        order = {**internal(customer["payer"], customer["payee"], LARGE), "channel": "branch"}
        placed = post(staff, "/v1/payments", order)
        assert placed.status_code == 201 and placed.json()["status"] == "completed", placed.text
        # A staff member cannot ask for one (it goes to a customer's phone).
        asked = post(staff, "/v1/otp", {"otp_id": str(uuid.uuid4()), "payment": order})
        assert asked.status_code == 403 and asked.json()["code"] == "forbidden", asked.text


def test_a_large_refund_by_its_route_needs_a_code_for_that_refund(cluster: Cluster, infra: dict[str, str],
                                                                   customer: dict[str, str]) -> None:  # fmt: skip
    """A customer gives back what they received: a debit of their account like any other, so the
    refund route takes the same headers, with an OTP asked for that refund (id, payment, amount)."""
    with cluster.client(timeout=20) as staff:
        deposit(staff, customer["payee"], LARGE)
        received = post(staff, "/v1/payments", {**internal(customer["payee"], customer["payer"], LARGE), "channel": "branch"})
        assert received.status_code == 201 and received.json()["status"] == "completed", received.text
    payment_id = received.json()["payment_id"]
    refund = {"refund_id": str(uuid.uuid4()), "reason": "sent by mistake"}
    with cluster.client(token=customer["token"], timeout=20) as me:
        refused = post(me, f"/v1/payments/{payment_id}/refund", refund)
        assert refused.status_code == 428 and refused.json()["code"] == "verification_required", refused.text

        asked = post(me, "/v1/otp", {"otp_id": str(uuid.uuid4()), "refund": {"payment_id": payment_id, "refund_id": refund["refund_id"]}})
        assert asked.status_code == 201, asked.text
        otp_id, code = asked.json()["otp_id"], _sms_code(infra, asked.json()["notification_ids"][0])
        headers = {"X-OTP-Id": otp_id, "X-OTP-Code": code}
        # The code is bound to the refund it was asked for: not another amount, not another refund id.
        for other in ({**refund, "amount": 1_000_000}, {**refund, "refund_id": str(uuid.uuid4())}):
            mismatch = me.post(f"/v1/payments/{payment_id}/refund", json=other, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            assert mismatch.status_code == 403 and mismatch.json()["code"] == "otp_mismatch", mismatch.text
        done = me.post(f"/v1/payments/{payment_id}/refund", json=refund, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        assert done.status_code == 201 and done.json()["status"] == "completed", done.text
        assert done.json()["amount"] == LARGE and done.json()["refund_of"] == payment_id
        both = post(me, "/v1/otp", {"otp_id": str(uuid.uuid4()), "payment": internal(customer["payer"], customer["payee"], LARGE),
                                    "refund": {"payment_id": payment_id, "refund_id": str(uuid.uuid4())}})  # fmt: skip
        assert both.status_code in (400, 422) and both.json()["code"] == "invalid_message", both.text
