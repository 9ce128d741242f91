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
