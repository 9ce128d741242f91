"""Revocations: access that ended (a disabled user, a logout, a reused refresh token, a revoked
API key), recorded and told in one transaction, and listed for the edge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_time_id, page_of
from contracts import identity as c
from contracts.common import Reply
from contracts.identity import RevocationReason, RevocationScope
from workers.identity import domain, store


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
