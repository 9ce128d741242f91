"""Identity rules: passwords, lockout, tokens, refresh rotation, API keys, signing keys, one-time
passwords and the devices logins come from.

Pure: no I/O, the clock and ids come in as arguments. The one thing drawn here is randomness
from the OS CSPRNG (`secrets`, key generation): a secret passed in from outside would only be
one more place holding it. Refusals are returned as `Refusal` values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.identity import (
    ACCESS_TOKEN_TTL_S,
    AUDIENCE,
    DEVICE_LABEL_MAX_CHARS,
    ISSUER,
    MAX_KNOWN_DEVICES,
    OTP_DIGITS,
    PASSWORD_MIN_CHARS,
    REFRESH_TOKEN_TTL_S,
    REVOCATION_WINDOW_S,
    IdentityError,
    Jwk,
    Jwks,
    permissions_of,
)

MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
ACCESS_TTL = timedelta(seconds=ACCESS_TOKEN_TTL_S)
REFRESH_TTL = timedelta(seconds=REFRESH_TOKEN_TTL_S)
# A retired key stays published this much past the last token it signed, for clock skew.
JWKS_GRACE = timedelta(minutes=5)
API_KEY_PREFIX = "cbs"

# argon2id with the library's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Refusal:
    code: IdentityError
    message: str


# --- passwords ---------------------------------------------------------------------------


def password_refusal(password: str) -> Refusal | None:
    # Length only, no composition rules: NIST SP 800-63B found those make passwords worse.
    if len(password) < PASSWORD_MIN_CHARS:
        return Refusal(IdentityError.weak_password, f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's: rehash on a good login."""
    return _hasher.check_needs_rehash(password_hash)


_dummy_hash: str | None = None


def burn_verification(password: str) -> None:
    """Spend what a real verification costs, so an unknown username answers no faster."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


def normalise_username(username: str) -> str:
    return username.strip().lower()


# --- lockout -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginState:
    failed_attempts: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_failure(state: LoginState, now: datetime) -> LoginState:
    """One more consecutive failure; the fifth locks for 15 minutes and starts a fresh count."""
    assert not state.locked(now), "a locked login is refused before its password is checked"
    attempts = state.failed_attempts + 1
    if attempts >= MAX_FAILED_ATTEMPTS:
        return LoginState(failed_attempts=0, locked_until=now + LOCKOUT)
    return replace(state, failed_attempts=attempts)


def after_success() -> LoginState:
    return LoginState()


# --- scopes ------------------------------------------------------------------------------


def granted_scope(allowed: frozenset[str], requested: str | list[str] | None) -> frozenset[str] | Refusal:
    """The permissions a token or key gets: what was asked for, if the holder has it all."""
    if requested is None:
        return allowed
    wanted = frozenset(requested.split() if isinstance(requested, str) else requested)
    if not wanted:
        return allowed
    if extra := wanted - allowed:
        return Refusal(IdentityError.forbidden_scope, f"not held: {' '.join(sorted(extra))}")
    return wanted


# --- access tokens -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a token speaks for."""

    user_id: UUID
    roles: tuple[str, ...]
    customer_id: UUID | None

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_of(self.roles)


def access_claims(subject: Subject, permissions: frozenset[str], now: datetime, jti: UUID, *,
                  session_id: UUID | None = None, api_key_id: UUID | None = None) -> dict[str, Any]:  # fmt: skip
    """The claims of an access token. `sid` names the login (refresh-token family) and `api_key_id`
    the key of a client-credentials token: what a logout or a key revocation ends."""
    issued = int(now.timestamp())
    scoped = {"sid": str(session_id)} if session_id else {}
    if api_key_id:
        scoped["api_key_id"] = str(api_key_id)
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(subject.user_id),
        "roles": sorted(str(r) for r in subject.roles),
        "permissions": sorted(str(p) for p in permissions),
        "customer_id": str(subject.customer_id) if subject.customer_id else None,
        "iat": issued,
        "exp": issued + ACCESS_TOKEN_TTL_S,
        "jti": str(jti),
        **scoped,
        "typ": "access",
    }


def sign_access_token(claims: dict[str, Any], private_pem: str, kid: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


# --- refresh tokens ----------------------------------------------------------------------


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256, unsalted: fine for 256-bit random secrets (nothing to guess), unlike passwords."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredRefresh:
    expires_at: datetime
    revoked_at: datetime | None


class RefreshOutcome(Enum):
    rotate = "rotate"  # valid: revoke it, issue a new pair in the same family
    reused = "reused"  # revoked already: someone holds a copy, so the whole family goes
    expired = "expired"


def revocation_window_start(now: datetime) -> datetime:
    """Revocations before this cover only expired tokens: nobody needs them any more."""
    return now - timedelta(seconds=REVOCATION_WINDOW_S)


def judge_refresh(token: StoredRefresh, now: datetime) -> RefreshOutcome:
    if token.revoked_at is not None:
        return RefreshOutcome.reused
    if now >= token.expires_at:
        return RefreshOutcome.expired
    return RefreshOutcome.rotate


# --- API keys ----------------------------------------------------------------------------


def new_api_key_secret(key_id: UUID) -> str:
    # The key id inside the secret finds the row without a scan; the random part is the secret.
    return f"{API_KEY_PREFIX}_{key_id.hex}_{secrets.token_urlsafe(32)}"


def api_key_id(secret: str) -> UUID | None:
    """The key id a secret names, or None when it is not shaped like one of ours."""
    prefix, _, rest = secret.partition("_")
    key_hex, _, random_part = rest.partition("_")
    if prefix != API_KEY_PREFIX or len(key_hex) != 32 or not random_part:
        return None
    try:
        return UUID(hex=key_hex)
    except ValueError:
        return None


def digest_matches(stored_digest: str, presented: str) -> bool:
    return hmac.compare_digest(stored_digest, token_digest(presented))


def api_key_usable(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None and (expires_at is None or now < expires_at)


# --- signing keys ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_pem: str  # PKCS#8; in production a KMS or HSM would hold it and sign for us
    public_x: str  # raw 32-byte public key, base64url without padding (the JWK `x`)


def new_signing_key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return SigningKey(kid=uuid.uuid4().hex, private_pem=pem.decode(), public_x=public_x(private.public_key()))


def public_x(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks_cutoff(now: datetime) -> datetime:
    """Keys retired after this may have signed a token still unexpired: they stay published."""
    return now - ACCESS_TTL - JWKS_GRACE


def jwks(public_keys: list[tuple[str, str]]) -> Jwks:
    """The JWK set of (kid, x) pairs."""
    return Jwks(keys=[Jwk(kid=kid, x=x) for kid, x in public_keys])


# --- step-up one-time passwords (banking-rules §2) -----------------------------------------


@dataclass(frozen=True, slots=True)
class OtpState:
    """What is kept of a one-time password: never the code, only its salted HMAC."""

    user_id: str
    purpose: str
    salt: bytes
    code_hash: bytes
    attempts: int
    max_attempts: int
    expires_at: datetime
    locked: bool
    consumed_by: str | None


def new_otp_code(digits: int = OTP_DIGITS) -> str:
    """Uniform over 10**digits (secrets.randbelow: no modulo bias), leading zeros kept."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def otp_digest(salt: bytes, code: str) -> bytes:
    return hmac.new(salt, code.encode(), hashlib.sha256).digest()


def new_otp(code: str) -> tuple[bytes, bytes]:
    """(salt, code_hash) to store for a new code."""
    salt = secrets.token_bytes(16)
    return salt, otp_digest(salt, code)


class OtpOutcome(Enum):
    verified = "verified"  # consume it now
    again = "again"  # already consumed by this very operation, right code: answer it again
    wrong = "wrong"  # count a try; locks when it was the last
    refused = "refused"  # a Refusal says why; nothing changes


def judge_otp(otp: OtpState, *, user_id: str, code: str, purpose: str, consumed_by: str,
              now: datetime) -> tuple[OtpOutcome, Refusal | None]:  # fmt: skip
    """What a presented code does to an OTP. Order matters: another login learns nothing (not
    found); a locked or expired OTP never says whether a code was right; the purpose is checked
    before the code, so a code typed for another operation neither passes nor burns a try."""
    if otp.user_id != user_id:
        return OtpOutcome.refused, Refusal(IdentityError.otp_not_found, "no such one-time password")
    if otp.locked:
        return OtpOutcome.refused, Refusal(IdentityError.otp_locked, "too many wrong codes; ask for a new one")
    right = hmac.compare_digest(otp.code_hash, otp_digest(otp.salt, code))
    if otp.consumed_by is not None:
        if otp.consumed_by == consumed_by and otp.purpose == purpose and right:
            return OtpOutcome.again, None
        return OtpOutcome.refused, Refusal(IdentityError.otp_used, "this one-time password was used already")
    if now >= otp.expires_at:
        return OtpOutcome.refused, Refusal(IdentityError.otp_expired, "the one-time password expired; ask for a new one")
    if otp.purpose != purpose:
        return OtpOutcome.refused, Refusal(IdentityError.otp_mismatch, "the one-time password was issued for another operation")
    if not right:
        return OtpOutcome.wrong, None
    return OtpOutcome.verified, None


def otp_locks_now(otp: OtpState) -> bool:
    """After one more wrong code."""
    return otp.attempts + 1 >= otp.max_attempts


# --- devices (issue 13: new-device sign-in alerts) ---------------------------------------------

UNKNOWN_DEVICE = "unknown device"


@dataclass(frozen=True, slots=True)
class Device:
    """The device a password login comes from: a fingerprint (SHA-256 hex, never the identifier
    itself), what the customer is told it is, and the client's address."""

    fingerprint: str
    label: str
    address: str | None


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """A device a login has used, in one of its `MAX_KNOWN_DEVICES` slots."""

    slot: int
    fingerprint: str
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """What a successful password login does to its login's devices."""

    known: bool  # used before: only its last_seen (and label, address) move
    alert: bool  # raise `identity.new_device_login`
    slot: int  # where it is kept: its own slot, a free one, or the least recently seen device's


def device_of(fingerprint: str | None, label: str | None, address: str | None, *, from_edge: bool,
              sender: str | None) -> Device | None:  # fmt: skip
    """Whom to believe about the device. The edge describes the device it talked to; any other
    sender (the operator's tools, a partner given `identity.issue_token`) is itself the device,
    whatever its body says, so it can neither hide a login behind a known device nor name one.
    An edge that sent no fingerprint (one older than this) leaves the devices as they are."""
    if from_edge:
        return Device(fingerprint, label or UNKNOWN_DEVICE, address) if fingerprint else None
    who = sender or "unknown"
    return Device(hashlib.sha256(f"sender:{who}".encode()).hexdigest(), f"via {who}"[:DEVICE_LABEL_MAX_CHARS], None)


def plan_device(known: list[KnownDevice], fingerprint: str, limit: int = MAX_KNOWN_DEVICES) -> DevicePlan:
    """A known device is only seen again. A new one is kept in a free slot, else in the least
    recently seen device's (which is forgotten: its next login alerts again), and alerts unless the
    login knew no device at all: its very first login, or its first since devices were kept."""
    assert limit >= 1 and len(known) <= limit, "the slots bound the devices"
    for device in known:
        if device.fingerprint == fingerprint:
            return DevicePlan(known=True, alert=False, slot=device.slot)
    used = {d.slot for d in known}
    free = [slot for slot in range(limit) if slot not in used]
    if free:
        return DevicePlan(known=False, alert=bool(known), slot=free[0])
    oldest = min(known, key=lambda d: (d.last_seen, d.slot))
    return DevicePlan(known=False, alert=True, slot=oldest.slot)
