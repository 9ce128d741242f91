"""Revoked access takes effect at the edge within seconds, not when the token expires (real processes).

Disabling a user, revoking an API key and logging out each end the access already handed out:
the edge learns it from `identity.access_revoked`, and an edge started later reads it back from
identity before it reports ready.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx
import pytest

from contracts.identity import REVOCATION_MARGIN_S
from tests.e2e.conftest import LOGS, ROOT, Cluster, _free_port
from tests.e2e.test_auth import login, new_user

pytestmark = pytest.mark.e2e

WITHIN_S = 5.0  # "within seconds": how long a revocation may take to reach the edge
PROBE = "/v1/products"  # any authenticated read every role here may make


def status(base_url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{base_url}{PROBE}", headers=headers, timeout=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused_within(base_url: str, headers: dict[str, str], seconds: float = WITHIN_S) -> httpx.Response:
    """Poll until the edge answers 401; the refusal, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        response = status(base_url, headers)
        if response.status_code == 401:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "unauthenticated"
            return response
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, f"still accepted {seconds} s after the revocation"
        time.sleep(0.1)


def admin_post(cluster: Cluster, path: str) -> httpx.Response:
    with cluster.client() as admin:
        return admin.post(path, headers={"Idempotency-Key": uuid.uuid4().hex})


def test_a_disabled_users_token_is_refused_within_seconds_and_a_re_enabled_user_logs_in_again(cluster: Cluster) -> None:
    user_id, teller = new_user(cluster, ["teller"])
    _, colleague = new_user(cluster, ["teller"])
    token = login(cluster, teller).json()["access_token"]
    colleague_token = login(cluster, colleague).json()["access_token"]
    assert status(cluster.base_url, bearer(token)).status_code == 200

    disabled = admin_post(cluster, f"/v1/users/{user_id}/disable")
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    refusal = refused_within(cluster.base_url, bearer(token))
    assert "revoked" in refusal.json()["detail"]
    assert status(cluster.base_url, bearer(colleague_token)).status_code == 200  # only that user

    # A token issued within the margin of the disabling would be refused too (REVOCATION_MARGIN_S):
    # a real re-enabling comes later than that.
    time.sleep(REVOCATION_MARGIN_S + 1)
    enabled = admin_post(cluster, f"/v1/users/{user_id}/enable")
    assert enabled.status_code == 200 and enabled.json()["status"] == "active"
    fresh = login(cluster, teller)
    assert fresh.status_code == 200, fresh.text
    assert status(cluster.base_url, bearer(fresh.json()["access_token"])).status_code == 200
    assert status(cluster.base_url, bearer(token)).status_code == 401  # the old token stays refused


def test_a_revoked_api_key_and_its_client_credentials_token_are_refused_within_seconds(cluster: Cluster) -> None:
    user_id, officer = new_user(cluster, ["officer"])
    key_id = str(uuid.uuid4())
    with cluster.client() as admin:
        issued = admin.post("/v1/api-keys", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "key_id": key_id, "user_id": user_id, "scopes": ["accounts:read"], "name": "reports",
        })  # fmt: skip
    assert issued.status_code == 201, issued.text
    key = {"X-API-Key": issued.json()["secret"]}
    client_token = httpx.post(f"{cluster.base_url}/v1/auth/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": officer, "client_secret": issued.json()["secret"],
    })  # fmt: skip
    assert client_token.status_code == 200, client_token.text
    officer_token = login(cluster, officer).json()["access_token"]
    assert status(cluster.base_url, key).status_code == 200  # the edge caches the key's grant now
    assert status(cluster.base_url, bearer(client_token.json()["access_token"])).status_code == 200

    assert admin_post(cluster, f"/v1/api-keys/{key_id}/revoke").status_code == 200
    refused_within(cluster.base_url, key)
    refused_within(cluster.base_url, bearer(client_token.json()["access_token"]))
    assert status(cluster.base_url, bearer(officer_token)).status_code == 200  # the user's own login is untouched


def test_logout_ends_that_logins_access_token_within_seconds(cluster: Cluster) -> None:
    _, auditor = new_user(cluster, ["auditor"])
    leaving, staying = login(cluster, auditor).json(), login(cluster, auditor).json()
    assert status(cluster.base_url, bearer(leaving["access_token"])).status_code == 200
    out = httpx.post(f"{cluster.base_url}/v1/auth/logout", json={"refresh_token": leaving["refresh_token"]}, timeout=10)
    assert out.status_code == 200 and out.json()["revoked"] is True
    refused_within(cluster.base_url, bearer(leaving["access_token"]))
    assert status(cluster.base_url, bearer(staying["access_token"])).status_code == 200  # the other login stays


def test_an_edge_started_after_a_revocation_refuses_the_revoked_token(cluster: Cluster) -> None:
    user_id, teller = new_user(cluster, ["teller"])
    _, colleague = new_user(cluster, ["teller"])
    token = login(cluster, teller).json()["access_token"]
    colleague_token = login(cluster, colleague).json()["access_token"]
    assert admin_post(cluster, f"/v1/users/{user_id}/disable").status_code == 200
    refused_within(cluster.base_url, bearer(token))

    base_url = start_edge(cluster, "edge-late")
    try:
        # Ready means it has read identity's recent revocations: no window where the token passes.
        assert status(base_url, bearer(token)).status_code == 401
        assert status(base_url, bearer(colleague_token)).status_code == 200
    finally:
        cluster.stop("edge-late")


def start_edge(cluster: Cluster, name: str, timeout_s: float = 60) -> str:
    """Another edge process on its own port (Cluster.start runs only the one edge); its base URL
    once it reports ready. Registered with the cluster, so its teardown stops it too."""
    port = _free_port()
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115  (the process writes it until stopped)
    env = {**cluster.env, "CBS_EDGE_PORT": str(port), "CBS_EDGE_INSTANCE": f"{name.replace('-', '')}{uuid.uuid4().hex[:8]}"}
    cluster.processes[name] = subprocess.Popen([sys.executable, "-m", "ops.cli", "edge"], env=env, cwd=ROOT, stdout=log,
                                               stderr=subprocess.STDOUT)  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        assert cluster.processes[name].poll() is None, f"{name} exited; see {LOGS / (name + '.log')}"
        try:
            response = httpx.get(f"{base_url}/health/ready", timeout=3)
            last = response.json()
            if response.status_code == 200:
                assert last["revocations"] == "learned"
                return base_url
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{name} not ready in {timeout_s} s: {last}")
