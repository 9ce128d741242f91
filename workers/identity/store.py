"""The identity worker's SQL, in plain asyncpg."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.identity import REDACTED, AccessRevoked, ApiKeyView, UserView, permissions_of
from workers.identity.domain import Device, KnownDevice, LoginState, OtpState, SigningKey, StoredRefresh

# Taken by every writer of signing keys, so replicas starting together make one key.
SIGNING_KEY_LOCK = 0x0CB5_1D01

_USER_COLUMNS = (
    "user_id, username, password_hash, display_name, roles, customer_id, status, failed_attempts, "
    "locked_until, created_at, disabled_at"
)
_KEY_COLUMNS = "key_id, user_id, name, scopes, secret_hash, created_at, expires_at, revoked_at"


@dataclass(frozen=True, slots=True)
class User:
    """A user row, hash included: never leaves the worker (`view()` does)."""

    user_id: UUID
    username: str
    password_hash: str
    display_name: str
    roles: tuple[str, ...]
    customer_id: UUID | None
    status: str
    login: LoginState
    created_at: datetime
    disabled_at: datetime | None

    def permissions_now(self) -> frozenset[str]:
        return permissions_of(self.roles)

    def view(self, now: datetime) -> UserView:
        return UserView(
            user_id=self.user_id, username=self.username, display_name=self.display_name, roles=list(self.roles),
            permissions=sorted(permissions_of(self.roles)), customer_id=self.customer_id, status=self.status,
            locked_until=self.login.locked_until if self.login.locked(now) else None,
            created_at=self.created_at, disabled_at=self.disabled_at,
        )  # fmt: skip


def _user(row: asyncpg.Record) -> User:
    return User(
        user_id=row["user_id"], username=row["username"], password_hash=row["password_hash"],
        display_name=row["display_name"], roles=tuple(row["roles"]), customer_id=row["customer_id"],
        status=row["status"], login=LoginState(row["failed_attempts"], row["locked_until"]),
        created_at=row["created_at"], disabled_at=row["disabled_at"],
    )  # fmt: skip


# --- users -------------------------------------------------------------------------------


async def get_user(conn: asyncpg.Connection, user_id: UUID, *, for_update: bool = False) -> User | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = $1{lock}", user_id)
    return _user(row) if row else None


async def user_by_name(conn: asyncpg.Connection, username: str, *, for_update: bool = False) -> User | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE username = $1{lock}", username)
    return _user(row) if row else None


async def insert_user(conn: asyncpg.Connection, user: User) -> bool:
    """False when the user_id or the username is taken (a concurrent twin included)."""
    inserted = await conn.fetchval(
        "INSERT INTO users (user_id, username, password_hash, display_name, roles, customer_id, status, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING true",
        user.user_id, user.username, user.password_hash, user.display_name, list(user.roles), user.customer_id,
        user.status, user.created_at,
    )  # fmt: skip
    return bool(inserted)


async def set_login_state(conn: asyncpg.Connection, user_id: UUID, state: LoginState) -> None:
    await conn.execute(
        "UPDATE users SET failed_attempts = $2, locked_until = $3 WHERE user_id = $1",
        user_id, state.failed_attempts, state.locked_until,
    )  # fmt: skip


async def set_password_hash(conn: asyncpg.Connection, user_id: UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash)


async def disable_user(conn: asyncpg.Connection, user_id: UUID, now: datetime) -> User:
    row = await conn.fetchrow(
        f"UPDATE users SET status = 'disabled', disabled_at = $2 WHERE user_id = $1 RETURNING {_USER_COLUMNS}",
        user_id, now,
    )  # fmt: skip
    assert row is not None, "disabling a user that was just locked"
    return _user(row)


async def enable_user(conn: asyncpg.Connection, user_id: UUID) -> User:
    row = await conn.fetchrow(
        f"UPDATE users SET status = 'active', disabled_at = NULL WHERE user_id = $1 RETURNING {_USER_COLUMNS}", user_id
    )
    assert row is not None, "enabling a user that was just locked"
    return _user(row)


async def active_admins(conn: asyncpg.Connection) -> int:
    # Lock them all: two admins disabling each other at once must not both succeed.
    rows = await conn.fetch(
        "SELECT user_id FROM users WHERE status = 'active' AND 'admin' = ANY (roles) ORDER BY user_id FOR UPDATE"
    )
    return len(rows)


async def list_users(
    conn: asyncpg.Connection, *, role: str | None, after: str | None, limit: int
) -> list[User]:
    rows = await conn.fetch(
        f"SELECT {_USER_COLUMNS} FROM users WHERE ($1::text IS NULL OR $1 = ANY (roles)) "
        "AND ($2::text IS NULL OR username > $2) ORDER BY username LIMIT $3",
        role, after, limit,
    )  # fmt: skip
    return [_user(r) for r in rows]


# --- refresh tokens ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshRow:
    family_id: UUID
    user_id: UUID
    scope: frozenset[str]
    state: StoredRefresh


async def insert_refresh(
    conn: asyncpg.Connection, token_hash: str, family_id: UUID, user_id: UUID, scope: frozenset[str],
    issued_at: datetime, expires_at: datetime,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO refresh_token (token_hash, family_id, user_id, scope, issued_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        token_hash, family_id, user_id, sorted(scope), issued_at, expires_at,
    )  # fmt: skip


async def refresh_for_update(conn: asyncpg.Connection, token_hash: str) -> RefreshRow | None:
    row = await conn.fetchrow(
        "SELECT family_id, user_id, scope, expires_at, revoked_at FROM refresh_token WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )
    if row is None:
        return None
    return RefreshRow(row["family_id"], row["user_id"], frozenset(row["scope"]),
                      StoredRefresh(row["expires_at"], row["revoked_at"]))  # fmt: skip


async def revoke_refresh(conn: asyncpg.Connection, token_hash: str, now: datetime) -> None:
    await conn.execute("UPDATE refresh_token SET revoked_at = $2 WHERE token_hash = $1", token_hash, now)


async def revoke_family(conn: asyncpg.Connection, family_id: UUID, now: datetime) -> int:
    status = await conn.execute(
        "UPDATE refresh_token SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL", family_id, now
    )
    return int(status.split()[-1])


async def revoke_user_refresh(conn: asyncpg.Connection, user_id: UUID, now: datetime) -> None:
    await conn.execute("UPDATE refresh_token SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", user_id, now)


# --- API keys ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKey:
    view: ApiKeyView
    secret_hash: str


def _api_key(row: asyncpg.Record) -> ApiKey:
    fields = {k: row[k] for k in ("key_id", "user_id", "name", "created_at", "expires_at", "revoked_at")}
    return ApiKey(ApiKeyView(**fields, scopes=sorted(row["scopes"])), row["secret_hash"])


async def insert_api_key(conn: asyncpg.Connection, key: ApiKeyView, secret_hash: str) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO api_key (key_id, user_id, name, scopes, secret_hash, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING true",
        key.key_id, key.user_id, key.name, key.scopes, secret_hash, key.created_at, key.expires_at,
    )  # fmt: skip
    return bool(inserted)


async def get_api_key(conn: asyncpg.Connection, key_id: UUID, *, for_update: bool = False) -> ApiKey | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_key WHERE key_id = $1{lock}", key_id)
    return _api_key(row) if row else None


async def revoke_api_key(conn: asyncpg.Connection, key_id: UUID, now: datetime) -> ApiKey:
    row = await conn.fetchrow(f"UPDATE api_key SET revoked_at = $2 WHERE key_id = $1 RETURNING {_KEY_COLUMNS}", key_id, now)
    assert row is not None, "revoking a key that was just locked"
    return _api_key(row)


# --- revocations -------------------------------------------------------------------------

_REVOCATION_COLUMNS = "revocation_id, scope, user_id, session_id, key_id, reason, revoked_at"


async def insert_revocation(conn: asyncpg.Connection, revocation: AccessRevoked) -> None:
    await conn.execute(
        f"INSERT INTO access_revocation ({_REVOCATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        revocation.revocation_id, revocation.scope, revocation.user_id, revocation.session_id, revocation.key_id,
        revocation.reason, revocation.revoked_at,
    )  # fmt: skip


async def list_revocations(
    conn: asyncpg.Connection, *, after: datetime, after_key: tuple[datetime, UUID] | None, limit: int
) -> list[AccessRevoked]:
    """Revocations after `after` (and after the keyset position `after_key`), oldest first."""
    at, rid = after_key if after_key else (None, None)
    rows = await conn.fetch(
        f"SELECT {_REVOCATION_COLUMNS} FROM access_revocation WHERE revoked_at > $1 "
        "AND ($2::timestamptz IS NULL OR (revoked_at, revocation_id) > ($2, $3::uuid)) "
        "ORDER BY revoked_at, revocation_id LIMIT $4",
        after, at, rid, limit,
    )  # fmt: skip
    return [AccessRevoked(**dict(r)) for r in rows]


# --- signing keys ------------------------------------------------------------------------


async def lock_signing_keys(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", SIGNING_KEY_LOCK)


async def active_signing_key(conn: asyncpg.Connection) -> SigningKey | None:
    row = await conn.fetchrow("SELECT kid, private_pem, public_x FROM signing_key WHERE retired_at IS NULL")
    return SigningKey(row["kid"], row["private_pem"], row["public_x"]) if row else None


async def retire_signing_key(conn: asyncpg.Connection, kid: str, now: datetime) -> None:
    await conn.execute("UPDATE signing_key SET retired_at = $2, private_pem = NULL WHERE kid = $1", kid, now)


async def insert_signing_key(conn: asyncpg.Connection, key: SigningKey, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO signing_key (kid, private_pem, public_x, created_at) VALUES ($1, $2, $3, $4)",
        key.kid, key.private_pem, key.public_x, now,
    )  # fmt: skip


async def published_keys(conn: asyncpg.Connection, retired_after: datetime) -> list[tuple[str, str]]:
    """(kid, x) of the active key and of keys retired after `retired_after`, newest first."""
    rows = await conn.fetch(
        "SELECT kid, public_x FROM signing_key WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC",
        retired_after,
    )
    return [(r["kid"], r["public_x"]) for r in rows]


# --- one-time passwords ----------------------------------------------------------------------

_OTP_COLUMNS = "otp_id, user_id, customer_id, purpose, channel, salt, code_hash, attempts, max_attempts, expires_at, " \
               "locked_at, consumed_by"  # fmt: skip


@dataclass(frozen=True, slots=True)
class OtpRow:
    otp_id: UUID
    customer_id: UUID
    channel: str
    state: OtpState


def _otp(row: asyncpg.Record) -> OtpRow:
    return OtpRow(otp_id=row["otp_id"], customer_id=row["customer_id"], channel=row["channel"], state=OtpState(
        user_id=row["user_id"], purpose=row["purpose"], salt=bytes(row["salt"]), code_hash=bytes(row["code_hash"]),
        attempts=row["attempts"], max_attempts=row["max_attempts"], expires_at=row["expires_at"],
        locked=row["locked_at"] is not None, consumed_by=row["consumed_by"],
    ))  # fmt: skip


async def insert_otp(conn: asyncpg.Connection, otp_id: UUID, customer_id: UUID, channel: str, state: OtpState,
                     now: datetime) -> bool:  # fmt: skip
    """False when the id exists (a retry, or a clash the caller must look at)."""
    done = await conn.fetchval(
        "INSERT INTO otp (otp_id, user_id, customer_id, purpose, channel, salt, code_hash, max_attempts, created_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (otp_id) DO NOTHING RETURNING true",
        otp_id, state.user_id, customer_id, state.purpose, channel, state.salt, state.code_hash, state.max_attempts,
        now, state.expires_at,
    )  # fmt: skip
    return bool(done)


async def get_otp(conn: asyncpg.Connection, otp_id: UUID, *, for_update: bool = False) -> OtpRow | None:
    row = await conn.fetchrow(f"SELECT {_OTP_COLUMNS} FROM otp WHERE otp_id = $1" + (" FOR UPDATE" if for_update else ""),
                              otp_id)  # fmt: skip
    return _otp(row) if row else None


async def otp_wrong_code(conn: asyncpg.Connection, otp_id: UUID, *, lock: bool, now: datetime) -> int:
    """Count a wrong code (and lock it when it was the last try); the tries left."""
    return int(await conn.fetchval(
        "UPDATE otp SET attempts = attempts + 1, locked_at = CASE WHEN $2 THEN $3 ELSE locked_at END"
        " WHERE otp_id = $1 RETURNING max_attempts - attempts", otp_id, lock, now,
    ))  # fmt: skip


async def consume_otp(conn: asyncpg.Connection, otp_id: UUID, consumed_by: str, now: datetime) -> None:
    await conn.execute("UPDATE otp SET consumed_by = $2, consumed_at = $3 WHERE otp_id = $1 AND consumed_by IS NULL",
                       otp_id, consumed_by, now)  # fmt: skip


async def forget_sent_secret(conn: asyncpg.Connection, message_id: str) -> None:
    """Blank the secrets of a command this worker sent once it was answered: the outbox row is
    never sent again then, and the code need not rest here until its row is cleaned away.

    The answer proves the command was delivered, so the row is marked sent here too: the fast
    path's own mark may come later (it gathers confirms for a moment, bus/outbox.py), and waiting
    for it would leave the code in the row."""
    await conn.execute(
        "UPDATE outbox SET payload = jsonb_set(payload, '{secret_data}', "
        "(SELECT coalesce(jsonb_object_agg(key, to_jsonb($2::text)), '{}'::jsonb)"
        "   FROM jsonb_object_keys(payload->'secret_data') AS key)),"
        " published_at = coalesce(published_at, clock_timestamp())"
        " WHERE message_id = $1 AND payload ? 'secret_data'",
        message_id, REDACTED,
    )  # fmt: skip


# --- known devices -------------------------------------------------------------------------------


async def known_devices(conn: asyncpg.Connection, user_id: UUID) -> list[KnownDevice]:
    """The login's devices (at most its 20 slots); its user row is locked by the caller."""
    rows = await conn.fetch("SELECT slot, fingerprint, last_seen FROM known_device WHERE user_id = $1 ORDER BY slot",
                            user_id)  # fmt: skip
    return [KnownDevice(slot=r["slot"], fingerprint=r["fingerprint"], last_seen=r["last_seen"]) for r in rows]


async def keep_device(conn: asyncpg.Connection, user_id: UUID, slot: int, device: Device, now: datetime) -> None:
    """A device new to the login, in a free slot or over the one it forgets."""
    await conn.execute(
        "INSERT INTO known_device (user_id, slot, fingerprint, label, last_address, first_seen, last_seen) "
        "VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (user_id, slot) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
        "label = EXCLUDED.label, last_address = EXCLUDED.last_address, first_seen = EXCLUDED.first_seen, "
        "last_seen = EXCLUDED.last_seen",
        user_id, slot, device.fingerprint, device.label, device.address, now,
    )  # fmt: skip


async def saw_device(conn: asyncpg.Connection, user_id: UUID, slot: int, device: Device, now: datetime) -> None:
    """A known device again: when it was last seen, and how it describes itself now."""
    await conn.execute(
        "UPDATE known_device SET last_seen = greatest(last_seen, $3), label = $4, last_address = $5 "
        "WHERE user_id = $1 AND slot = $2",
        user_id, slot, now, device.label, device.address,
    )  # fmt: skip
