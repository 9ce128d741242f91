"""API keys: created (the secret shown once), revoked and verified; `usable_key` serves the
client-credentials grant too."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from bus.handling import Context
from contracts import identity as c
from contracts.common import ErrorCode, Reply
from contracts.identity import IdentityError, RevocationReason, RevocationScope, UserStatus
from workers.identity import domain, store
from workers.identity.domain import Refusal
from workers.identity.handlers.revocations import revoke_access
from workers.identity.handlers.users import no_user, refuse


async def create_api_key(ctx: Context, cmd: c.CreateApiKey) -> Reply:
    if await store.get_api_key(ctx.conn, cmd.key_id) is not None:
        return Reply.refusal(IdentityError.api_key_exists, f"key {cmd.key_id} exists; its secret is never shown again")
    if cmd.expires_at is not None and cmd.expires_at <= ctx.now:
        return Reply.refusal(ErrorCode.invalid_message, "expires_at is in the past")
    user = await store.get_user(ctx.conn, cmd.user_id)
    if user is None:
        return no_user(cmd.user_id)
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
    found = await usable_key(ctx.conn, cmd.secret.get_secret_value(), ctx.now)
    if found is None:
        return Reply.refusal(IdentityError.invalid_api_key, "unknown, revoked or expired API key")
    key, user = found
    return Reply.success(c.ApiKeyPrincipal(
        user_id=user.user_id, username=user.username, key_id=key.view.key_id, roles=list(user.roles),
        permissions=sorted(frozenset(key.view.scopes) & user.permissions_now()), customer_id=user.customer_id,
    ))  # fmt: skip


async def usable_key(conn: asyncpg.Connection, secret: str, now: datetime) -> tuple[store.ApiKey, store.User] | None:
    key_id = domain.api_key_id(secret)
    key = await store.get_api_key(conn, key_id) if key_id else None
    if key is None or not domain.digest_matches(key.secret_hash, secret):
        return None
    if not domain.api_key_usable(key.view.revoked_at, key.view.expires_at, now):
        return None
    user = await store.get_user(conn, key.view.user_id)
    return (key, user) if user is not None and user.status == UserStatus.active else None
