"""Audit's answers end to end: the edge and every worker as real processes, over HTTP. A payment
and a refused one placed through the edge; the payer's trail with both and their outcomes (the
edge's authenticated actor on them); the large-value and structuring reports as JSON and CSV,
with an audit worker started with a low threshold."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.test_flows import post, verified_customer
from tests.e2e.test_payments import deposit, internal, payable_account, wait_for

pytestmark = pytest.mark.e2e

THRESHOLD = 1_000_000  # 10,000.00, for the audit replica this test starts


def _trail(client: Any, account_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit/records", params={"account_id": account_id, "limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _cash_in(client: Any, account_id: str, amount: int) -> str:
    body = {"payment_id": str(uuid.uuid4()), "kind": "cash_deposit", "channel": "branch",
            "payee": {"account_id": account_id}, "amount": amount, "currency": "INR"}  # fmt: skip
    response = post(client, "/v1/payments", body)
    assert response.status_code == 201 and response.json()["status"] == "completed", response.text
    return body["payment_id"]


def test_a_payments_trail_outcomes_and_reports_through_the_edge(cluster: Cluster) -> None:
    # This test's audit worker: the same program, with the large-value threshold it plants around.
    cluster.stop("audit")
    cluster.start("audit-reports", worker="audit", env={"CBS_AUDIT_LARGE_VALUE_MINOR": str(THRESHOLD)})
    try:
        with cluster.client(timeout=20) as staff:
            payer = payable_account(staff, verified_customer(staff))
            payee = payable_account(staff, verified_customer(staff))
            structured = [_cash_in(staff, payer, 950_000) for _ in range(3)]  # three just below: structuring
            order = internal(payer, payee, 1_500_000)  # large
            paid = post(staff, "/v1/payments", order)
            assert paid.status_code == 201 and paid.json()["status"] == "completed", paid.text
            too_much = internal(payer, payee, 2_000_000)  # more than is left: insufficient funds
            refused = post(staff, "/v1/payments", too_much)
            assert refused.status_code == 422, refused.text
            mine = {*structured, order["payment_id"], too_much["payment_id"]}

            def all_ended() -> list[dict[str, Any]] | None:
                records = _trail(staff, payer)
                orders = [r for r in records if r["routing_key"] == "payment.initiate_payment"
                          and r["payload"]["payment_id"] in mine and r["outcome"] is not None]  # fmt: skip
                return records if len(orders) == len(mine) else None

            records = wait_for(all_ended, timeout_s=30, what="the payer's orders and their outcomes in audit")
            orders = {r["payload"]["payment_id"]: r for r in records
                      if r["routing_key"] == "payment.initiate_payment" and r["payload"]["payment_id"] in mine}  # fmt: skip
            assert orders[too_much["payment_id"]]["outcome"]["code"] == refused.json()["code"]
            assert orders[too_much["payment_id"]]["outcome"]["result"] == "refused"
            assert {orders[x]["outcome"]["result"] for x in (*structured, order["payment_id"])} == {"success"}
            # Who asked: the person the edge authenticated (the first admin), not the edge's broker user.
            assert {r["actor"] for r in orders.values()} == {orders[order["payment_id"]]["actor"]}
            assert not orders[order["payment_id"]]["actor"].startswith(("cbs", "edge"))
            # The ledger transfer the payment asked for is in the payer's trail, with its outcome.
            assert any(r["routing_key"] == "ledger.create_transfers" and r["outcome"]["result"] == "success"
                       and any(t["debit_account_id"] == payer and t["amount"] == 1_500_000
                               for t in r["payload"]["transfers"]) for r in records)  # fmt: skip

            day = staff.get("/v1/business-day").json()["business_date"]

            def large() -> list[dict[str, Any]] | None:
                response = staff.get("/v1/audit/reports/large-value", params={"business_date": day})
                assert response.status_code == 200, response.text
                return [r for r in response.json()["rows"] if payer in (r["payer_account_id"], r["payee_account_id"])] or None

            rows = wait_for(large, timeout_s=30, what="the large payment in the report")
            assert [(r["payment_id"], r["amount"]) for r in rows] == [(order["payment_id"], 1_500_000)]
            as_csv = staff.get("/v1/audit/reports/structuring", params={"business_date": day},
                               headers={"Accept": "text/csv"})  # fmt: skip
            assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
            cases = [r for r in csv.DictReader(io.StringIO(as_csv.text)) if r["customer_id"] == rows[0]["customer_id"]]
            assert [(c["count"], c["total"], sorted(c["payment_ids"].split())) for c in cases] == [
                ("3", "2850000", sorted(structured))]  # fmt: skip
            # A report without its date is refused as problem+json.
            bad = staff.get("/v1/audit/reports/large-value", params={"format": "csv"})
            assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
            assert bad.json()["code"] == "report_needs"
    finally:
        cluster.stop("audit-reports")
        cluster.start("audit")
        cluster.wait_ready()
