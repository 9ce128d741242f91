"""The customer → KYC → account flow over HTTP and, as a partner would, over AMQP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import date
from typing import Any

import httpx

from tests.e2e.conftest import ROOT, Cluster, _free_port

pytestmark = __import__("pytest").mark.e2e


def post(client: httpx.Client, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


def register_body(suffix: str) -> dict[str, Any]:
    return {
        "customer_id": str(uuid.uuid4()),
        "customer_type": "individual",
        "first_name": "Meera",
        "last_name": f"Iyer {suffix}",
        "date_of_birth": "1988-04-12",
        "email": f"meera-{suffix}@example.com",
        "phone": "+919811111111",
        "national_id": f"NID-{suffix}",
        "addresses": [{"street": "12 Residency Road", "city": "Bengaluru", "country": "IN"}],
    }


def verified_customer(client: httpx.Client) -> str:
    body = register_body(uuid.uuid4().hex[:8])
    created = post(client, "/v1/customers", body)
    assert created.status_code == 201, created.text
    customer_id = body["customer_id"]
    for document_type in ("national_id", "utility_bill", "photo"):
        document_id = str(uuid.uuid4())
        added = post(client, f"/v1/customers/{customer_id}/kyc/documents", {
            "document_id": document_id, "document_type": document_type, "number": f"{document_type}-1",
            "issuer": "Issuer", "issue_date": date.today().isoformat(),
        })  # fmt: skip
        assert added.status_code == 201, added.text
        verified = post(client, f"/v1/customers/{customer_id}/kyc/verify", {"document_id": document_id})
        assert verified.status_code == 200, verified.text
    return customer_id


def open_account_when_eligible(client: httpx.Client, customer_id: str, product_code: str = "savings") -> dict[str, Any]:
    """The account worker learns of the KYC from an event: a moment after the customer worker."""
    body = {"account_id": str(uuid.uuid4()), "customer_id": customer_id, "product_code": product_code}
    deadline = time.monotonic() + 20
    while True:
        response = post(client, "/v1/accounts", body)
        if response.status_code == 201 or time.monotonic() > deadline:
            break
        assert response.json()["code"] in ("customer_unknown", "customer_not_eligible"), response.text
        time.sleep(0.2)
    assert response.status_code == 201, response.text
    return response.json()


def test_register_kyc_open_freeze_read_over_http(cluster: Cluster) -> None:
    with cluster.client(timeout=10) as client:
        customer_id = verified_customer(client)
        customer = client.get(f"/v1/customers/{customer_id}").json()
        assert (customer["status"], customer["kyc_status"]) == ("active", "completed")

        account = open_account_when_eligible(client, customer_id)
        assert account["status"] == "active"
        frozen = post(client, f"/v1/accounts/{account['account_id']}/freeze", {"reason": "suspected fraud"})
        assert frozen.status_code == 200 and frozen.json()["status"] == "frozen"

        read = client.get(f"/v1/accounts/{account['account_id']}").json()
        assert read["status"] == "frozen" and read["status_before_freeze"] == "active"
        listed = client.get(f"/v1/customers/{customer_id}/accounts").json()
        assert [x["account_id"] for x in listed["items"]] == [account["account_id"]]


def test_refusals_are_problem_json(cluster: Cluster) -> None:
    with cluster.client(timeout=10) as client:
        missing_key = client.post("/v1/customers", json=register_body("nokey"))
        assert missing_key.status_code == 400 and missing_key.json()["code"] == "idempotency_key_required"
        bad = post(client, "/v1/customers", {"customer_type": "individual"})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json") and bad.json()["code"] == "invalid_message"
        unknown = client.get(f"/v1/accounts/{uuid.uuid4()}")
        assert unknown.status_code == 404 and unknown.json()["code"] == "account_not_found"
        not_eligible = post(client, "/v1/accounts", {"account_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()),
                                                     "product_code": "savings"})
        assert not_eligible.status_code == 404 and not_eligible.json()["code"] == "customer_unknown"


def test_a_retried_post_has_one_effect_and_the_same_answer(cluster: Cluster) -> None:
    with cluster.client(timeout=10) as client:
        body, key = register_body(uuid.uuid4().hex[:8]), uuid.uuid4().hex
        first, second = post(client, "/v1/customers", body, key), post(client, "/v1/customers", body, key)
        assert first.status_code == second.status_code == 201 and first.json() == second.json()
        other = {**body, "customer_id": str(uuid.uuid4())}
        assert post(client, "/v1/customers", other, key).status_code == 409  # idempotency_key_reused
        status = client.get(f"/v1/operations/customer.{key}")
        assert status.status_code == 201 or status.status_code == 200
        assert status.json()["customer_id"] == body["customer_id"]


def test_health_and_metrics(cluster: Cluster) -> None:
    with cluster.client(timeout=10) as client:
        assert client.get("/health/live").json() == {"status": "live"}
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["queues_without_consumers"] == []
        assert "faststream_published_messages_total" in client.get("/metrics").text
        assert "/v1/customers" in client.get("/openapi.json").json()["paths"]


def test_a_worker_serves_its_metrics_when_given_a_port(cluster: Cluster) -> None:
    port = _free_port()
    cluster.start("account-metrics", worker="account", env={"CBS_METRICS_PORT": str(port)})
    try:
        def scraped() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                return ""

        deadline = time.monotonic() + 30
        while "faststream_received_messages_total" not in scraped():
            assert time.monotonic() < deadline, "no metrics served"
            time.sleep(0.2)
    finally:
        cluster.stop("account-metrics")


PARTNER_FLOW_KEYS = ("customer.register_customer", "customer.add_kyc_document", "customer.verify_kyc_document",
                     "customer.get_customer", "account.open_account", "account.freeze_account", "account.get_account")


def test_partner_flow_over_amqp(cluster: Cluster) -> None:
    """A partner made by `cbs partner add`, with its own user and grant, runs the whole flow."""
    name = f"flow-{uuid.uuid4().hex[:8]}"
    made = subprocess.run([sys.executable, "-m", "ops.cli", "partner", "add", name, "--may-send", *PARTNER_FLOW_KEYS],
                          env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    password = json.loads(made.stdout.strip().splitlines()[-1])["password"]
    from ops import partners

    try:
        done = subprocess.run(
            [sys.executable, "-m", "ops.sim.partner_flow"],
            env={**cluster.env, "CBS_PARTNER_URL": partners.partner_url(cluster.env["CBS_AMQP_URL"], name, password)},
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
    finally:
        subprocess.run([sys.executable, "-m", "ops.cli", "partner", "remove", name], env=cluster.env, cwd=ROOT,
                       capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["kyc_status"], result["customer_status"], result["account_status"]) == ("completed", "active", "frozen")


def test_no_reply_in_time_gives_202_and_the_operation_answers_later(cluster: Cluster) -> None:
    with cluster.client(timeout=30) as client:
        customer_id = verified_customer(client)
        account = open_account_when_eligible(client, customer_id)
        cluster.kill("account")
        try:
            key = uuid.uuid4().hex
            accepted = post(client, f"/v1/accounts/{account['account_id']}/freeze", {"reason": "while down"}, key)
            assert accepted.status_code == 202, accepted.text
            assert accepted.headers["Location"].startswith(f"/v1/operations/account.{key}?request=")
            assert client.get(accepted.headers["Location"]).status_code in (404, 503)  # nobody has it yet
        finally:
            cluster.start("account")
        deadline = time.monotonic() + 30
        while (status := client.get(accepted.headers["Location"])).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert status.status_code == 200 and status.json()["status"] == "frozen"
        cluster.wait_ready()


def test_money_reaches_an_account_through_the_ledger_and_is_paid_out_when_it_closes(cluster: Cluster) -> None:
    import hashlib

    vault = str(uuid.UUID(hashlib.md5(b"cbs.ledger.cash_vault.INR").hexdigest()))
    with cluster.client(timeout=10) as client:
        account = open_account_when_eligible(client, verified_customer(client))
        account_id = account["account_id"]
        empty = client.get(f"/v1/accounts/{account_id}/balance").json()
        assert (empty["balance"], empty["overdraft_limit"]) == (0, -10_000)  # savings: 100.00 minimum balance

        deposit = {"id": str(uuid.uuid4()), "debit_account_id": vault, "credit_account_id": account_id,
                   "amount": 250_000, "currency": "INR", "code": "deposit"}  # fmt: skip
        posted = post(client, "/v1/ledger/transfers", {"transfers": [deposit]})
        assert posted.status_code == 200 and posted.json()["results"][0]["result"] == "ok", posted.text
        too_much = {**deposit, "id": str(uuid.uuid4()), "debit_account_id": account_id, "credit_account_id": vault,
                    "amount": 250_000 - 10_000 + 1, "code": "withdrawal"}  # fmt: skip
        refused = post(client, "/v1/ledger/transfers", {"transfers": [too_much]})
        assert refused.json()["results"][0]["result"] == "exceeds_credits"  # the minimum balance holds

        balance = client.get(f"/v1/accounts/{account_id}/balance").json()
        assert (balance["balance"], balance["available"]) == (250_000, 240_000)  # 100.00 stays in: not spendable
        history = client.get(f"/v1/accounts/{account_id}/history").json()
        assert [(e["transfer_id"], e["side"], e["credits_posted"]) for e in history["items"]] == [
            (deposit["id"], "credit", 250_000)
        ]
        assert client.get(f"/v1/ledger/transfers/{deposit['id']}").json()["status"] == "posted"

        close = post(client, f"/v1/accounts/{account_id}/close", {"reason": "customer request"})
        assert close.status_code == 422 and close.json()["code"] == "close_refused_nonzero_balance", close.text
        assert client.get(f"/v1/accounts/{account_id}").json()["status"] == "active"

        # The customer takes out what is available, then leaves: the last 100.00 (the minimum
        # balance) is paid out in cash and the account closes, in one transaction of the ledger.
        withdraw = {**deposit, "id": str(uuid.uuid4()), "debit_account_id": account_id, "credit_account_id": vault,
                    "amount": 240_000, "code": "withdrawal"}  # fmt: skip
        assert post(client, "/v1/ledger/transfers", {"transfers": [withdraw]}).json()["results"][0]["result"] == "ok"
        both = post(client, f"/v1/accounts/{account_id}/close",
                    {"reason": "customer leaves", "payout_in_cash": True, "payout_account_id": vault})  # fmt: skip
        assert both.status_code == 400, both.text
        closed = post(client, f"/v1/accounts/{account_id}/close", {"reason": "customer leaves", "payout_in_cash": True})
        assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
        final = client.get(f"/v1/accounts/{account_id}/balance").json()
        assert (final["balance"], final["available"], final["closed"]) == (0, 0, True)


def test_an_officer_holds_part_of_a_balance_and_releases_it_through_the_edge(cluster: Cluster) -> None:
    import hashlib

    vault = str(uuid.UUID(hashlib.md5(b"cbs.ledger.cash_vault.INR").hexdigest()))
    with cluster.client(timeout=10) as client:
        account_id = open_account_when_eligible(client, verified_customer(client))["account_id"]
        deposit = {"id": str(uuid.uuid4()), "debit_account_id": vault, "credit_account_id": account_id,
                   "amount": 50_000, "currency": "INR", "code": "deposit"}  # fmt: skip
        assert post(client, "/v1/ledger/transfers", {"transfers": [deposit]}).status_code == 200
        hold_id = str(uuid.uuid4())
        placed = post(client, f"/v1/accounts/{account_id}/holds",
                      {"hold_id": hold_id, "kind": "lien", "amount": 15_000, "reason": "court order"})  # fmt: skip
        assert placed.status_code == 201 and placed.json()["status"] == "active", placed.text
        assert client.get(f"/v1/accounts/{account_id}/balance").json()["available"] == 50_000 - 10_000 - 15_000
        expiring_lien = post(client, f"/v1/accounts/{account_id}/holds", {"hold_id": str(uuid.uuid4()), "kind": "lien",
                             "amount": 1, "reason": "x", "expires_in_s": 60})  # fmt: skip
        assert expiring_lien.status_code == 400, expiring_lien.text
        listed = client.get(f"/v1/accounts/{account_id}/holds").json()["items"]
        assert [(h["hold_id"], h["kind"], h["amount"]) for h in listed] == [(hold_id, "lien", 15_000)]
        released = post(client, f"/v1/accounts/{account_id}/holds/{hold_id}/release", {"reason": "order lifted"})
        assert released.status_code == 200 and released.json()["status"] == "released", released.text
        assert client.get(f"/v1/accounts/{account_id}/balance").json()["available"] == 40_000


def test_an_officer_defines_a_product_over_http_and_a_teller_may_not(cluster: Cluster) -> None:
    from tests.e2e.test_auth import login, new_user

    code = f"saver_{uuid.uuid4().hex[:8]}"
    with cluster.client(timeout=10) as admin:
        terms = admin.get("/v1/products/savings").json()
        for field in ("code", "version", "defined_by", "defined_at"):
            terms.pop(field)
        defined = post(admin, "/v1/products", {**terms, "code": code, "name": "Saver Plus", "rate_bps": 425})
        assert defined.status_code == 201 and defined.json()["version"] == 1, defined.text
        refused = post(admin, "/v1/products", {**terms, "code": code, "overdraft_limit": 100})
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_product", refused.text
        assert admin.get(f"/v1/products/{code}", params={"version": 2}).status_code == 404
    _, teller = new_user(cluster, ["teller"])
    with cluster.client(token=login(cluster, teller).json()["access_token"]) as client:
        assert client.get(f"/v1/products/{code}").json()["rate_bps"] == 425
        assert post(client, "/v1/products", {**terms, "code": code, "rate_bps": 900}).status_code == 403
