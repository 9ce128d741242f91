"""The identity worker through its messages, against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from contracts import identity as i
from tests.integration.conftest import BusClient, eventually

PASSWORD = "correct horse battery staple"


async def new_user(bus: BusClient, roles: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    username = f"user-{uuid.uuid4().hex[:12]}"
    command = i.CreateUser(user_id=uuid.uuid4(), username=username, password=PASSWORD, roles=roles or ["teller"],
                           display_name="Test User", **extra)  # fmt: skip
    return await bus.ok(command)


def password_grant(username: str, password: str = PASSWORD, **extra: Any) -> i.IssueToken:
    return i.IssueToken(grant_type="password", username=username, password=password, **extra)


def verify_with_jwks(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What the edge does: pick the key by the token's kid, verify locally."""
    keys = {k["kid"]: jwt.PyJWK.from_dict(k) for k in jwks["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, keys[kid], algorithms=["EdDSA"], audience="cbs", issuer="cbs")


async def events_about(admin_db, routing_key: str, field: str, value: str) -> list[dict[str, Any]]:
    rows = await admin_db.fetch(
        "SELECT payload FROM identity.outbox WHERE routing_key = $1 AND payload->>$2 = $3 ORDER BY id",
        routing_key, field, value,
    )  # fmt: skip
    return [json.loads(r["payload"]) for r in rows]  # the test pool has no jsonb codec: text


async def secret_stored_anywhere(admin_db, secret: str) -> bool:
    return bool(await admin_db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM identity.outbox WHERE strpos(payload::text, $1) > 0)"
        " OR EXISTS (SELECT 1 FROM identity.inbox WHERE strpos(coalesce(reply::text, ''), $1) > 0)"
        " OR EXISTS (SELECT 1 FROM identity.users WHERE strpos(password_hash, $1) > 0)",
        secret,
    ))  # fmt: skip


async def test_the_first_admin_exists_and_can_log_in(bus: BusClient) -> None:
    admin = os.environ.get("CBS_ADMIN_USERNAME", "admin")
    password = os.environ.get("CBS_ADMIN_PASSWORD", "cbs-dev-admin-password")
    pair = await bus.ok(password_grant(admin, password))
    claims = verify_with_jwks(pair["access_token"], await bus.ok(i.GetJwks()))
    assert claims["roles"] == ["admin"] and "users:admin" in claims["permissions"]
    listed = await bus.ok(i.ListUsers(role="admin"))
    assert admin in [u["username"] for u in listed["items"]]


async def test_create_user_and_log_in_with_the_password_grant(bus: BusClient, admin_db) -> None:
    customer_id = uuid.uuid4()
    user = await new_user(bus, ["customer"], customer_id=customer_id)
    assert user["status"] == "active" and user["customer_id"] == str(customer_id)
    assert user["permissions"] == sorted(i.ROLE_PERMISSIONS["customer"])
    assert (await bus.ok(i.GetUser(user_id=uuid.UUID(user["user_id"]))))["username"] == user["username"]

    pair = await bus.ok(password_grant(user["username"].upper()))  # usernames ignore case
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 1800 and pair["refresh_token"]
    assert pair["refresh_expires_in"] == 7 * 24 * 3600
    claims = verify_with_jwks(pair["access_token"], await bus.ok(i.GetJwks()))
    assert claims["sub"] == user["user_id"] and claims["customer_id"] == str(customer_id)
    assert claims["permissions"] == sorted(i.ROLE_PERMISSIONS["customer"]) == sorted(pair["scope"].split())
    assert await events_about(admin_db, "identity.login_succeeded", "user_id", user["user_id"])
    assert await events_about(admin_db, "identity.user_created", "user_id", user["user_id"])
    assert not await secret_stored_anywhere(admin_db, PASSWORD)
    assert not await secret_stored_anywhere(admin_db, pair["refresh_token"])

    narrowed = await bus.ok(password_grant(user["username"], scope="accounts:read"))
    assert narrowed["scope"] == "accounts:read"
    wider = await bus.send(password_grant(user["username"], scope="accounts:read ledger:admin"))
    assert wider.error is not None and wider.error.code == "forbidden_scope"


async def test_create_user_refusals_and_retry(bus: BusClient) -> None:
    user = await new_user(bus)
    retry = i.CreateUser(user_id=uuid.UUID(user["user_id"]), username=user["username"], password=PASSWORD,
                         roles=["teller"], display_name="Test User")  # fmt: skip
    assert (await bus.ok(retry))["created_at"] == user["created_at"]
    taken = await bus.send(i.CreateUser(user_id=uuid.uuid4(), username=user["username"], password=PASSWORD,
                                        roles=["teller"], display_name="Twin"))  # fmt: skip
    assert taken.error is not None and taken.error.code == "user_exists"
    weak = await bus.send(i.CreateUser(user_id=uuid.uuid4(), username=f"u{uuid.uuid4().hex[:8]}",
                                       password="short-pw", roles=["teller"], display_name="Weak"))  # fmt: skip
    assert weak.error is not None and weak.error.code == "weak_password"
    unknown = await bus.send(i.GetUser(user_id=uuid.uuid4()))
    assert unknown.error is not None and unknown.error.code == "user_not_found"


async def test_wrong_password_is_refused_and_recorded_without_the_password(bus: BusClient, admin_db) -> None:
    user = await new_user(bus)
    wrong = "not the password at all 123"
    reply = await bus.send(password_grant(user["username"], wrong))
    assert reply.error is not None and reply.error.code == "invalid_credentials"
    assert wrong not in reply.model_dump_json()
    failed = await events_about(admin_db, "identity.login_failed", "user_id", user["user_id"])
    assert [(e["username"], e["reason"]) for e in failed] == [(user["username"], "invalid_credentials")]
    nobody = await bus.send(password_grant(f"nobody-{uuid.uuid4().hex[:8]}", wrong))
    assert nobody.error is not None and nobody.error.code == "invalid_credentials"  # the same answer
    assert not await secret_stored_anywhere(admin_db, wrong)
    assert not await secret_stored_anywhere(admin_db, PASSWORD)


async def test_five_failures_lock_the_login_for_fifteen_minutes(bus: BusClient, admin_db) -> None:
    user = await new_user(bus)
    codes = [(await bus.send(password_grant(user["username"], "wrong password number 1"))).error.code for _ in range(5)]
    assert codes == ["invalid_credentials"] * 4 + ["locked_out"]
    locked = await events_about(admin_db, "identity.locked_out", "user_id", user["user_id"])
    assert len(locked) == 1 and locked[0]["failed_attempts"] == 5
    right_password = await bus.send(password_grant(user["username"]))
    assert right_password.error is not None and right_password.error.code == "locked_out"
    view = await bus.ok(i.GetUser(user_id=uuid.UUID(user["user_id"])))
    assert view["locked_until"] == locked[0]["locked_until"]

    await admin_db.execute("UPDATE identity.users SET locked_until = now() - interval '1 second' WHERE user_id = $1",
                           uuid.UUID(user["user_id"]))  # fmt: skip  # fifteen minutes pass
    assert (await bus.ok(password_grant(user["username"])))["access_token"]


async def test_refresh_rotates_and_reuse_revokes_the_family(bus: BusClient, admin_db) -> None:
    user = await new_user(bus)
    first = await bus.ok(password_grant(user["username"]))
    refresh = lambda token: i.IssueToken(grant_type="refresh_token", refresh_token=token)  # noqa: E731
    second = await bus.ok(refresh(first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert verify_with_jwks(second["access_token"], await bus.ok(i.GetJwks()))["sub"] == user["user_id"]

    reused = await bus.send(refresh(first["refresh_token"]))
    assert reused.error is not None and reused.error.code == "refresh_token_revoked"
    assert await events_about(admin_db, "identity.refresh_token_reused", "user_id", user["user_id"])
    # The thief's copy and the rightful holder's newer token are both dead now.
    after = await bus.send(refresh(second["refresh_token"]))
    assert after.error is not None and after.error.code == "refresh_token_revoked"
    unknown = await bus.send(refresh("x" * 43))
    assert unknown.error is not None and unknown.error.code == "invalid_refresh_token"


async def test_logout_revokes_the_refresh_token(bus: BusClient) -> None:
    user = await new_user(bus)
    pair = await bus.ok(password_grant(user["username"]))
    assert (await bus.ok(i.RevokeRefreshToken(refresh_token=pair["refresh_token"])))["revoked"] is True
    assert (await bus.ok(i.RevokeRefreshToken(refresh_token=pair["refresh_token"])))["revoked"] is False
    refused = await bus.send(i.IssueToken(grant_type="refresh_token", refresh_token=pair["refresh_token"]))
    assert refused.error is not None and refused.error.code == "refresh_token_revoked"


async def test_api_keys_client_credentials_verify_and_revoke(bus: BusClient, admin_db) -> None:
    partner = await new_user(bus, ["partner"])
    user_id = uuid.UUID(partner["user_id"])
    key_id = uuid.uuid4()
    too_wide = await bus.send(i.CreateApiKey(key_id=uuid.uuid4(), user_id=user_id, scopes=["ledger:admin"], name="x"))
    assert too_wide.error is not None and too_wide.error.code == "forbidden_scope"
    issued = await bus.ok(i.CreateApiKey(key_id=key_id, user_id=user_id, scopes=["ledger:read", "accounts:read"],
                                         name="reconciliation"))  # fmt: skip
    secret = issued["secret"]
    assert secret.startswith(f"cbs_{key_id.hex}_") and issued["scopes"] == ["accounts:read", "ledger:read"]
    again = await bus.send(i.CreateApiKey(key_id=key_id, user_id=user_id, scopes=["ledger:read"], name="again"))
    assert again.error is not None and again.error.code == "api_key_exists"

    principal = await bus.ok(i.VerifyApiKey(secret=secret))
    assert principal == {"user_id": str(user_id), "username": partner["username"], "key_id": str(key_id),
                         "roles": ["partner"], "permissions": ["accounts:read", "ledger:read"], "customer_id": None}
    grant = i.IssueToken(grant_type="client_credentials", client_id=partner["username"], client_secret=secret)
    pair = await bus.ok(grant)
    assert pair["refresh_token"] is None and pair["scope"] == "accounts:read ledger:read"
    claims = verify_with_jwks(pair["access_token"], await bus.ok(i.GetJwks()))
    assert claims["sub"] == str(user_id) and claims["permissions"] == ["accounts:read", "ledger:read"]
    other_client = await bus.send(i.IssueToken(grant_type="client_credentials", client_id="someone-else",
                                               client_secret=secret))  # fmt: skip
    assert other_client.error is not None and other_client.error.code == "invalid_api_key"

    revoked = await bus.ok(i.RevokeApiKey(key_id=key_id))
    assert revoked["revoked_at"] is not None and "secret" not in revoked
    for command in (i.VerifyApiKey(secret=secret), grant):
        reply = await bus.send(command)
        assert reply.error is not None and reply.error.code == "invalid_api_key"
    missing = await bus.send(i.RevokeApiKey(key_id=uuid.uuid4()))
    assert missing.error is not None and missing.error.code == "api_key_not_found"
    created = await events_about(admin_db, "identity.api_key_created", "key_id", str(key_id))
    assert len(created) == 1 and len(await events_about(admin_db, "identity.api_key_revoked", "key_id", str(key_id))) == 1
    assert not await secret_stored_anywhere(admin_db, secret)
    assert await admin_db.fetchval("SELECT secret_hash FROM identity.api_key WHERE key_id = $1", key_id) != secret


async def test_rotation_keeps_old_tokens_verifiable(bus: BusClient, admin_db) -> None:
    user = await new_user(bus)
    before = await bus.ok(password_grant(user["username"]))
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    rotated = await bus.ok(i.RotateSigningKey(reason="test"))
    assert rotated["previous_kid"] == old_kid and rotated["kid"] != old_kid
    jwks = await bus.ok(i.GetJwks())
    assert {old_kid, rotated["kid"]} <= {k["kid"] for k in jwks["keys"]}
    assert verify_with_jwks(before["access_token"], jwks)["sub"] == user["user_id"]
    after = await bus.ok(password_grant(user["username"]))
    assert jwt.get_unverified_header(after["access_token"])["kid"] == rotated["kid"]
    assert await events_about(admin_db, "identity.key_rotated", "kid", rotated["kid"])
    # The retired key's private half is gone: it can never sign again.
    assert await admin_db.fetchval("SELECT private_pem FROM identity.signing_key WHERE kid = $1", old_kid) is None


async def test_disabled_user_cannot_log_in_or_refresh(bus: BusClient, admin_db) -> None:
    user = await new_user(bus)
    user_id = uuid.UUID(user["user_id"])
    pair = await bus.ok(password_grant(user["username"]))
    disabled = await bus.ok(i.DisableUser(user_id=user_id, actor="admin", reason="left the bank"))
    assert disabled["status"] == "disabled"
    login = await bus.send(password_grant(user["username"]))
    assert login.error is not None and login.error.code == "user_disabled"
    refreshed = await bus.send(i.IssueToken(grant_type="refresh_token", refresh_token=pair["refresh_token"]))
    assert refreshed.error is not None and refreshed.error.code in ("refresh_token_revoked", "user_disabled")

    async def published() -> bool:
        return bool(await admin_db.fetchval(
            "SELECT published_at IS NOT NULL FROM identity.outbox WHERE routing_key = 'identity.user_disabled'"
            " AND payload->>'user_id' = $1", str(user_id),
        ))  # fmt: skip

    await eventually(published)


async def test_list_users_pages_by_username(bus: BusClient) -> None:
    for _ in range(3):
        await new_user(bus, ["auditor"])
    first = await bus.ok(i.ListUsers(role="auditor", limit=2))
    second = await bus.ok(i.ListUsers(role="auditor", limit=2, cursor=first["next_cursor"]))
    names = [u["username"] for u in first["items"] + second["items"]]
    assert len(names) >= 3 and names == sorted(names) and len(set(names)) == len(names)
    assert all(u["roles"] == ["auditor"] for u in first["items"] + second["items"])


async def test_what_ends_access_is_published_and_listed_for_the_edge(bus: BusClient, admin_db) -> None:
    """A disable, a logout, a reused refresh token and a revoked API key each say `access_revoked`,
    naming what a verifier must refuse (the tokens carry `sid` / `api_key_id` to match)."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    user = await new_user(bus)
    user_id = uuid.UUID(user["user_id"])
    jwks = await bus.ok(i.GetJwks())
    login = await bus.ok(password_grant(user["username"]))
    sid = verify_with_jwks(login["access_token"], jwks)["sid"]
    assert (await bus.ok(i.RevokeRefreshToken(refresh_token=login["refresh_token"])))["revoked"]
    assert (await bus.ok(i.RevokeRefreshToken(refresh_token=login["refresh_token"])))["revoked"] is False  # no second

    stolen = await bus.ok(password_grant(user["username"]))
    reuse_sid = verify_with_jwks(stolen["access_token"], jwks)["sid"]
    assert reuse_sid != sid
    await bus.ok(i.IssueToken(grant_type="refresh_token", refresh_token=stolen["refresh_token"]))
    await bus.send(i.IssueToken(grant_type="refresh_token", refresh_token=stolen["refresh_token"]))  # reuse

    key_id = uuid.uuid4()
    issued = await bus.ok(i.CreateApiKey(key_id=key_id, user_id=user_id, scopes=["ledger:read"], name="r"))
    client = await bus.ok(i.IssueToken(grant_type="client_credentials", client_id=user["username"],
                                       client_secret=issued["secret"]))  # fmt: skip
    client_claims = verify_with_jwks(client["access_token"], jwks)
    assert client_claims["api_key_id"] == str(key_id) and "sid" not in client_claims
    await bus.ok(i.RevokeApiKey(key_id=key_id))
    await bus.ok(i.DisableUser(user_id=user_id, actor="admin", reason="left the bank"))
    await bus.ok(i.DisableUser(user_id=user_id, actor="admin", reason="again"))  # already disabled: no second

    published = await events_about(admin_db, "identity.access_revoked", "user_id", str(user_id))
    got = [(e["scope"], e["reason"], e["session_id"], e["key_id"]) for e in published]
    assert got == [("session", "logout", sid, None), ("session", "refresh_token_reused", reuse_sid, None),
                   ("api_key", "api_key_revoked", None, str(key_id)), ("user", "user_disabled", None, None)]  # fmt: skip

    # Read back in pages, oldest first, as an edge starting now would.
    listed, cursor = [], None
    while True:
        page = await bus.ok(i.ListRevocations(after=since, cursor=cursor, limit=2))
        listed += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    mine = [r for r in listed if r["user_id"] == str(user_id)]
    assert [r["revocation_id"] for r in mine] == [e["revocation_id"] for e in published]
    times = [r["revoked_at"] for r in listed]
    assert times == sorted(times)
    bad = await bus.send(i.ListRevocations(cursor="not-a-cursor"))
    assert bad.error is not None and bad.error.code == "invalid_message"

    # Re-enabled: new logins work; nothing is un-revoked (old tokens stay refused at the edge).
    enabled = await bus.ok(i.EnableUser(user_id=user_id, actor="admin", reason="came back"))
    assert enabled["status"] == "active" and enabled["disabled_at"] is None
    assert (await bus.ok(password_grant(user["username"])))["access_token"]
    assert await events_about(admin_db, "identity.user_enabled", "user_id", str(user_id))
    assert len(await events_about(admin_db, "identity.access_revoked", "user_id", str(user_id))) == 4


# --- the devices a login signs in from (issue 13: new-device sign-in alerts) ---------------------


def device(name: str, address: str = "203.0.113.7") -> dict[str, str]:
    """What the edge sends of a device: its identifier's hash, a label, the client's address."""
    return {"device_fingerprint": hashlib.sha256(name.encode()).hexdigest(), "device_label": f"{name}/1.0",
            "client_address": address}  # fmt: skip


async def known_devices(admin_db, user_id: str) -> list[Any]:
    return list(await admin_db.fetch("SELECT slot, fingerprint, label, last_address, first_seen, last_seen "
                                     "FROM identity.known_device WHERE user_id = $1 ORDER BY slot", uuid.UUID(user_id)))  # fmt: skip


async def test_a_new_device_is_told_once_and_a_known_one_or_the_first_login_never(
    bus: BusClient, edge_bus: BusClient, admin_db
) -> None:
    user = await new_user(bus, ["customer"], customer_id=uuid.uuid4())
    told = lambda: events_about(admin_db, "identity.new_device_login", "user_id", user["user_id"])  # noqa: E731
    await edge_bus.ok(password_grant(user["username"], **device("phone")))  # the login's first: nothing to tell
    await edge_bus.ok(password_grant(user["username"], **device("phone", "198.51.100.1")))  # known, another address
    assert await told() == []
    (phone,) = await known_devices(admin_db, user["user_id"])
    assert phone["last_address"] == "198.51.100.1" and phone["last_seen"] > phone["first_seen"]
    assert phone["fingerprint"] == device("phone")["device_fingerprint"]

    wrong = await edge_bus.send(password_grant(user["username"], "not the password at all", **device("stranger")))
    assert wrong.error is not None and wrong.error.code == "invalid_credentials"
    wider = await edge_bus.send(password_grant(user["username"], scope="ledger:admin", **device("stranger")))
    assert wider.error is not None and wider.error.code == "forbidden_scope"
    assert await told() == [] and len(await known_devices(admin_db, user["user_id"])) == 1, "no sign-in, no device"

    await edge_bus.ok(password_grant(user["username"], **device("laptop")))
    await edge_bus.ok(password_grant(user["username"], **device("laptop")))
    (event,) = await told()
    assert (event["username"], event["device_label"], event["client_address"]) == (user["username"], "laptop/1.0", "203.0.113.7")
    assert event["occurred_at"] and "device_fingerprint" not in event

    # The operator's tools (any sender but the edge) are themselves the device, whatever the body says.
    await bus.ok(password_grant(user["username"], **device("phone")))
    await bus.ok(password_grant(user["username"], **device("laptop")))
    told_now = await told()
    assert len(told_now) == 2 and told_now[1]["device_label"].startswith("via ") and told_now[1]["client_address"] is None


async def test_a_body_naming_another_logins_device_changes_only_its_own_login(
    bus: BusClient, edge_bus: BusClient, admin_db
) -> None:
    victim, other = await new_user(bus, ["customer"], customer_id=uuid.uuid4()), await new_user(bus)
    await edge_bus.ok(password_grant(victim["username"], **device("victim-phone")))
    before = await known_devices(admin_db, victim["user_id"])
    await edge_bus.ok(password_grant(other["username"], **device("own-laptop")))
    await edge_bus.ok(password_grant(other["username"], **device("victim-phone")))  # new to this login: told to it
    assert await known_devices(admin_db, victim["user_id"]) == before
    assert await events_about(admin_db, "identity.new_device_login", "user_id", victim["user_id"]) == []
    assert len(await events_about(admin_db, "identity.new_device_login", "user_id", other["user_id"])) == 1


async def test_a_login_keeps_twenty_devices_and_forgets_the_least_recently_seen(
    bus: BusClient, edge_bus: BusClient, admin_db
) -> None:
    user = await new_user(bus)
    for n in range(i.MAX_KNOWN_DEVICES):
        await edge_bus.ok(password_grant(user["username"], **device(f"device-{n}")))
    await edge_bus.ok(password_grant(user["username"], **device("device-0")))  # seen again: device-1 is the oldest now
    await edge_bus.ok(password_grant(user["username"], **device("one-more")))
    kept = {d["label"] for d in await known_devices(admin_db, user["user_id"])}
    assert len(kept) == i.MAX_KNOWN_DEVICES and "one-more/1.0" in kept and "device-0/1.0" in kept
    assert "device-1/1.0" not in kept
    told = await events_about(admin_db, "identity.new_device_login", "user_id", user["user_id"])
    assert len(told) == i.MAX_KNOWN_DEVICES, "every device but the first, and the one past the bound"
    await edge_bus.ok(password_grant(user["username"], **device("device-1")))  # forgotten: new again
    assert len(await events_about(admin_db, "identity.new_device_login", "user_id", user["user_id"])) == i.MAX_KNOWN_DEVICES + 1
