"""The audit worker's SQL, in plain asyncpg."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# The fields a record's hash covers, in the order of the table (the hash itself sorts them).
# Everything but seq (the chain's position, handed out by the head), prev_hash and hash (the
# chain itself) and archived_at (retention's mark, set later). Kept as stored, so a record read
# back recomputes to the same hash.
CHAINED: tuple[str, ...] = (
    "event_id", "exchange", "routing_key", "message_type", "kind", "correlation_id", "causation_id", "actor",
    "broker_user", "entity_type", "entity_id", "record_type", "status", "severity", "risk_score", "retention",
    "expires_at", "compliance_flags", "regulatory_tags", "payload", "payload_sha256", "payload_bytes",
    "parse_error", "recorded_at",
)  # fmt: skip
COLUMNS: tuple[str, ...] = ("seq", *CHAINED, "prev_hash", "hash")
VERIFY_PAGE = 1_000  # records per query while verifying


@dataclass(frozen=True, slots=True)
class Head:
    last_seq: int
    last_hash: bytes


async def lock_head(conn: asyncpg.Connection) -> tuple[Head, datetime]:
    """The chain's head, locked until commit (one appender at a time), and the database clock."""
    row = await conn.fetchrow(
        "SELECT last_seq, last_hash, clock_timestamp() AS now FROM audit_chain_head WHERE id FOR UPDATE"
    )
    assert row is not None, "audit_chain_head has no row: migration 0001 not applied"
    return Head(row["last_seq"], bytes(row["last_hash"])), row["now"]


async def head(conn: asyncpg.Connection) -> Head:
    row = await conn.fetchrow("SELECT last_seq, last_hash FROM audit_chain_head WHERE id")
    assert row is not None
    return Head(row["last_seq"], bytes(row["last_hash"]))


async def set_head(conn: asyncpg.Connection, new: Head) -> None:
    await conn.execute("UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id", new.last_seq, new.last_hash)


async def already_recorded(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (exchange, event_id) are stored already: a redelivery stores nothing new."""
    if not keys:
        return set()
    rows = await conn.fetch(
        "SELECT exchange, event_id FROM audit_record r "
        "JOIN unnest($1::text[], $2::text[]) AS k(exchange, event_id) USING (exchange, event_id)",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["exchange"], r["event_id"]) for r in rows}


def _stored(record: dict[str, Any]) -> tuple[Any, ...]:
    payload = record["payload"]
    values = {**record, "payload": None if payload is None else json.dumps(payload)}
    return tuple(values[c] for c in COLUMNS)


async def insert_records(conn: asyncpg.Connection, records: Iterable[dict[str, Any]]) -> None:
    """COPY the records (each a dict of COLUMNS) in one round trip."""
    await conn.copy_records_to_table("audit_record", records=[_stored(r) for r in records], columns=list(COLUMNS))


def chained_fields(row: asyncpg.Record) -> dict[str, Any] | None:
    """The hashed fields of a stored record, or None once archived (its link is checked only)."""
    if row["archived_at"] is not None:
        return None
    record = {c: row[c] for c in CHAINED}
    record["payload"] = None if row["payload"] is None else json.loads(row["payload"])
    record["compliance_flags"] = list(row["compliance_flags"])
    record["regulatory_tags"] = list(row["regulatory_tags"])
    return record


async def chain_page(conn: asyncpg.Connection, from_seq: int, to_seq: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {', '.join(COLUMNS)}, archived_at FROM audit_record WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        from_seq,
        to_seq,
        limit,
    )


async def expired(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Records whose expiry has passed and whose payload is still here, oldest first, locked
    (SKIP LOCKED: replicas archive disjoint records)."""
    return await conn.fetch(
        f"SELECT {', '.join(COLUMNS)}, archived_at FROM audit_record "
        "WHERE archived_at IS NULL AND expires_at IS NOT NULL AND expires_at <= clock_timestamp() "
        "ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )


async def remove_payloads(conn: asyncpg.Connection, seqs: list[int]) -> None:
    """Retention's one change to a record (the table's trigger allows nothing else)."""
    await conn.execute(
        "UPDATE audit_record SET payload = NULL, archived_at = clock_timestamp() WHERE seq = ANY($1::bigint[])", seqs
    )


async def prev_hash_at(conn: asyncpg.Connection, seq: int) -> bytes | None:
    found = await conn.fetchval("SELECT prev_hash FROM audit_record WHERE seq = $1", seq)
    return None if found is None else bytes(found)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_records(
    conn: asyncpg.Connection,
    *,
    entity_id: str | None,
    actor: str | None,
    routing_key_prefix: str | None,
    since: datetime | None,
    until: datetime | None,
    before_seq: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; only the filters given reach the WHERE clause, so each can use its index."""
    where, args = [], []
    for clause, value in (
        ("entity_id = ${}", entity_id),
        ("actor = ${}", actor),
        ("routing_key LIKE ${}", None if routing_key_prefix is None else _like_prefix(routing_key_prefix)),
        ("recorded_at >= ${}", since),
        ("recorded_at < ${}", until),
        ("seq < ${}", before_seq),
    ):
        if value is not None:
            args.append(value)
            where.append(clause.format(len(args)))
    args.append(limit)
    sql = (
        f"SELECT {', '.join(COLUMNS)}, archived_at FROM audit_record"
        f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT ${len(args)}"
    )
    return await conn.fetch(sql, *args)
