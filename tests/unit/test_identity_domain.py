"""Identity rules, pure: passwords, lockout, access tokens, refresh rotation, API keys, JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from contracts.identity import (
    MAX_KNOWN_DEVICES,
    ROLE_PERMISSIONS,
    IdentityError,
    IssueToken,
    Permission,
    Role,
    permissions_of,
)
from workers.identity import domain
from workers.identity.domain import (
    Device,
    DevicePlan,
    KnownDevice,
    LoginState,
    RefreshOutcome,
    Refusal,
    StoredRefresh,
    Subject,
)

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


# --- passwords ---------------------------------------------------------------------------


def test_password_policy_is_twelve_characters() -> None:
    refusal = domain.password_refusal("a" * 11)
    assert refusal is not None and refusal.code == IdentityError.weak_password
    assert domain.password_refusal("a" * 12) is None
    assert domain.password_refusal("correct horse battery") is None


def test_password_hash_is_argon2id_and_verifies_only_the_right_password() -> None:
    hashed = domain.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$") and "correct" not in hashed
    assert domain.verify_password(hashed, "correct horse battery")
    assert not domain.verify_password(hashed, "correct horse batterY")
    assert not domain.verify_password("not-a-hash", "correct horse battery")
    assert not domain.needs_rehash(hashed)


def test_secrets_are_masked_except_on_the_wire() -> None:
    command = IssueToken(grant_type="password", username="asha", password="correct horse battery")
    assert "correct horse" not in repr(command) and "correct horse" not in str(command)
    assert command.model_dump(mode="json")["password"] == "correct horse battery"
    assert "correct horse" not in command.model_dump_json(context={"redact": True})


# --- lockout -----------------------------------------------------------------------------


def fail(times: int, state: LoginState = LoginState(), at: datetime = NOW) -> LoginState:
    for _ in range(times):
        state = domain.after_failure(state, at)
    return state


def test_four_failures_do_not_lock_and_the_fifth_locks_for_fifteen_minutes() -> None:
    four = fail(4)
    assert four.failed_attempts == 4 and not four.locked(NOW)
    five = domain.after_failure(four, NOW)
    assert five.locked_until == NOW + timedelta(minutes=15)
    assert five.locked(NOW + timedelta(minutes=14, seconds=59))
    assert not five.locked(NOW + timedelta(minutes=15))


def test_a_success_resets_the_count() -> None:
    assert fail(4) != LoginState()
    after = domain.after_success()
    assert fail(4, after).locked_until is None  # four fresh failures still do not lock


def test_after_a_lock_expires_the_count_starts_afresh() -> None:
    later = NOW + timedelta(minutes=15)
    state = fail(5)
    assert fail(4, state, later).locked_until == state.locked_until  # still the old, expired lock
    assert not fail(4, state, later).locked(later)
    assert fail(5, state, later).locked_until == later + timedelta(minutes=15)


def test_a_locked_login_is_not_counted() -> None:
    with pytest.raises(AssertionError):
        domain.after_failure(fail(5), NOW + timedelta(minutes=1))


# --- roles and scopes --------------------------------------------------------------------


def test_roles_map_to_permissions() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert ROLE_PERMISSIONS[Role.admin] == frozenset(Permission)
    assert "transfers:create" not in ROLE_PERMISSIONS["customer"]
    assert not any(p.endswith((":write", ":create", ":admin", ":verify", ":freeze", ":approve"))
                   for p in ROLE_PERMISSIONS["auditor"])  # fmt: skip
    assert permissions_of(["teller", "auditor"]) == ROLE_PERMISSIONS["teller"] | ROLE_PERMISSIONS["auditor"]
    assert permissions_of(["nobody"]) == frozenset()


def test_granted_scope_narrows_but_never_widens() -> None:
    held = permissions_of(["teller"])
    assert domain.granted_scope(held, None) == held
    assert domain.granted_scope(held, "accounts:read customers:read") == {"accounts:read", "customers:read"}
    refused = domain.granted_scope(held, ["accounts:read", "ledger:admin"])
    assert isinstance(refused, Refusal) and refused.code == IdentityError.forbidden_scope


# --- access tokens -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> domain.SigningKey:
    return domain.new_signing_key()


def public_key(signing_key: domain.SigningKey) -> jwt.PyJWK:
    return jwt.PyJWK.from_dict(domain.jwks([(signing_key.kid, signing_key.public_x)]).keys[0].model_dump())


def customer_token(signing_key: domain.SigningKey, now: datetime) -> tuple[str, Subject]:
    subject = Subject(user_id=uuid.uuid4(), roles=("customer",), customer_id=uuid.uuid4())
    claims = domain.access_claims(subject, subject.permissions, now, uuid.uuid4())
    return domain.sign_access_token(claims, signing_key.private_pem, signing_key.kid), subject


def decode(token: str, signing_key: domain.SigningKey) -> dict:
    return jwt.decode(token, public_key(signing_key), algorithms=["EdDSA"], audience="cbs", issuer="cbs")


def test_access_token_claims_verify_with_the_public_key(key: domain.SigningKey) -> None:
    now = datetime.now(UTC)
    token, subject = customer_token(key, now)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    claims = decode(token, key)
    assert claims["sub"] == str(subject.user_id) and claims["customer_id"] == str(subject.customer_id)
    assert claims["roles"] == ["customer"] and claims["typ"] == "access"
    assert claims["permissions"] == sorted(ROLE_PERMISSIONS["customer"])
    assert claims["exp"] - claims["iat"] == 1800 and uuid.UUID(claims["jti"])


def test_a_token_fails_with_another_key(key: domain.SigningKey) -> None:
    token, _ = customer_token(key, datetime.now(UTC))
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, domain.new_signing_key())


def test_a_tampered_payload_fails(key: domain.SigningKey) -> None:
    token, _ = customer_token(key, datetime.now(UTC))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"], claims["permissions"] = ["admin"], sorted(ROLE_PERMISSIONS["admin"])
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        decode(f"{header}.{forged}.{signature}", key)


def test_an_expired_token_fails(key: domain.SigningKey) -> None:
    token, _ = customer_token(key, datetime.now(UTC) - timedelta(minutes=31))
    with pytest.raises(jwt.ExpiredSignatureError):
        decode(token, key)


def test_a_staff_token_has_no_customer(key: domain.SigningKey) -> None:
    subject = Subject(user_id=uuid.uuid4(), roles=("teller",), customer_id=None)
    token = domain.sign_access_token(domain.access_claims(subject, frozenset({"accounts:read"}), datetime.now(UTC),
                                                          uuid.uuid4()), key.private_pem, key.kid)  # fmt: skip
    claims = decode(token, key)
    assert claims["customer_id"] is None and claims["permissions"] == ["accounts:read"]


# --- refresh tokens ----------------------------------------------------------------------


def test_refresh_tokens_are_random_and_stored_as_sha256() -> None:
    a, b = domain.new_opaque_token(), domain.new_opaque_token()
    assert a != b and len(a) >= 43
    assert len(domain.token_digest(a)) == 64 and a not in domain.token_digest(a)


def test_a_live_refresh_token_rotates_a_used_one_is_reuse_and_an_old_one_expired() -> None:
    expires = NOW + timedelta(days=7)
    assert domain.judge_refresh(StoredRefresh(expires, None), NOW) is RefreshOutcome.rotate
    assert domain.judge_refresh(StoredRefresh(expires, None), expires) is RefreshOutcome.expired
    # Once rotated (revoked), presenting it again is reuse, even after it would have expired.
    assert domain.judge_refresh(StoredRefresh(expires, NOW), NOW + timedelta(seconds=1)) is RefreshOutcome.reused
    assert domain.judge_refresh(StoredRefresh(expires, NOW), expires + timedelta(days=1)) is RefreshOutcome.reused


# --- API keys ----------------------------------------------------------------------------


def test_api_key_secret_names_its_key_and_matches_only_itself() -> None:
    key_id = uuid.uuid4()
    secret = domain.new_api_key_secret(key_id)
    assert secret.startswith(f"cbs_{key_id.hex}_") and domain.api_key_id(secret) == key_id
    digest = domain.token_digest(secret)
    assert domain.digest_matches(digest, secret) and not domain.digest_matches(digest, secret + "x")
    for malformed in ("", "cbs_", f"cbs_{key_id.hex}", f"xyz_{key_id.hex}_abc", "cbs_nothex_abc", f"cbs_{'g' * 32}_a"):
        assert domain.api_key_id(malformed) is None


def test_api_key_usable_until_revoked_or_expired() -> None:
    assert domain.api_key_usable(None, None, NOW)
    assert domain.api_key_usable(None, NOW + timedelta(seconds=1), NOW)
    assert not domain.api_key_usable(None, NOW, NOW)
    assert not domain.api_key_usable(NOW, None, NOW)


# --- signing keys ------------------------------------------------------------------------


def test_jwks_shape(key: domain.SigningKey) -> None:
    other = domain.new_signing_key()
    jwks = domain.jwks([(key.kid, key.public_x), (other.kid, other.public_x)]).model_dump()
    assert [k["kid"] for k in jwks["keys"]] == [key.kid, other.kid]
    first = jwks["keys"][0]
    assert first == {"kty": "OKP", "crv": "Ed25519", "x": key.public_x, "kid": key.kid, "alg": "EdDSA", "use": "sig"}
    assert len(base64.urlsafe_b64decode(first["x"] + "=")) == 32 and "=" not in first["x"]
    assert uuid.UUID(hex=key.kid) and key.kid != other.kid
    assert "PRIVATE" in key.private_pem and key.public_x not in key.private_pem


def test_a_retired_key_stays_published_until_its_last_token_expired() -> None:
    retired_at = NOW
    assert domain.jwks_cutoff(NOW + timedelta(minutes=34)) < retired_at  # tokens of it may live
    assert domain.jwks_cutoff(NOW + timedelta(minutes=36)) > retired_at  # all expired (30 min + 5 grace)


def test_access_claims_name_the_login_or_the_api_key_a_revocation_would_end() -> None:
    subject = Subject(user_id=uuid.uuid4(), roles=("teller",), customer_id=None)
    now, session, key = datetime.now(UTC), uuid.uuid4(), uuid.uuid4()
    login = domain.access_claims(subject, subject.permissions, now, uuid.uuid4(), session_id=session)
    assert login["sid"] == str(session) and "api_key_id" not in login
    client = domain.access_claims(subject, subject.permissions, now, uuid.uuid4(), api_key_id=key)
    assert client["api_key_id"] == str(key) and "sid" not in client
    assert not {"sid", "api_key_id"} & set(domain.access_claims(subject, subject.permissions, now, uuid.uuid4()))


# --- devices (new-device sign-in alerts) ---------------------------------------------------------


def _fp(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _known(*names: str, start: datetime = NOW) -> list[KnownDevice]:
    """Devices in slots 0.., each seen a minute after the one before."""
    return [KnownDevice(slot=i, fingerprint=_fp(n), last_seen=start + timedelta(minutes=i)) for i, n in enumerate(names)]


def test_a_logins_first_device_is_remembered_without_an_alert() -> None:
    plan = domain.plan_device([], _fp("phone"))
    assert plan == DevicePlan(known=False, alert=False, slot=0)


def test_a_known_device_is_only_seen_again() -> None:
    plan = domain.plan_device(_known("phone", "laptop"), _fp("laptop"))
    assert plan == DevicePlan(known=True, alert=False, slot=1)


def test_a_new_device_of_a_login_that_knew_one_alerts_and_takes_a_free_slot() -> None:
    known = [KnownDevice(slot=0, fingerprint=_fp("phone"), last_seen=NOW), KnownDevice(slot=2, fingerprint=_fp("tv"), last_seen=NOW)]
    assert domain.plan_device(known, _fp("laptop")) == DevicePlan(known=False, alert=True, slot=1)


def test_devices_are_bounded_and_the_least_recently_seen_is_forgotten() -> None:
    assert MAX_KNOWN_DEVICES == 20
    names = [f"device-{i}" for i in range(MAX_KNOWN_DEVICES)]
    known = _known(*names)
    known[0] = KnownDevice(slot=0, fingerprint=_fp(names[0]), last_seen=NOW + timedelta(hours=1))  # seen lately
    plan = domain.plan_device(known, _fp("one more"))
    assert plan == DevicePlan(known=False, alert=True, slot=1), "slot 1 was seen least recently"
    # Once forgotten, a device is new again: it alerts.
    after = [d if d.slot != 1 else KnownDevice(slot=1, fingerprint=_fp("one more"), last_seen=NOW + timedelta(hours=2))
             for d in known]  # fmt: skip
    assert domain.plan_device(after, _fp(names[1])).alert
    with pytest.raises(AssertionError):
        domain.plan_device(_known(*names, "past the bound"), _fp("x"))


def test_the_device_is_believed_from_the_edge_and_any_other_sender_is_itself_the_device() -> None:
    told = domain.device_of(_fp("phone"), "CBSMobile/3.2", "203.0.113.7", from_edge=True, sender="cbs.edge")
    assert told == Device(_fp("phone"), "CBSMobile/3.2", "203.0.113.7")
    assert domain.device_of(_fp("phone"), None, None, from_edge=True, sender="cbs.edge") == Device(_fp("phone"), "unknown device", None)
    assert domain.device_of(None, None, None, from_edge=True, sender="cbs.edge") is None, "an older edge: nothing kept"
    # A partner given issue_token, or the operator's tools: the body's device is not believed.
    lying = domain.device_of(_fp("the customer's phone"), "CBSMobile/3.2", "203.0.113.7", from_edge=False,
                             sender="partner.acme")  # fmt: skip
    assert lying == Device(hashlib.sha256(b"sender:partner.acme").hexdigest(), "via partner.acme", None)
    assert domain.device_of(None, None, None, from_edge=False, sender="partner.acme") == lying
