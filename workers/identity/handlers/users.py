"""Users: created, read, listed, disabled (their access revoked) and enabled; `refuse` and
`no_user`, the refusals the other handler modules answer too."""

from __future__ import annotations

import asyncio
from uuid import UUID

from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_text, page_of
from contracts import identity as c
from contracts.common import Reply
from contracts.identity import IdentityError, RevocationReason, RevocationScope, Role, UserStatus
from workers.identity import domain, store
from workers.identity.domain import Refusal
from workers.identity.handlers.revocations import revoke_access


def refuse(refusal: Refusal) -> Reply:
    return Reply.refusal(refusal.code, refusal.message)


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
    return Reply.success(user.view(ctx.now)) if user else no_user(cmd.user_id)


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
        return no_user(cmd.user_id)
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
        return no_user(cmd.user_id)
    if user.status == UserStatus.active:
        return Reply.success(user.view(ctx.now))
    user = await store.enable_user(ctx.conn, user.user_id)
    await ctx.emit(c.UserEnabled(user_id=user.user_id, username=user.username, actor=cmd.actor, reason=cmd.reason,
                                 occurred_at=ctx.now))  # fmt: skip
    return Reply.success(user.view(ctx.now))


def no_user(user_id: UUID) -> Reply:
    return Reply.refusal(IdentityError.user_not_found, f"no user {user_id}")
