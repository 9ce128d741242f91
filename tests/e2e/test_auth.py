"""Nobody who does not belong gets in: tokens, roles, API keys, lockout, rate limits (real processes)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

STAFF_PASSWORD = "staff-password-long-enough"


def new_user(cluster: Cluster, roles: list[str], **extra: object) -> tuple[str, str]:
    username = f"u{uuid.uuid4().hex[:10]}"
    with cluster.client() as admin:
        created = admin.post("/v1/users", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "user_id": str(uuid.uuid4()), "username": username, "password": STAFF_PASSWORD, "roles": roles,
            "display_name": username, **extra,
        })  # fmt: skip
    assert created.status_code == 201, created.text
    return created.json()["user_id"], username


def login(cluster: Cluster, username: str, password: str = STAFF_PASSWORD,
          headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    """The password grant; `headers` name the device (`X-Device-Id`, `User-Agent`)."""
    return httpx.post(f"{cluster.base_url}/v1/auth/token", timeout=10, headers=headers,
                      data={"grant_type": "password", "username": username, "password": password})  # fmt: skip


def test_no_token_is_401_with_a_challenge(cluster: Cluster) -> None:
    response = httpx.get(f"{cluster.base_url}/v1/accounts/{uuid.uuid4()}")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["x-content-type-options"] == "nosniff"  # security headers on every answer
    assert httpx.get(f"{cluster.base_url}/health/live").status_code == 200  # probes stay open


def test_tampered_foreign_and_expired_tokens_are_401(cluster: Cluster, infra: dict[str, str]) -> None:
    import asyncio

    good = cluster.token()
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_payload = base64.urlsafe_b64encode(json.dumps({**claims, "roles": ["admin"], "sub": "mallory"}).encode())
    tampered = ".".join([header, forged_payload.decode().rstrip("="), signature])
    kid = jwt.get_unverified_header(good)["kid"]
    foreign = jwt.encode({**claims, "exp": int(time.time()) + 600}, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                         headers={"kid": kid})  # fmt: skip

    async def signing_key() -> str:
        conn = await asyncpg.connect(infra["database_url"])
        try:
            return await conn.fetchval("SELECT private_pem FROM identity.signing_key WHERE kid = $1", kid)
        finally:
            await conn.close()

    real_key = load_pem_private_key(asyncio.run(signing_key()).encode(), password=None)
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = jwt.encode({**claims, "iat": past, "exp": past + timedelta(minutes=30)}, real_key, algorithm="EdDSA",
                         headers={"kid": kid})  # fmt: skip
    assert cluster.client(token=good).get("/v1/products").status_code == 200
    for token in (tampered, foreign, expired, "not-a-jwt"):
        response = cluster.client(token=token).get("/v1/products")
        assert response.status_code == 401, (token[:20], response.text)


def test_a_role_without_the_permission_is_403(cluster: Cluster) -> None:
    _, teller = new_user(cluster, ["teller"])
    token = login(cluster, teller).json()["access_token"]
    with cluster.client(token=token) as client:
        assert client.get("/v1/products").status_code == 200  # tellers read accounts
        body = {"accounts": [{"id": str(uuid.uuid4()), "currency": "INR", "code": "suspense"}]}
        refused = client.post("/v1/ledger/accounts", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_refresh_rotates_and_a_revoked_refresh_token_is_refused(cluster: Cluster) -> None:
    _, officer = new_user(cluster, ["officer"])
    first = login(cluster, officer).json()
    second = httpx.post(f"{cluster.base_url}/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    reused = httpx.post(f"{cluster.base_url}/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 400 and reused.json()["code"] == "refresh_token_revoked"
    # Reuse revoked the whole login: the newer refresh token is dead too.
    after = httpx.post(f"{cluster.base_url}/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 400

    third = login(cluster, officer).json()
    assert httpx.post(f"{cluster.base_url}/v1/auth/logout", json={"refresh_token": third["refresh_token"]}).status_code == 200
    gone = httpx.post(f"{cluster.base_url}/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert gone.status_code == 400


def test_repeated_failures_lock_the_login(cluster: Cluster) -> None:
    _, teller = new_user(cluster, ["teller"])
    codes = [login(cluster, teller, "wrong-password-guess").json()["code"] for _ in range(5)]
    assert codes[:4] == ["invalid_credentials"] * 4
    locked = login(cluster, teller)  # even the right password, now
    assert locked.status_code == 401 and locked.json()["code"] == "locked_out"


def test_an_api_key_scoped_to_reads_cannot_create_transfers(cluster: Cluster) -> None:
    user_id, _ = new_user(cluster, ["officer"])
    with cluster.client() as admin:
        issued = admin.post("/v1/api-keys", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "key_id": str(uuid.uuid4()), "user_id": user_id, "scopes": ["ledger:read", "accounts:read"], "name": "reports",
        })  # fmt: skip
    assert issued.status_code == 201, issued.text
    secret = issued.json()["secret"]
    headers = {"X-API-Key": secret}
    assert httpx.get(f"{cluster.base_url}/v1/products", headers=headers).status_code == 200
    transfer = {"transfers": [{"id": str(uuid.uuid4()), "debit_account_id": str(uuid.uuid4()),
                               "credit_account_id": str(uuid.uuid4()), "amount": 1, "currency": "INR", "code": "fee"}]}  # fmt: skip
    refused = httpx.post(f"{cluster.base_url}/v1/ledger/transfers", json=transfer,
                         headers={**headers, "Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert refused.status_code == 403
    assert httpx.get(f"{cluster.base_url}/v1/products", headers={"X-API-Key": secret + "x"}).status_code == 401


def test_rate_limit_answers_429_then_recovers(cluster: Cluster) -> None:
    _, auditor = new_user(cluster, ["auditor"])
    token = login(cluster, auditor).json()["access_token"]
    with cluster.client(token=token) as client:
        responses = [client.get("/v1/products") for _ in range(120)]  # accounts: 100 a minute
        statuses = [r.status_code for r in responses]
        first_refusal = statuses.index(429)  # the bucket refills 1.7 a second while we ask
        assert 100 <= first_refusal < 110 and set(statuses[:first_refusal]) == {200}
        # The refusal itself says when to come back (asking again at once may already find a
        # token refilled: the loop's last requests took that long).
        limited = responses[first_refusal]
        assert int(limited.headers["retry-after"]) >= 1
        time.sleep(int(limited.headers["retry-after"]))
        assert client.get("/v1/products").status_code == 200


def test_the_asyncapi_document_is_served(cluster: Cluster) -> None:
    response = httpx.get(f"{cluster.base_url}/asyncapi")
    assert response.status_code == 200 and "ledger.create_transfers" in response.text


def test_a_customer_reaches_only_their_own_records(cluster: Cluster) -> None:
    from tests.e2e.test_flows import open_account_when_eligible, verified_customer

    with cluster.client() as staff:
        alice_customer = verified_customer(staff)
        alice_account = open_account_when_eligible(staff, alice_customer)
        bob_customer = verified_customer(staff)
        bob_account = open_account_when_eligible(staff, bob_customer)
    _, alice = new_user(cluster, ["customer"], customer_id=alice_customer)
    token = login(cluster, alice).json()["access_token"]
    with cluster.client(token=token) as client:
        assert client.get(f"/v1/customers/{alice_customer}").status_code == 200
        assert client.get(f"/v1/accounts/{alice_account['account_id']}").status_code == 200
        assert client.get(f"/v1/accounts/{alice_account['account_id']}/balance").status_code == 200
        for path in (f"/v1/customers/{bob_customer}", f"/v1/accounts/{bob_account['account_id']}",
                     f"/v1/accounts/{bob_account['account_id']}/balance", f"/v1/customers/{bob_customer}/accounts",
                     f"/v1/accounts/{bob_account['account_id']}/history"):  # fmt: skip
            refused = client.get(path)
            assert refused.status_code == 403 and refused.json()["code"] == "not_owner", (path, refused.text)
        # Customers never call the ledger directly, whatever the route would allow.
        move = {"transfers": [{"id": str(uuid.uuid4()), "debit_account_id": bob_account["account_id"],
                               "credit_account_id": alice_account["account_id"], "amount": 1, "currency": "INR",
                               "code": "internal_transfer"}]}  # fmt: skip
        assert client.post("/v1/ledger/transfers", json=move, headers={"Idempotency-Key": uuid.uuid4().hex}).status_code == 403


def test_x_actor_is_believed_only_from_the_edges_broker_user(cluster: Cluster, infra: dict[str, str]) -> None:
    """A message naming a customer in `x-actor`: believed only when the broker-checked user_id is
    the edge's (a partner cannot set another user's user_id: tests/integration/test_partners.py);
    another service of the bank is not the edge, and a message without user_id is nobody's."""
    import asyncio

    import aio_pika

    from bus.settings import broker_user, load
    from contracts import account as a
    from contracts.common import Reply

    from tests.e2e.test_flows import open_account_when_eligible, verified_customer

    with cluster.client() as staff:
        account = open_account_when_eligible(staff, verified_customer(staff))
    forged = json.dumps({"sub": "mallory", "roles": ["customer"], "customer_id": str(uuid.uuid4())})

    async def ask(process: str | None) -> Reply:
        """As `process` (its own broker user and user_id), or with no user_id at all (None)."""
        url = infra["amqp_url"] if process is None else load().process_amqp_url(process)
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            name = f"{process or 'ops'}.replies.{uuid.uuid4().hex[:12]}"
            queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
            exchange = await channel.get_exchange("cbs.commands", ensure=False)
            command = a.GetAccount(account_id=uuid.UUID(account["account_id"]))
            await exchange.publish(aio_pika.Message(
                command.model_dump_json().encode(), message_id=uuid.uuid4().hex, reply_to=queue.name,
                correlation_id="c", type=command.message_type, headers={"x-actor": forged},
                user_id=None if process is None else broker_user(process),
            ), routing_key=command.routing_key)  # fmt: skip
            for _ in range(100):  # the reply arrives within a few milliseconds; allow 10 s
                if (message := await queue.get(fail=False)) is not None:
                    break
                await asyncio.sleep(0.1)
            assert message is not None, "no reply"
            return Reply.model_validate_json(message.body)

    # Without user_id nobody asks: refused, whatever the header says ...
    anonymous = asyncio.run(ask(None))
    assert not anonymous.ok and anonymous.error is not None and anonymous.error.code == "unauthenticated"
    # ... a service of the bank is believed as itself, never as the person its header names ...
    assert asyncio.run(ask("ops")).ok
    # ... and with the edge's own user the header counts: a forged customer is refused.
    trusted = asyncio.run(ask("edge"))
    assert not trusted.ok and trusted.error is not None and trusted.error.code == "not_owner"


def test_every_refusal_is_recorded_by_audit(cluster: Cluster) -> None:
    """401 and 403 at the edge, and a worker's not_owner, each end up as an audit record."""
    from tests.e2e.test_flows import verified_customer

    missing = f"/v1/accounts/{uuid.uuid4()}"
    assert httpx.get(f"{cluster.base_url}{missing}", timeout=10).status_code == 401
    _, auditor = new_user(cluster, ["auditor"])
    with cluster.client(token=login(cluster, auditor).json()["access_token"]) as client:
        move = {"transfers": [{"id": str(uuid.uuid4()), "debit_account_id": str(uuid.uuid4()),
                               "credit_account_id": str(uuid.uuid4()), "amount": 1, "currency": "INR",
                               "code": "internal_transfer"}]}  # fmt: skip
        denied = client.post("/v1/ledger/transfers", json=move, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert denied.status_code == 403
    with cluster.client() as staff:
        bob = verified_customer(staff)
    _, alice = new_user(cluster, ["customer"], customer_id=str(uuid.uuid4()))
    with cluster.client(token=login(cluster, alice).json()["access_token"]) as client:
        assert client.get(f"/v1/customers/{bob}").status_code == 403

    def audited(prefix: str, match: Any) -> bool:
        with cluster.client() as admin:
            found = admin.get("/v1/audit/records", params={"routing_key_prefix": prefix, "limit": 100})
            assert found.status_code == 200, found.text
            return any(match(r.get("payload") or {}) for r in found.json()["items"])

    deadline = time.monotonic() + 20
    checks = {
        "edge.auth_failed": lambda p: p.get("path") == missing,
        "edge.access_denied": lambda p: p.get("path") == "/v1/ledger/transfers" and p.get("permission") == "transfers:create",
        "customer.access_denied": lambda p: p.get("code") == "not_owner" and p.get("command") == "customer.get_customer",
    }
    while checks and time.monotonic() < deadline:
        checks = {k: m for k, m in checks.items() if not audited(k, m)}
        time.sleep(0.3)
    assert not checks, f"not recorded: {sorted(checks)}"
