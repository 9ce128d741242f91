"""The audit worker's SQL, in plain asyncpg."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import datetime as dt
from datetime import datetime
from typing import Any

import asyncpg

from bus import db
from contracts.wire import compact_json

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
    values = {**record, "payload": None if payload is None else compact_json(payload).decode()}
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


OUTCOME_COLUMNS = ("o.result AS outcome_result, o.status AS outcome_status, o.code AS outcome_code, "
                   "o.outcome_seq, o.recorded_at AS outcome_at")
_RECORD_COLUMNS = ", ".join(f"r.{c}" for c in COLUMNS)


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
    account_id: Any = None,
    kinds: Sequence[str] | None = None,
    actor_or_user: str | None = None,
) -> list[asyncpg.Record]:
    """Newest first, each command with its outcome (if recorded); only the filters given reach the
    WHERE clause, so each can use its index. By account: every record naming it (0003's index)."""
    where, args = [], []
    for clause, value in (
        ("a.account_id = ${}", account_id),
        ("r.entity_id = ${}", entity_id),
        ("r.actor = ${}", actor),
        ("coalesce(r.actor, r.broker_user) = ${}", actor_or_user),
        ("r.routing_key LIKE ${}", None if routing_key_prefix is None else _like_prefix(routing_key_prefix)),
        ("r.recorded_at >= ${}", since),
        ("r.recorded_at < ${}", until),
        ("r.seq < ${}", before_seq),
        ("r.kind = ANY(${}::text[])", None if kinds is None else list(kinds)),
    ):
        if value is not None:
            args.append(value)
            where.append(clause.format(len(args)))
    args.append(limit)
    source = "audit_record_account a JOIN audit_record r ON r.seq = a.seq" if account_id is not None else "audit_record r"
    sql = (
        f"SELECT {_RECORD_COLUMNS}, r.archived_at, {OUTCOME_COLUMNS} FROM {source} "
        "LEFT JOIN audit_outcome o ON r.kind = 'command' AND o.command_id = r.event_id"
        f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY r.seq DESC LIMIT ${len(args)}"
    )
    return await conn.fetch(sql, *args)


# --- indexes derived from the chain (migration 0003) ------------------------------------------


async def insert_outcomes(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """(command_id, command_key, result, status, code, outcome_seq, recorded_at); the first wins."""
    if rows:
        # One statement for the batch (unnest keeps the order, so the first of two still wins).
        await conn.execute(
            "INSERT INTO audit_outcome (command_id, command_key, result, status, code, outcome_seq, recorded_at) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], "
            "$7::timestamptz[]) ON CONFLICT (command_id) DO NOTHING",
            *db.columns(rows, 7),
        )


async def insert_accounts(conn: asyncpg.Connection, rows: list[tuple[str, int]]) -> None:
    if rows:
        await conn.execute(
            "INSERT INTO audit_record_account (account_id, seq) SELECT * FROM unnest($1::uuid[], $2::bigint[]) "
            "ON CONFLICT DO NOTHING",
            [r[0] for r in rows],
            [r[1] for r in rows],
        )


async def business_day(conn: asyncpg.Connection) -> tuple[dt.date, int] | None:
    row = await conn.fetchrow("SELECT business_date, learnt_seq FROM audit_business_day WHERE id")
    return None if row is None else (row["business_date"], row["learnt_seq"])


async def set_business_day(conn: asyncpg.Connection, business_date: dt.date, seq: int) -> None:
    await conn.execute(
        "INSERT INTO audit_business_day (id, business_date, learnt_seq) VALUES (true, $1, $2) "
        "ON CONFLICT (id) DO UPDATE SET business_date = EXCLUDED.business_date, learnt_seq = EXCLUDED.learnt_seq "
        "WHERE audit_business_day.learnt_seq < EXCLUDED.learnt_seq",
        business_date,
        seq,
    )


def movement_row(body: dict[str, Any], seq: int, business_date: dt.date) -> tuple[Any, ...]:
    return (body["payment_id"], seq, business_date, body.get("customer_id"), body["kind"], body.get("payer_account_id"),
            body.get("payee_account_id"), int(body["amount"]), body["currency"],
            dt.datetime.fromisoformat(body["occurred_at"]))  # fmt: skip


async def insert_movements(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.execute(
            "INSERT INTO audit_movement (payment_id, seq, business_date, customer_id, kind, payer_account_id, "
            "payee_account_id, amount, currency, occurred_at) SELECT p::uuid, s, d, c::uuid, k, pa::uuid, pe::uuid, a, cu, o "
            "FROM unnest($1::text[], $2::bigint[], $3::date[], $4::text[], $5::text[], $6::text[], $7::text[], "
            "$8::bigint[], $9::text[], $10::timestamptz[]) AS t(p, s, d, c, k, pa, pe, a, cu, o) "
            "ON CONFLICT (payment_id) DO NOTHING",
            *db.columns(rows, 10),
        )


async def insert_investigations(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """(record_seq, kind, routing_key, actor, risk_score, opened_at): each opens as `open`."""
    if rows:
        await conn.executemany(
            "INSERT INTO audit_investigation (record_seq, kind, routing_key, actor, risk_score, status, opened_at, "
            "updated_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $6) ON CONFLICT DO NOTHING",
            rows,
        )


# --- reports -----------------------------------------------------------------------------------

_MOVEMENT = ("seq, payment_id, business_date, customer_id, kind, payer_account_id, payee_account_id, amount, currency, "
             "occurred_at")  # fmt: skip


async def large_movements(conn: asyncpg.Connection, business_date: dt.date, threshold: int, after_seq: int | None,
                          limit: int) -> list[asyncpg.Record]:  # fmt: skip
    return await conn.fetch(
        f"SELECT {_MOVEMENT} FROM audit_movement WHERE business_date = $1 AND amount >= $2 AND seq > $3 "
        "ORDER BY seq LIMIT $4",
        business_date, threshold, after_seq or 0, limit,
    )  # fmt: skip


async def movements_between(conn: asyncpg.Connection, business_date: dt.date, low: int, high: int,
                            limit: int) -> list[asyncpg.Record]:  # fmt: skip
    """The day's movements with low <= amount < high."""
    return await conn.fetch(
        f"SELECT {_MOVEMENT} FROM audit_movement WHERE business_date = $1 AND amount >= $2 AND amount < $3 "
        "ORDER BY seq LIMIT $4",
        business_date, low, high, limit,
    )  # fmt: skip


def movement_view(row: asyncpg.Record) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "record_seq": row["seq"], "payment_id": str(row["payment_id"]), "business_date": row["business_date"].isoformat(),
        "customer_id": text(row["customer_id"]), "kind": row["kind"], "payer_account_id": text(row["payer_account_id"]),
        "payee_account_id": text(row["payee_account_id"]), "amount": row["amount"], "currency": row["currency"],
        "occurred_at": row["occurred_at"].isoformat(),
    }  # fmt: skip


SECURITY_EVENT_KEYS = ["identity.login_failed", "edge.auth_failed", "identity.locked_out"]


async def security_records(conn: asyncpg.Connection, since: datetime, until: datetime, limit: int) -> list[asyncpg.Record]:
    """Failed logins, lockouts, access refusals and refused or failed commands recorded in
    [since, until); a refusal with the actor and broker user of the command it answers."""
    return await conn.fetch(
        "SELECT r.recorded_at, r.routing_key, r.kind, r.payload, r.actor, r.broker_user, o.result, "
        "       c.actor AS command_actor, c.broker_user AS command_broker_user "
        "FROM audit_record r "
        "LEFT JOIN audit_outcome o ON r.kind = 'outcome' AND o.outcome_seq = r.seq "
        "LEFT JOIN audit_record c ON c.exchange = 'cbs.commands' AND c.event_id = o.command_id "
        "WHERE r.recorded_at >= $1 AND r.recorded_at < $2 AND ("
        "  (r.kind = 'event' AND (r.routing_key = ANY($3::text[]) OR r.routing_key LIKE '%.access\\_denied'))"
        "  OR (r.kind = 'outcome' AND o.result IN ('refused', 'failed'))) "
        "ORDER BY r.seq LIMIT $4",
        since, until, SECURITY_EVENT_KEYS, limit,
    )  # fmt: skip


# --- investigations ------------------------------------------------------------------------------

_INVESTIGATION = ("record_seq, kind, routing_key, actor, risk_score, status, assignee, notes, resolution, opened_at, "
                  "updated_at, closed_at")  # fmt: skip


async def investigation_for_update(conn: asyncpg.Connection, record_seq: int, kind: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_INVESTIGATION} FROM audit_investigation WHERE record_seq = $1 AND kind = $2 FOR UPDATE", record_seq, kind
    )


async def update_investigation(conn: asyncpg.Connection, record_seq: int, kind: str, *, status: str,
                               assignee: str | None, note: dict[str, Any] | None, resolution: str | None,
                               now: datetime) -> asyncpg.Record:  # fmt: skip
    return await conn.fetchrow(
        "UPDATE audit_investigation SET status = $3, assignee = $4, "
        "notes = CASE WHEN $5::text IS NULL THEN notes ELSE notes || jsonb_build_array($5::text::jsonb) END, "
        "resolution = coalesce($6, resolution), updated_at = $7, "
        "closed_at = CASE WHEN $3 = 'closed' THEN $7 ELSE closed_at END "
        f"WHERE record_seq = $1 AND kind = $2 RETURNING {_INVESTIGATION}",
        record_seq, kind, status, assignee, None if note is None else json.dumps(note), resolution, now,
    )  # fmt: skip


async def list_investigations(conn: asyncpg.Connection, *, status: str | None, kind: str | None,
                              before: tuple[datetime, int] | None, limit: int) -> list[asyncpg.Record]:  # fmt: skip
    """Newest first by (opened_at, record_seq)."""
    return await conn.fetch(
        f"SELECT {_INVESTIGATION} FROM audit_investigation WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::text IS NULL OR kind = $2) AND ($3::timestamptz IS NULL OR (opened_at, record_seq) < ($3, $4)) "
        "ORDER BY opened_at DESC, record_seq DESC LIMIT $5",
        status, kind, None if before is None else before[0], None if before is None else before[1], limit,
    )  # fmt: skip
