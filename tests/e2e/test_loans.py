"""Loans through the edge (issue 12, so far): the calculator, open to any signed-in caller."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Cluster
from tests.e2e.test_auth import login, new_user


def test_a_customer_previews_a_loan_and_a_schedule_that_cannot_be_is_a_400(cluster: Cluster) -> None:
    _, customer = new_user(cluster, ["customer"], customer_id=str(uuid.uuid4()))
    body = {"principal": 10_000_000, "currency": "INR", "rate_bps": 1_200, "months": 12, "disbursed_on": "2028-01-15"}
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        drawn = client.post("/v1/loans/calculate", json=body)
        assert drawn.status_code == 200, drawn.text
        schedule = drawn.json()
        assert (schedule["emi"], schedule["total_interest"], len(schedule["instalments"])) == (888_488, 661_853, 12)
        assert schedule["instalments"][-1]["amount"] == 888_485  # §9: the last takes the remainder
        flat_by_principal = client.post("/v1/loans/calculate", json={**body, "method": "flat", "amortization": "equal_principal"})
        assert flat_by_principal.status_code == 400 and flat_by_principal.json()["code"] == "invalid_message"
        too_long = client.post("/v1/loans/calculate", json={**body, "months": 361})
        assert too_long.status_code == 400 and too_long.json()["code"] == "invalid_message"
    assert httpx.post(f"{cluster.base_url}/v1/loans/calculate", json=body).status_code == 401


def test_customers_read_loan_products_and_officers_define_them(cluster: Cluster) -> None:
    _, customer = new_user(cluster, ["customer"], customer_id=str(uuid.uuid4()))
    _, officer = new_user(cluster, ["officer"])
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        listed = client.get("/v1/loan-products")
        assert listed.status_code == 200 and {"home", "personal"} <= {p["code"] for p in listed.json()["items"]}
        home = client.get("/v1/loan-products/home").json()
        terms = {k: v for k, v in home.items() if k not in ("code", "version", "defined_by", "defined_at")}
        denied = client.post("/v1/loan-products", json={**terms, "code": "home_x"}, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert denied.status_code == 403
    with cluster.client(token=login(cluster, officer).json()["access_token"]) as client:
        code = f"home_{uuid.uuid4().hex[:6]}"
        made = client.post("/v1/loan-products", json={**terms, "code": code, "max_rate_bps": 1_000},
                           headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert made.status_code == 201 and made.json()["defined_by"] and made.json()["version"] == 1, made.text
        capped = client.post("/v1/loan-products", json={**terms, "code": code, "max_rate_bps": 1_300},
                             headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert capped.status_code == 422 and capped.json()["code"] == "invalid_product"


def test_a_customer_applies_an_officer_underwrites_and_another_approves_with_the_schedule(cluster: Cluster) -> None:
    import time

    from tests.e2e.test_flows import open_account_when_eligible, post, verified_customer

    with cluster.client(timeout=10) as admin:
        customer_id = verified_customer(admin)
        account = open_account_when_eligible(admin, customer_id)
    _, customer = new_user(cluster, ["customer"], customer_id=customer_id)
    _, maker = new_user(cluster, ["officer"])
    _, checker = new_user(cluster, ["officer"])
    application_id = str(uuid.uuid4())
    body = {"application_id": application_id, "customer_id": customer_id, "product_code": "personal",
            "linked_account_id": account["account_id"], "purpose": "a wedding", "principal": 1_000_000, "currency": "INR",
            "months": 6, "monthly_income": 8_000_000, "existing_emi": 0, "credit_score": 780, "employment_months": 84}  # fmt: skip
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        made = post(client, "/v1/loan-applications", body)
        assert made.status_code == 201 and made.json()["status"] == "draft", made.text
        someone_else = post(client, "/v1/loan-applications", {**body, "application_id": str(uuid.uuid4()),
                                                               "customer_id": str(uuid.uuid4())})  # fmt: skip
        assert someone_else.status_code == 403 and someone_else.json()["code"] == "not_owner"
        deadline = time.monotonic() + 20  # the loan worker learns the account from account.opened
        while (submitted := post(client, f"/v1/loan-applications/{application_id}/submit", {})).status_code != 200:
            assert submitted.json()["code"] == "not_eligible" and time.monotonic() < deadline, submitted.text
            time.sleep(0.2)
        assert post(client, f"/v1/loan-applications/{application_id}/underwrite", {}).status_code == 403  # staff's work
    with cluster.client(token=login(cluster, maker).json()["access_token"]) as client:
        reviewed = post(client, f"/v1/loan-applications/{application_id}/underwrite", {})
        assert reviewed.status_code == 200 and reviewed.json()["assessment"]["outcome"] == "recommend", reviewed.text
    with cluster.client(token=login(cluster, checker).json()["access_token"]) as client:
        approved = post(client, f"/v1/loan-applications/{application_id}/approve", {"principal": 1_000_000, "rate_bps": 1_200})
        assert approved.status_code == 200, approved.text
        instalments = approved.json()["schedule"]["instalments"]
        assert [i["amount"] for i in instalments] == [172_548] * 5 + [172_551]  # §9: 10,000.00 at 12% for 6 months
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        mine = client.get(f"/v1/loan-applications/{application_id}").json()
        assert (mine["status"], mine["submitted_by"] != mine["decided_by"]) == ("approved", True)
        assert post(client, f"/v1/loan-applications/{application_id}/disburse", {"loan_id": str(uuid.uuid4())}).status_code == 403
    loan_id = str(uuid.uuid4())
    with cluster.client(token=login(cluster, maker).json()["access_token"]) as client:
        disbursed = post(client, f"/v1/loan-applications/{application_id}/disburse", {"loan_id": loan_id})
        assert disbursed.status_code == 200 and disbursed.json()["net_disbursed"] == 990_000, disbursed.text  # 1% fee
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        loan = client.get(f"/v1/loans/{loan_id}").json()
        assert (loan["status"], loan["principal"], loan["processing_fee"]) == ("active", 1_000_000, 10_000)
        assert client.get(f"/v1/accounts/{account['account_id']}/balance").json()["balance"] == 990_000
        assert [x["loan_id"] for x in client.get(f"/v1/customers/{customer_id}/loans").json()["items"]] == [loan_id]
        assert client.get(f"/v1/customers/{uuid.uuid4()}/loans").status_code == 403  # someone else's
        drawn = client.get(f"/v1/loans/{loan_id}/schedule")
        assert drawn.status_code == 200 and [i["status"] for i in drawn.json()["instalments"]] == ["pending"] * 6, drawn.text
        assert client.get(f"/v1/loans/{loan_id}/repayments").json()["items"] == []  # nothing received yet
    _, stranger = new_user(cluster, ["customer"], customer_id=str(uuid.uuid4()))
    with cluster.client(token=login(cluster, stranger).json()["access_token"]) as client:
        for path in ("", "/schedule", "/repayments", "/foreclosure-quote"):
            assert client.get(f"/v1/loans/{loan_id}{path}").status_code == 403, path  # a customer sees only their own
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        early = post(client, f"/v1/loans/{loan_id}/pay", {"payment_id": str(uuid.uuid4()), "amount": 172_548})
        assert early.status_code == 422 and early.json()["code"] == "nothing_due", early.text  # paying ahead is a prepayment
        quote = client.get(f"/v1/loans/{loan_id}/foreclosure-quote").json()
        assert quote["outstanding_principal"] == 1_000_000 and quote["prepayment_charge"] == 20_000, quote  # 2% of it
        stale = post(client, f"/v1/loans/{loan_id}/foreclose", {"payment_id": str(uuid.uuid4()), "amount": quote["total"] + 1})
        assert stale.status_code == 422 and stale.json()["code"] == "quote_changed"
        assert post(client, f"/v1/loans/{loan_id}/write-off", {"reason": "mine"}).status_code == 403
    with cluster.client(token=login(cluster, checker).json()["access_token"]) as client:  # an officer: loans:write_off is not theirs
        refused = post(client, f"/v1/loans/{loan_id}/write-off", {"reason": "no contact"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    with cluster.client() as admin:  # the credit committee's: only a defaulted loan is written off
        early_write_off = post(admin, f"/v1/loans/{loan_id}/write-off", {"reason": "no contact"})
        assert early_write_off.status_code in (409, 422) and early_write_off.json()["code"] == "invalid_transition", early_write_off.text


def test_a_customer_adds_documents_to_their_own_application_and_officers_verify_them_and_move_the_review_on(cluster: Cluster) -> None:
    import time

    from tests.e2e.test_flows import open_account_when_eligible, post, verified_customer

    with cluster.client(timeout=10) as admin:
        customer_id = verified_customer(admin)
        account = open_account_when_eligible(admin, customer_id)
        others = {"application_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()), "product_code": "personal",
                  "linked_account_id": str(uuid.uuid4()), "purpose": "a car", "principal": 1_000_000, "currency": "INR", "months": 6,
                  "monthly_income": 8_000_000, "credit_score": 780, "employment_months": 84}  # fmt: skip
        assert post(admin, "/v1/loan-applications", others).status_code == 201  # someone else's draft
    _, customer = new_user(cluster, ["customer"], customer_id=customer_id)
    _, officer = new_user(cluster, ["officer"])
    application_id = str(uuid.uuid4())
    base = f"/v1/loan-applications/{application_id}"
    body = {**others, "application_id": application_id, "customer_id": customer_id, "linked_account_id": account["account_id"]}
    flat = {"type": "property", "description": "flat 4B", "value": 5_000_000, "valued_on": "2020-01-06", "valuer": "Acme Valuers"}
    documents = [{"document_id": str(uuid.uuid4()), "kind": kind, "name": f"{kind} scan", "sha256": "ab" * 32}
                 for kind in ("identity", "income_proof")]  # fmt: skip
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        assert post(client, "/v1/loan-applications", body).status_code == 201
        for document in documents:
            added = post(client, f"{base}/documents", document)
            assert added.status_code == 200 and added.json()["documents"][-1]["status"] == "pending", added.text
        assert [d["kind"] for d in client.get(base).json()["documents"]] == ["identity", "income_proof"]
        again = post(client, f"{base}/documents", {**documents[0], "name": "another passport"})
        assert again.status_code == 409 and again.json()["code"] == "document_exists"
        theirs = post(client, f"/v1/loan-applications/{others['application_id']}/documents",
                      {**documents[0], "document_id": str(uuid.uuid4())})  # fmt: skip
        assert theirs.status_code == 403 and theirs.json()["code"] == "not_owner"
        for bad in ({"sha256": "AB" * 32}, {"name": "pass\u001bport"}, {"name": "x" * 141}, {"actor": "officer-1"}):
            assert post(client, f"{base}/documents", {**documents[0], "document_id": str(uuid.uuid4()), **bad}).status_code == 400
        put = client.put(f"{base}/collateral", json={"collateral": [flat]}, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert put.status_code == 200 and put.json()["collateral"][0]["valuer"] == "Acme Valuers", put.text
        verify = f"{base}/documents/{documents[0]['document_id']}/verify"
        assert post(client, verify, {"decision": "verified"}).status_code == 403  # an officer's work
        deadline = time.monotonic() + 20  # the loan worker learns the account from account.opened
        while (submitted := post(client, f"{base}/submit", {})).status_code != 200:
            assert submitted.json()["code"] == "not_eligible" and time.monotonic() < deadline, submitted.text
            time.sleep(0.2)
        late = client.put(f"{base}/collateral", json={"collateral": []}, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert late.status_code == 403 and late.json()["code"] == "forbidden"  # submitted: an officer's now
    with cluster.client(token=login(cluster, officer).json()["access_token"]) as client:
        reviewed = post(client, f"{base}/underwrite", {})
        assert (reviewed.json()["status"], reviewed.json()["stage"]) == ("under_review", "documents"), reviewed.text
        early = post(client, f"{base}/stage", {"stage": "credit_check"})
        assert early.status_code == 422 and early.json()["details"]["pending"] == [d["document_id"] for d in documents]
        for document in documents:
            verified = post(client, f"{base}/documents/{document['document_id']}/verify", {"decision": "verified"})
            assert verified.status_code == 200, verified.text
        assert post(client, f"{base}/documents/{uuid.uuid4()}/verify", {"decision": "verified"}).status_code == 404
        moved = post(client, f"{base}/stage", {"stage": "credit_check"})
        assert moved.status_code == 200 and [e["stage"] for e in moved.json()["stage_history"]] == ["documents", "credit_check"]
        skipped = post(client, f"{base}/stage", {"stage": "legal"})
        assert skipped.status_code == 422 and skipped.json()["code"] == "invalid_transition"
    with cluster.client(token=login(cluster, customer).json()["access_token"]) as client:
        assert post(client, f"{base}/stage", {"stage": "valuation"}).status_code == 403
        mine = client.get(base).json()
        assert (mine["stage"], [d["status"] for d in mine["documents"]]) == ("credit_check", ["verified", "verified"])
