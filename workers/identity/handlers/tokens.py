"""Tokens: the grants of `identity.issue_token` (password, client credentials, refresh token)
and a logout (`identity.revoke_refresh_token`). A password login's device is remembered, and a
device new to a login that knew one raises `identity.new_device_login` (issue 13)."""

from __future__ import annotations

import asyncio
import uuid
from uuid import UUID

from bus.actor import EDGE
from bus.handling import Context
from contracts import identity as c
from contracts.common import Reply
from contracts.identity import GrantType, IdentityError, RevocationReason, RevocationScope, UserStatus
from workers.identity import domain, store
from workers.identity.domain import Refusal, Subject
from workers.identity.handlers.api_keys import usable_key
from workers.identity.handlers.revocations import revoke_access
from workers.identity.handlers.signing_keys import ensure_signing_key
from workers.identity.handlers.users import refuse


def _subject(user: store.User) -> Subject:
    return Subject(user_id=user.user_id, roles=user.roles, customer_id=user.customer_id)


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
    return await _grant(ctx, cmd, user, user.permissions_now(), family_id=uuid.uuid4(), device=_device(ctx, cmd))


def _device(ctx: Context, cmd: c.IssueToken) -> domain.Device | None:
    from_edge = ctx.actor is not None and ctx.actor.via == EDGE
    return domain.device_of(cmd.device_fingerprint, cmd.device_label, cmd.client_address, from_edge=from_edge,
                            sender=ctx.broker_user)  # fmt: skip


async def _note_device(ctx: Context, user: store.User, device: domain.Device) -> None:
    """Remember the device; tell of a new one in this transaction (the user row is locked: one
    login of this user at a time decides)."""
    plan = domain.plan_device(await store.known_devices(ctx.conn, user.user_id), device.fingerprint)
    if plan.known:
        await store.saw_device(ctx.conn, user.user_id, plan.slot, device, ctx.now)
        return
    await store.keep_device(ctx.conn, user.user_id, plan.slot, device, ctx.now)
    if plan.alert:
        await ctx.emit(c.NewDeviceLogin(user_id=user.user_id, username=user.username, device_label=device.label,
                                        client_address=device.address, occurred_at=ctx.now))  # fmt: skip


async def _client_grant(ctx: Context, cmd: c.IssueToken) -> Reply:
    assert cmd.client_id is not None and cmd.client_secret is not None, "the contract requires both"
    found = await usable_key(ctx.conn, cmd.client_secret.get_secret_value(), ctx.now)
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


async def _grant(ctx: Context, cmd: c.IssueToken, user: store.User, allowed: frozenset[str], family_id: UUID | None,
                 api_key_id: UUID | None = None, device: domain.Device | None = None) -> Reply:  # fmt: skip
    scope = domain.granted_scope(allowed, cmd.scope)
    if isinstance(scope, Refusal):
        return refuse(scope)
    if device is not None:  # a login that got its tokens: a refused one is no sign-in to tell of
        await _note_device(ctx, user, device)
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
