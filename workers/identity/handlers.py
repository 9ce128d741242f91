"""The identity worker's recipes: load, decide (domain), store, reply.

Password hashing runs in a thread: argon2 is ~50 ms of CPU, and the event loop must keep
serving heartbeats and other messages meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from bus.paging import cursor_or_refusal, decode_text, decode_time_id, page_of
from bus.actor import EDGE
from bus.handling import Context, Deferred
from contracts import identity as c
from contracts import notification
from contracts.common import ErrorCode, Reply
from contracts.identity import GrantType, IdentityError, RevocationReason, RevocationScope, Role, UserStatus
from workers.identity import domain, store
from workers.identity.domain import Refusal, Subject

DEV_ADMIN_PASSWORD = "cbs-dev-admin-password"  # noqa: S105  (the documented development default)
log = logging.getLogger("cbs.identity")

BOOTSTRAP_CONSUMER = "identity.bootstrap"


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message)


def _subject(user: store.User) -> Subject:
    return Subject(user_id=user.user_id, roles=user.roles, customer_id=user.customer_id)


# --- users -------------------------------------------------------------------------------


async def create_user(ctx: Context, cmd: c.CreateUser) -> Reply:
    username = domain.normalise_username(cmd.username)
    existing = await store.get_user(ctx.conn, cmd.user_id)
    if existing is not None:
        if existing.username == username:
            return Reply.success(existing.view(ctx.now))  # a retry: it keeps no inbox row
        return Reply.refusal(IdentityError.user_exists, f"user {cmd.user_id} exists with another username")
    password = cmd.password.get_secret_value()
    if refusal := domain.password_refusal(password):
        return refuse(refusal)
    user = store.User(
        user_id=cmd.user_id, username=username, password_hash=await asyncio.to_thread(domain.hash_password, password),
        display_name=cmd.display_name, roles=tuple(dict.fromkeys(cmd.roles)), customer_id=cmd.customer_id,
        status=UserStatus.active, login=domain.LoginState(), created_at=ctx.now, disabled_at=None,
    )  # fmt: skip
    if not await store.insert_user(ctx.conn, user):
        return Reply.refusal(IdentityError.user_exists, f"username {username} is taken")
    await ctx.emit(c.UserCreated(user_id=user.user_id, username=username, display_name=user.display_name,
                                 roles=list(user.roles), customer_id=user.customer_id, occurred_at=ctx.now))  # fmt: skip
    return Reply.success(user.view(ctx.now))


async def get_user(ctx: Context, cmd: c.GetUser) -> Reply:
    user = await store.get_user(ctx.conn, cmd.user_id)
    return Reply.success(user.view(ctx.now)) if user else _no_user(cmd.user_id)


async def list_users(ctx: Context, cmd: c.ListUsers) -> Reply:
    after, refusal = cursor_or_refusal(cmd.cursor, decode_text)
    if refusal:
        return refusal
    users = await store.list_users(ctx.conn, role=cmd.role, after=after, limit=cmd.limit + 1)
    page, next_cursor = page_of(users, cmd.limit, lambda u: (u.username,))
    return Reply.success(c.UserPage(items=[u.view(ctx.now) for u in page], next_cursor=next_cursor))


async def disable_user(ctx: Context, cmd: c.DisableUser) -> Reply:
    user = await store.get_user(ctx.conn, cmd.user_id, for_update=True)
    if user is None:
        return _no_user(cmd.user_id)
    if user.status == UserStatus.disabled:
        return Reply.success(user.view(ctx.now))
    if Role.admin in user.roles and await store.active_admins(ctx.conn) <= 1:
        return Reply.refusal(IdentityError.last_admin, "the last active admin cannot be disabled")
    user = await store.disable_user(ctx.conn, user.user_id, ctx.now)
    await store.revoke_user_refresh(ctx.conn, user.user_id, ctx.now)
    await ctx.emit(c.UserDisabled(user_id=user.user_id, username=user.username, actor=cmd.actor, reason=cmd.reason,
                                  occurred_at=ctx.now))  # fmt: skip
    await revoke_access(ctx, RevocationScope.user, user.user_id, RevocationReason.user_disabled)
    return Reply.success(user.view(ctx.now))


async def enable_user(ctx: Context, cmd: c.EnableUser) -> Reply:
    """Tokens from before the disabling stay refused (their revocation stands); new logins work."""
    user = await store.get_user(ctx.conn, cmd.user_id, for_update=True)
    if user is None:
        return _no_user(cmd.user_id)
    if user.status == UserStatus.active:
        return Reply.success(user.view(ctx.now))
    user = await store.enable_user(ctx.conn, user.user_id)
    await ctx.emit(c.UserEnabled(user_id=user.user_id, username=user.username, actor=cmd.actor, reason=cmd.reason,
                                 occurred_at=ctx.now))  # fmt: skip
    return Reply.success(user.view(ctx.now))


def _no_user(user_id: UUID) -> Reply:
    return Reply.refusal(IdentityError.user_not_found, f"no user {user_id}")


# --- tokens ------------------------------------------------------------------------------


async def issue_token(ctx: Context, cmd: c.IssueToken) -> Reply:
    grant = {GrantType.password: _password_grant, GrantType.client_credentials: _client_grant,
             GrantType.refresh_token: _refresh_grant}[cmd.grant_type]  # fmt: skip
    return await grant(ctx, cmd)


async def _password_grant(ctx: Context, cmd: c.IssueToken) -> Reply:
    assert cmd.username is not None and cmd.password is not None, "the contract requires both"
    username, password = domain.normalise_username(cmd.username), cmd.password.get_secret_value()
    user = await store.user_by_name(ctx.conn, username, for_update=True)
    if user is None:
        await asyncio.to_thread(domain.burn_verification, password)
        return await _failed(ctx, cmd, None, "unknown_user", IdentityError.invalid_credentials, "wrong username or password")
    if user.login.locked(ctx.now):
        return await _failed(ctx, cmd, user, "locked_out", IdentityError.locked_out, _locked_message(user.login))
    if not await asyncio.to_thread(domain.verify_password, user.password_hash, password):
        login = domain.after_failure(user.login, ctx.now)
        await store.set_login_state(ctx.conn, user.user_id, login)
        if not login.locked(ctx.now):
            return await _failed(ctx, cmd, user, "invalid_credentials", IdentityError.invalid_credentials,
                                 "wrong username or password")  # fmt: skip
        assert login.locked_until is not None
        await ctx.emit(c.LockedOut(user_id=user.user_id, username=user.username, failed_attempts=domain.MAX_FAILED_ATTEMPTS,
                                   locked_until=login.locked_until, occurred_at=ctx.now))  # fmt: skip
        return await _failed(ctx, cmd, user, "invalid_credentials", IdentityError.locked_out, _locked_message(login))
    if user.status != UserStatus.active:
        return await _failed(ctx, cmd, user, "user_disabled", IdentityError.user_disabled, "this login is disabled")
    if user.login != domain.after_success():
        await store.set_login_state(ctx.conn, user.user_id, domain.after_success())
    if domain.needs_rehash(user.password_hash):
        await store.set_password_hash(ctx.conn, user.user_id, await asyncio.to_thread(domain.hash_password, password))
    return await _grant(ctx, cmd, user, user.permissions_now(), family_id=uuid.uuid4())


async def _client_grant(ctx: Context, cmd: c.IssueToken) -> Reply:
    assert cmd.client_id is not None and cmd.client_secret is not None, "the contract requires both"
    found = await _usable_key(ctx.conn, cmd.client_secret.get_secret_value(), ctx.now)
    if found is None or found[1].username != domain.normalise_username(cmd.client_id):
        user = found[1] if found else None
        return await _failed(ctx, cmd, user, "invalid_api_key", IdentityError.invalid_api_key, "unknown client or secret")
    key, user = found
    return await _grant(ctx, cmd, user, frozenset(key.view.scopes) & user.permissions_now(), family_id=None,
                        api_key_id=key.view.key_id)  # fmt: skip


async def _refresh_grant(ctx: Context, cmd: c.IssueToken) -> Reply:
    assert cmd.refresh_token is not None, "the contract requires it"
    token_hash = domain.token_digest(cmd.refresh_token.get_secret_value())
    row = await store.refresh_for_update(ctx.conn, token_hash)
    if row is None:
        return Reply.refusal(IdentityError.invalid_refresh_token, "unknown refresh token")
    outcome = domain.judge_refresh(row.state, ctx.now)
    if outcome is domain.RefreshOutcome.reused:
        if await store.revoke_family(ctx.conn, row.family_id, ctx.now) > 0:  # else ended already, and said so then
            await revoke_access(ctx, RevocationScope.session, row.user_id, RevocationReason.refresh_token_reused,
                                session_id=row.family_id)  # fmt: skip
        await ctx.emit(c.RefreshTokenReused(user_id=row.user_id, family_id=row.family_id, occurred_at=ctx.now))
        return Reply.refusal(IdentityError.refresh_token_revoked, "refresh token already used or revoked; log in again")
    if outcome is domain.RefreshOutcome.expired:
        return Reply.refusal(IdentityError.invalid_refresh_token, "refresh token expired; log in again")
    user = await store.get_user(ctx.conn, row.user_id)
    assert user is not None, "users are never deleted"
    if user.status != UserStatus.active:
        await store.revoke_family(ctx.conn, row.family_id, ctx.now)
        return Reply.refusal(IdentityError.user_disabled, "this login is disabled")
    await store.revoke_refresh(ctx.conn, token_hash, ctx.now)
    # The login's scope, less whatever the user has lost since.
    scope = row.scope & user.permissions_now()
    pair = await _token_pair(ctx, user, scope, family_id=row.family_id)
    return Reply.success(pair)


async def _grant(ctx: Context, cmd: c.IssueToken, user: store.User, allowed: frozenset[str],
                 family_id: UUID | None, api_key_id: UUID | None = None) -> Reply:  # fmt: skip
    scope = domain.granted_scope(allowed, cmd.scope)
    if isinstance(scope, Refusal):
        return refuse(scope)
    pair = await _token_pair(ctx, user, scope, family_id, api_key_id)
    await ctx.emit(c.LoginSucceeded(user_id=user.user_id, username=user.username, grant_type=cmd.grant_type,
                                    occurred_at=ctx.now))  # fmt: skip
    return Reply.success(pair)


async def _token_pair(ctx: Context, user: store.User, scope: frozenset[str], family_id: UUID | None,
                      api_key_id: UUID | None = None) -> c.TokenPair:  # fmt: skip
    """An access token, and a refresh token in `family_id` unless None (client credentials, where
    `api_key_id` names the key). The access token's `sid` is the family: a logout ends it."""
    key = await ensure_signing_key(ctx.conn, ctx.now)
    claims = domain.access_claims(_subject(user), scope, ctx.now, uuid.uuid4(), session_id=family_id,
                                  api_key_id=api_key_id)  # fmt: skip
    refresh = None
    if family_id is not None:
        refresh = domain.new_opaque_token()
        await store.insert_refresh(ctx.conn, domain.token_digest(refresh), family_id, user.user_id, scope,
                                   ctx.now, ctx.now + domain.REFRESH_TTL)  # fmt: skip
    return c.TokenPair(
        access_token=domain.sign_access_token(claims, key.private_pem, key.kid), expires_in=c.ACCESS_TOKEN_TTL_S,
        refresh_token=refresh, refresh_expires_in=c.REFRESH_TOKEN_TTL_S if refresh else None,
        scope=" ".join(sorted(scope)),
    )  # fmt: skip


async def _failed(ctx: Context, cmd: c.IssueToken, user: store.User | None, reason: str, code: IdentityError,
                  message: str) -> Reply:  # fmt: skip
    """Record a refused login (what was typed as the name, never the secret) and refuse it."""
    typed = cmd.username if cmd.grant_type == GrantType.password else cmd.client_id
    await ctx.emit(c.LoginFailed(username=(typed or "")[:200], user_id=user.user_id if user else None,
                                 grant_type=cmd.grant_type, reason=reason, occurred_at=ctx.now))  # fmt: skip
    return Reply.refusal(code, message)


def _locked_message(login: domain.LoginState) -> str:
    return f"too many failed logins; locked until {login.locked_until:%Y-%m-%dT%H:%M:%SZ}"


async def revoke_refresh_token(ctx: Context, cmd: c.RevokeRefreshToken) -> Reply:
    row = await store.refresh_for_update(ctx.conn, domain.token_digest(cmd.refresh_token.get_secret_value()))
    revoked = row is not None and await store.revoke_family(ctx.conn, row.family_id, ctx.now) > 0
    if revoked:
        assert row is not None
        await revoke_access(ctx, RevocationScope.session, row.user_id, RevocationReason.logout, session_id=row.family_id)
    return Reply.success(c.Revoked(revoked=revoked))


# --- revocations -------------------------------------------------------------------------


async def revoke_access(ctx: Context, scope: RevocationScope, user_id: UUID, reason: RevocationReason, *,
                        session_id: UUID | None = None, key_id: UUID | None = None) -> None:  # fmt: skip
    """Record that access ended, and say so (`identity.access_revoked`) in the same transaction.

    `revoked_at` is read now, after the change was written and just before the commit, not at
    the message's start (`ctx.now`): a token issued by a transaction that still saw the user
    active has an `iat` before it, however long this transaction waited for its locks.
    """
    revoked_at = max(ctx.now, datetime.now(UTC))
    fact = c.AccessRevoked(revocation_id=uuid.uuid4(), scope=scope, user_id=user_id, session_id=session_id,
                           key_id=key_id, reason=reason, revoked_at=revoked_at)  # fmt: skip
    await store.insert_revocation(ctx.conn, fact)
    await ctx.emit(fact)


async def list_revocations(ctx: Context, cmd: c.ListRevocations) -> Reply:
    after_key, refusal = cursor_or_refusal(cmd.cursor, decode_time_id)
    if refusal:
        return refusal
    window = domain.revocation_window_start(ctx.now)
    after = max(cmd.after, window) if cmd.after is not None else window
    found = await store.list_revocations(ctx.conn, after=after, after_key=after_key, limit=cmd.limit + 1)
    page, next_cursor = page_of(found, cmd.limit, lambda r: (r.revoked_at.isoformat(), r.revocation_id))
    return Reply.success(c.RevocationPage(items=page, next_cursor=next_cursor))


# --- API keys ----------------------------------------------------------------------------


async def create_api_key(ctx: Context, cmd: c.CreateApiKey) -> Reply:
    if await store.get_api_key(ctx.conn, cmd.key_id) is not None:
        return Reply.refusal(IdentityError.api_key_exists, f"key {cmd.key_id} exists; its secret is never shown again")
    if cmd.expires_at is not None and cmd.expires_at <= ctx.now:
        return Reply.refusal(ErrorCode.invalid_message, "expires_at is in the past")
    user = await store.get_user(ctx.conn, cmd.user_id)
    if user is None:
        return _no_user(cmd.user_id)
    if user.status != UserStatus.active:
        return Reply.refusal(IdentityError.user_disabled, "the user is disabled")
    scopes = domain.granted_scope(user.permissions_now(), [str(s) for s in cmd.scopes])
    if isinstance(scopes, Refusal):
        return refuse(scopes)
    secret = domain.new_api_key_secret(cmd.key_id)
    view = c.ApiKeyView(key_id=cmd.key_id, user_id=user.user_id, name=cmd.name, scopes=sorted(scopes),
                        created_at=ctx.now, expires_at=cmd.expires_at)  # fmt: skip
    if not await store.insert_api_key(ctx.conn, view, domain.token_digest(secret)):
        return Reply.refusal(IdentityError.api_key_exists, f"key {cmd.key_id} exists")
    await ctx.emit(c.ApiKeyCreated(key_id=view.key_id, user_id=view.user_id, name=view.name, scopes=view.scopes,
                                   expires_at=view.expires_at, occurred_at=ctx.now))  # fmt: skip
    return Reply.success(c.ApiKeyIssued(**view.model_dump(), secret=secret))


async def revoke_api_key(ctx: Context, cmd: c.RevokeApiKey) -> Reply:
    key = await store.get_api_key(ctx.conn, cmd.key_id, for_update=True)
    if key is None:
        return Reply.refusal(IdentityError.api_key_not_found, f"no API key {cmd.key_id}")
    if key.view.revoked_at is not None:
        return Reply.success(key.view)
    key = await store.revoke_api_key(ctx.conn, cmd.key_id, ctx.now)
    await ctx.emit(c.ApiKeyRevoked(key_id=key.view.key_id, user_id=key.view.user_id, occurred_at=ctx.now))
    await revoke_access(ctx, RevocationScope.api_key, key.view.user_id, RevocationReason.api_key_revoked,
                        key_id=key.view.key_id)  # fmt: skip
    return Reply.success(key.view)


async def verify_api_key(ctx: Context, cmd: c.VerifyApiKey) -> Reply:
    found = await _usable_key(ctx.conn, cmd.secret.get_secret_value(), ctx.now)
    if found is None:
        return Reply.refusal(IdentityError.invalid_api_key, "unknown, revoked or expired API key")
    key, user = found
    return Reply.success(c.ApiKeyPrincipal(
        user_id=user.user_id, username=user.username, key_id=key.view.key_id, roles=list(user.roles),
        permissions=sorted(frozenset(key.view.scopes) & user.permissions_now()), customer_id=user.customer_id,
    ))  # fmt: skip


async def _usable_key(conn: asyncpg.Connection, secret: str, now: datetime) -> tuple[store.ApiKey, store.User] | None:
    key_id = domain.api_key_id(secret)
    key = await store.get_api_key(conn, key_id) if key_id else None
    if key is None or not domain.digest_matches(key.secret_hash, secret):
        return None
    if not domain.api_key_usable(key.view.revoked_at, key.view.expires_at, now):
        return None
    user = await store.get_user(conn, key.view.user_id)
    return (key, user) if user is not None and user.status == UserStatus.active else None


# --- signing keys ------------------------------------------------------------------------


async def ensure_signing_key(conn: asyncpg.Connection, now: datetime) -> domain.SigningKey:
    """The active key, made on first need (a message may arrive before start-up has made it)."""
    key = await store.active_signing_key(conn)
    if key is not None:
        return key
    await store.lock_signing_keys(conn)
    key = await store.active_signing_key(conn)  # another replica may have made it meanwhile
    if key is None:
        key = domain.new_signing_key()
        await store.insert_signing_key(conn, key, now)
    return key


async def get_jwks(ctx: Context, cmd: c.GetJwks) -> Reply:
    await ensure_signing_key(ctx.conn, ctx.now)
    return Reply.success(domain.jwks(await store.published_keys(ctx.conn, domain.jwks_cutoff(ctx.now))))


async def rotate_signing_key(ctx: Context, cmd: c.RotateSigningKey) -> Reply:
    await store.lock_signing_keys(ctx.conn)
    old = await store.active_signing_key(ctx.conn)
    if old is not None:
        await store.retire_signing_key(ctx.conn, old.kid, ctx.now)
    new = domain.new_signing_key()
    await store.insert_signing_key(ctx.conn, new, ctx.now)
    previous = old.kid if old else None
    await ctx.emit(c.KeyRotated(kid=new.kid, previous_kid=previous, reason=cmd.reason, occurred_at=ctx.now))
    return Reply.success(c.RotatedKey(kid=new.kid, previous_kid=previous))


# --- start-up ----------------------------------------------------------------------------


async def ensure_first_admin(conn: asyncpg.Connection, now: datetime, username: str, password: str) -> bool:
    """Create the admin named by the environment unless that username exists; True when made."""
    if await store.user_by_name(conn, domain.normalise_username(username)) is not None:
        return False
    user_id = uuid.uuid4()
    ctx = Context(conn=conn, worker="identity", consumer=BOOTSTRAP_CONSUMER, message_id=f"bootstrap-{user_id}",
                  correlation_id=None, reply_to=None, actor=None, broker_user=None, now=now)  # fmt: skip
    command = c.CreateUser(user_id=user_id, username=username, password=password, roles=[Role.admin],
                           display_name="First administrator")  # fmt: skip
    reply = await create_user(ctx, command)
    if reply.error is not None and reply.error.code != IdentityError.user_exists:  # a racing replica won
        raise RuntimeError(f"cannot create the first admin {username!r}: {reply.error.message}")
    return reply.ok


async def start_up(ctx: Context) -> None:
    """Before any queue is consumed: a signing key, and the first admin named by
    CBS_ADMIN_USERNAME / CBS_ADMIN_PASSWORD. The password's default is for development only: it is
    documented in the README and printed by `make run`; production sets its own (and rotates it)."""
    username = os.environ.get("CBS_ADMIN_USERNAME", "admin")
    password = os.environ.get("CBS_ADMIN_PASSWORD", DEV_ADMIN_PASSWORD)
    await ensure_signing_key(ctx.conn, ctx.now)
    if await ensure_first_admin(ctx.conn, ctx.now, username, password):
        log.info("created the first admin %r from the environment", username)
    if "CBS_ADMIN_PASSWORD" not in os.environ:
        log.warning("CBS_ADMIN_PASSWORD is unset: the development default applies; set it outside development")


# --- step-up one-time passwords (banking-rules §2) -----------------------------------------

OTP_TEMPLATE = "one_time_password"
OTP_SENT_STEP = "otp_sent"


async def issue_otp(ctx: Context, cmd: c.IssueOtp) -> Reply | Deferred:
    """A code for the customer's own login, sent by the notification worker; only its HMAC stays."""
    actor = ctx.actor
    if actor is None or actor.via != EDGE or not actor.is_customer or actor.customer_id is None:
        return Reply.refusal("forbidden", "one-time passwords are for a customer's own login, through the edge")
    existing = await store.get_otp(ctx.conn, cmd.otp_id)
    if existing is not None:
        if existing.state.user_id != actor.subject or existing.state.purpose != cmd.purpose:
            return Reply.refusal(IdentityError.otp_mismatch, f"one-time password {cmd.otp_id} exists for another operation")
        return Reply.success(_issued(cmd.otp_id, existing.state, existing.channel, []))  # no second code
    code = domain.new_otp_code()
    salt, code_hash = domain.new_otp(code)
    state = domain.OtpState(user_id=actor.subject, purpose=cmd.purpose, salt=salt, code_hash=code_hash, attempts=0,
                            max_attempts=c.OTP_MAX_ATTEMPTS, expires_at=ctx.now + timedelta(seconds=c.OTP_TTL_S),
                            locked=False, consumed_by=None)  # fmt: skip
    await store.insert_otp(ctx.conn, cmd.otp_id, actor.customer_id, cmd.channel.value, state, ctx.now)
    send = notification.SendMessage(
        send_id=cmd.otp_id, channels=[cmd.channel.value], customer_id=actor.customer_id, template=OTP_TEMPLATE,
        data={"valid_minutes": c.OTP_TTL_S // 60}, secret_data={"code": code}, expires_in_s=c.OTP_TTL_S,
    )  # fmt: skip
    return await ctx.request(send, step=OTP_SENT_STEP, state={"otp_id": str(cmd.otp_id)})


def _issued(otp_id: UUID, state: domain.OtpState, channel: str, notification_ids: list[UUID]) -> c.OtpIssued:
    return c.OtpIssued(otp_id=otp_id, purpose=state.purpose, channel=channel, notification_ids=notification_ids,
                       expires_at=state.expires_at, max_attempts=state.max_attempts)  # fmt: skip


async def otp_sent(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The notification worker took the message (or could not: no phone learnt, say). Either way
    the command was sent and answered: its code is blanked in the outbox, so it rests nowhere here."""
    await store.forget_sent_secret(ctx.conn, f"{ctx.worker}:{OTP_SENT_STEP}:{ctx.message_id}")
    if not reply.ok:
        assert reply.error is not None
        return Reply.refusal(reply.error.code, f"the one-time password could not be sent: {reply.error.message}",
                             reply.error.details)  # fmt: skip
    row = await store.get_otp(ctx.conn, UUID(state["otp_id"]))
    assert row is not None, "the OTP was stored with the step"
    sent = notification.SentMessage.model_validate(reply.result)
    return Reply.success(_issued(row.otp_id, row.state, row.channel, sent.notification_ids))


async def verify_otp(ctx: Context, cmd: c.VerifyOtp) -> Reply:
    actor = ctx.actor
    if actor is None or actor.via != EDGE:
        return Reply.refusal("forbidden", "one-time passwords are verified by the edge for the login that asked")
    row = await store.get_otp(ctx.conn, cmd.otp_id, for_update=True)
    if row is None:
        return Reply.refusal(IdentityError.otp_not_found, "no such one-time password")
    outcome, refusal = domain.judge_otp(row.state, user_id=actor.subject, code=cmd.code.get_secret_value(),
                                        purpose=cmd.purpose, consumed_by=cmd.consumed_by, now=ctx.now)  # fmt: skip
    if refusal is not None:
        return refuse(refusal)
    verified = c.OtpVerified(otp_id=cmd.otp_id, purpose=cmd.purpose, consumed_by=cmd.consumed_by)
    if outcome is domain.OtpOutcome.verified:
        await store.consume_otp(ctx.conn, cmd.otp_id, cmd.consumed_by, ctx.now)
    if outcome is not domain.OtpOutcome.wrong:
        return Reply.success(verified)
    locks = domain.otp_locks_now(row.state)
    left = await store.otp_wrong_code(ctx.conn, cmd.otp_id, lock=locks, now=ctx.now)
    if not locks:
        return Reply.refusal(IdentityError.otp_invalid, "wrong one-time password", {"attempts_left": left})
    await ctx.emit(c.OtpLocked(otp_id=cmd.otp_id, user_id=row.state.user_id, customer_id=row.customer_id,
                               purpose=row.state.purpose, occurred_at=ctx.now))  # fmt: skip
    return Reply.refusal(IdentityError.otp_locked, "too many wrong codes; ask for a new one-time password")
