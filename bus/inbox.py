"""The idempotent consumer (DESIGN §4.2): a redelivery gets the stored reply and no second effect."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import asyncpg


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Request:
    """What a message asks (its body's hash) and who asks it (the broker-checked asker)."""

    body_hash: str
    requester: str


@dataclass(frozen=True)
class Seen:
    """A message_id this consumer already handled."""

    request_hash: str
    reply: dict[str, Any] | None
    requester: str = ""  # '' on rows older than the column: any asker

    def same_request(self, request: Request) -> bool:
        return self.request_hash == request.body_hash and self.requester in ("", request.requester)


async def claim(conn: asyncpg.Connection, consumer: str, message_id: str, request: Request) -> Seen | None:
    """Insert the inbox row, or return what was stored for this message_id.

    A concurrent duplicate blocks on the primary key until the first transaction ends, so it
    sees the committed reply (READ COMMITTED), never a half-done effect.
    """
    inserted = await conn.fetchval(
        "INSERT INTO inbox (consumer, message_id, request_hash, requester) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        message_id,
        request.body_hash,
        request.requester,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, reply, requester FROM inbox WHERE consumer = $1 AND message_id = $2", consumer, message_id
    )
    assert row is not None, "inbox row vanished under a conflict"
    return Seen(request_hash=row["request_hash"], reply=row["reply"], requester=row["requester"])


async def store_reply(conn: asyncpg.Connection, consumer: str, message_id: str, reply: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE inbox SET reply = $3 WHERE consumer = $1 AND message_id = $2", consumer, message_id, reply
    )


async def find_stored(conn: asyncpg.Connection, consumer: str, message_id: str) -> dict[str, Any] | None:
    return await conn.fetchval("SELECT reply FROM inbox WHERE consumer = $1 AND message_id = $2", consumer, message_id)


async def find_reply(conn: asyncpg.Connection, message_id: str, requester: str) -> asyncpg.Record | None:
    """The stored reply of the asker's operation (rows older than `requester`: anyone's)."""
    return await conn.fetchrow(
        "SELECT reply, received_at, request_hash FROM inbox WHERE message_id = $1 AND reply IS NOT NULL "
        "AND requester IN ('', $2) ORDER BY received_at DESC LIMIT 1",
        message_id,
        requester,
    )


async def claim_many(conn: asyncpg.Connection, consumer: str, messages: list[tuple[str, Request]],
                     reply: dict[str, Any] | None = None) -> dict[str, Seen]:  # fmt: skip
    """`claim` for a batch in two round trips: returns what was already stored, by message_id.
    A message_id twice in `messages` is claimed once, by its first copy (the caller compares).
    `reply`, when every fresh message's reply is known before it is handled (an event's), is
    stored with the claim: the transaction that handles them commits it, or none of it."""
    ids = [m for m, _ in messages]
    inserted = await conn.fetch(
        "INSERT INTO inbox (consumer, message_id, request_hash, requester, reply) "
        "SELECT $1, m, h, r, $5::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS t(m, h, r) "
        "ON CONFLICT DO NOTHING RETURNING message_id",
        consumer,
        ids,
        [r.body_hash for _, r in messages],
        [r.requester for _, r in messages],
        reply,
    )
    new = {r["message_id"] for r in inserted}
    old = [m for m in ids if m not in new]
    if not old:
        return {}
    rows = await conn.fetch(
        "SELECT message_id, request_hash, reply, requester FROM inbox "
        "WHERE consumer = $1 AND message_id = ANY($2::text[])",
        consumer,
        old,
    )
    return {r["message_id"]: Seen(r["request_hash"], r["reply"], r["requester"]) for r in rows}


async def store_replies(conn: asyncpg.Connection, consumer: str, replies: list[tuple[str, dict[str, Any]]]) -> None:
    if not replies:
        return
    # One statement for the batch (`executemany` executes once a row: a group commit of the
    # ledger's transfers stored its replies one UPDATE each).
    await conn.execute(
        "UPDATE inbox SET reply = r.reply FROM unnest($2::text[], $3::jsonb[]) AS r(message_id, reply) "
        "WHERE inbox.consumer = $1 AND inbox.message_id = r.message_id",
        consumer,
        [message_id for message_id, _ in replies],
        [reply for _, reply in replies],
    )
