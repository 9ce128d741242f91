"""Signing keys: made on first need, rotated, published (JWKS); and start-up: a signing key and
the first admin, before any queue is consumed."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime

import asyncpg

from bus.handling import Context
from contracts import identity as c
from contracts.common import Reply
from contracts.identity import IdentityError, Role
from workers.identity import domain, store
from workers.identity.handlers.users import create_user

DEV_ADMIN_PASSWORD = "cbs-dev-admin-password"  # noqa: S105  (the documented development default)
log = logging.getLogger("cbs.identity")

BOOTSTRAP_CONSUMER = "identity.bootstrap"


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
