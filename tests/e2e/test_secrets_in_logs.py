"""Passwords, tokens and API keys never show up in the logs of a full run, nor in any worker's tables.

This file runs last among the end-to-end tests (pytest takes them alphabetically; the cluster and
its logs in .test-logs/ live for the whole package), so the logs it reads are those of the whole
run: the flows, the crashes, the fuzz, and the logins and keys made here.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from bus.settings import WORKERS
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, LOGS, Cluster

pytestmark = pytest.mark.e2e

WRONG_PASSWORD = "wrong-password-9f1c2b7e-typed-by-mistake"


def _token(cluster: Cluster, **form: str) -> httpx.Response:
    return httpx.post(f"{cluster.base_url}/v1/auth/token", data=form, timeout=10)


def _secrets_of_a_session(cluster: Cluster) -> dict[str, str]:
    """Logs in, refreshes, makes and uses an API key, fails a login, logs out: every secret involved."""
    found: dict[str, str] = {"admin password": ADMIN_PASSWORD, "wrong password": WRONG_PASSWORD}

    first = _token(cluster, grant_type="password", username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
    assert first.status_code == 200, first.text
    found["access token"], found["refresh token"] = first.json()["access_token"], first.json()["refresh_token"]
    refreshed = httpx.post(f"{cluster.base_url}/v1/auth/refresh", json={"refresh_token": found["refresh token"]})
    assert refreshed.status_code == 200, refreshed.text
    found["refreshed access token"] = refreshed.json()["access_token"]
    found["refreshed refresh token"] = refreshed.json()["refresh_token"]

    password = f"pw-{uuid.uuid4().hex}"
    username = f"s{uuid.uuid4().hex[:10]}"
    found["new user's password"] = password
    with cluster.client(token=found["refreshed access token"]) as admin:  # the refreshed token works
        created = admin.post("/v1/users", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "user_id": str(uuid.uuid4()), "username": username, "password": password, "roles": ["officer"],
            "display_name": username,
        })  # fmt: skip
        assert created.status_code == 201, created.text
        issued = admin.post("/v1/api-keys", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
            "key_id": str(uuid.uuid4()), "user_id": created.json()["user_id"], "scopes": ["accounts:read"],
            "name": "secrets-test",
        })  # fmt: skip
        assert issued.status_code == 201, issued.text
    secret = issued.json()["secret"]
    found["API key"], found["API key's random part"] = secret, secret.split("_", 2)[2]

    with cluster.client(token=found["access token"]) as client:
        assert client.get("/v1/products").status_code == 200
    assert httpx.get(f"{cluster.base_url}/v1/products", headers={"X-API-Key": secret}).status_code == 200
    client_grant = _token(cluster, grant_type="client_credentials", client_id=username, client_secret=secret)
    assert client_grant.status_code == 200, client_grant.text
    found["client credentials token"] = client_grant.json()["access_token"]
    with cluster.client(token=found["client credentials token"]) as client:
        assert client.get("/v1/products").status_code == 200

    failed = _token(cluster, grant_type="password", username=username, password=WRONG_PASSWORD)
    assert failed.status_code == 400 and failed.json()["code"] == "invalid_credentials", failed.text
    logout = httpx.post(f"{cluster.base_url}/v1/auth/logout", json={"refresh_token": found["refreshed refresh token"]})
    assert logout.status_code == 200 and logout.json()["revoked"] is True, logout.text

    for name in [n for n in found if n.endswith("token")]:  # a token cut short still holds its signature
        found[f"{name}'s signature"] = found[name].rsplit(".", 1)[-1]
    return found


async def _tables_holding(database_url: str, secrets: dict[str, str]) -> list[str]:
    """`schema.table: secret name` for every row of every worker table that holds a secret in clear
    (inbox and outbox included: replies, events and their headers)."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'", list(WORKERS),
        )  # fmt: skip
        names = {f"{t['table_schema']}.{t['table_name']}" for t in tables}
        assert {f"{w}.{table}" for w in WORKERS for table in ("inbox", "outbox")} <= names, names
        hits = []
        for t in tables:
            table = f'"{t["table_schema"]}"."{t["table_name"]}"'
            found = await conn.fetch(
                f"SELECT s.name FROM unnest($1::text[], $2::text[]) AS s(name, secret)"
                f" WHERE EXISTS (SELECT 1 FROM {table} t WHERE strpos(t::text, s.secret) > 0)",
                list(secrets), list(secrets.values()),
            )  # fmt: skip
            hits += [f"{t['table_schema']}.{t['table_name']}: {row['name']}" for row in found]
        return hits
    finally:
        await conn.close()


def test_no_secret_in_logs_events_or_tables(cluster: Cluster, infra: dict[str, str]) -> None:
    secrets = _secrets_of_a_session(cluster)
    assert all(len(value) >= 12 for value in secrets.values()), "too short to grep for without false alarms"

    logs = sorted(LOGS.glob("*.log"))
    assert {p.name for p in logs} >= {"edge.log", *(f"{w}.log" for w in WORKERS)}, logs
    leaks = [f"{path.name}: {name}" for path in logs for name, value in secrets.items() if value in _text(path)]
    assert not leaks, leaks

    # The events these logins made are there (so the search below looks where they would be)...
    async def events() -> list[str]:
        conn = await asyncpg.connect(infra["database_url"])
        try:
            rows = await conn.fetch("SELECT routing_key FROM identity.outbox")
            return [r["routing_key"] for r in rows]
        finally:
            await conn.close()

    routing_keys = set(asyncio.run(events()))
    assert {"identity.login_succeeded", "identity.login_failed", "identity.api_key_created"} <= routing_keys
    # ...and no table of any worker holds a secret: identity's outbox (events) and inbox (stored
    # replies) included, and its own tables keep hashes only.
    assert not asyncio.run(_tables_holding(infra["database_url"], secrets))


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")
