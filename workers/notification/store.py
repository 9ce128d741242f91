"""The notification worker's SQL, in plain asyncpg."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from workers.notification.domain.templates import Template

# --- recipients, accounts, preferences --------------------------------------------------------


async def learn_recipient(conn: asyncpg.Connection, customer_id: UUID, name: str, email: str | None,
                          phone: str | None, language: str, at: dt.datetime) -> None:  # fmt: skip
    """Newest wins: an older fact arriving late changes nothing."""
    await conn.execute(
        "INSERT INTO recipient (customer_id, name, email, phone, language, updated_at) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (customer_id) DO UPDATE SET name = $2, email = $3, phone = $4, language = $5, updated_at = $6 "
        "WHERE recipient.updated_at <= $6",
        customer_id, name, email, phone, language, at,
    )  # fmt: skip


async def learn_account(conn: asyncpg.Connection, account_id: UUID, customer_id: UUID, number: str) -> None:
    await conn.execute("INSERT INTO account_holder VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", account_id, customer_id, number)


async def recipient_and_preference(conn: asyncpg.Connection, customer_id: UUID, *,
                                   lock: bool = False) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:  # fmt: skip
    """What is known of the customer and their preferences, in one round trip (a decision reads
    both for every customer it notifies, two a payment). With `lock`, the recipient row is held
    until commit: one decision at a time per recipient, so two events at once cannot both count
    the same daily cap as not reached."""
    row = await conn.fetchrow(
        f"SELECT (SELECT r FROM recipient r WHERE customer_id = $1{' FOR UPDATE' if lock else ''}) AS recipient, "
        "(SELECT p FROM preference p WHERE customer_id = $1) AS preference",
        customer_id,
    )  # fmt: skip
    return row["recipient"], row["preference"]


async def lock_recipients(conn: asyncpg.Connection, customer_ids: Iterable[UUID], account_ids: Iterable[UUID],
                          user_ids: Iterable[UUID]) -> None:  # fmt: skip
    """Lock the recipients named directly, as the holders of accounts or as the customers of logins,
    in one statement and in customer id order (rows are locked as the sort returns them)."""
    await conn.execute(
        "SELECT customer_id FROM recipient WHERE customer_id IN (SELECT unnest($1::uuid[]) "
        "UNION SELECT customer_id FROM account_holder WHERE account_id = ANY($2::uuid[]) "
        "UNION SELECT customer_id FROM login WHERE user_id = ANY($3::uuid[])) ORDER BY customer_id FOR UPDATE",
        list(customer_ids), list(account_ids), list(user_ids),
    )  # fmt: skip


async def account_holder(conn: asyncpg.Connection, account_id: UUID | None) -> UUID | None:
    if account_id is None:
        return None
    return await conn.fetchval("SELECT customer_id FROM account_holder WHERE account_id = $1", account_id)


async def learn_login(conn: asyncpg.Connection, user_id: UUID, customer_id: UUID) -> None:
    await conn.execute("INSERT INTO login VALUES ($1, $2) ON CONFLICT DO NOTHING", user_id, customer_id)


async def customer_of_login(conn: asyncpg.Connection, user_id: UUID) -> UUID | None:
    return await conn.fetchval("SELECT customer_id FROM login WHERE user_id = $1", user_id)


async def preference(conn: asyncpg.Connection, customer_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM preference WHERE customer_id = $1", customer_id)


async def set_preference(conn: asyncpg.Connection, customer_id: UUID, rules: list[dict[str, Any]], consent: bool,
                         language: str | None, time_zone: str | None, quiet_start: dt.time, quiet_end: dt.time,
                         at: dt.datetime) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO preference VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (customer_id) DO UPDATE SET "
        "rules = $2, marketing_consent = $3, language = $4, time_zone = $5, quiet_start = $6, quiet_end = $7, "
        "updated_at = $8",
        customer_id, rules, consent, language, time_zone, quiet_start, quiet_end, at,
    )  # fmt: skip


async def sent_today(conn: asyncpg.Connection, customer_id: UUID, channels: list[str], since: dt.datetime) -> dict[str, int]:
    """Messages on each of `channels` counted against the recipient's daily cap (those not given
    up), in one query: channel -> count (absent: none)."""
    rows = await conn.fetch(
        "SELECT channel, count(*) AS n FROM notification WHERE customer_id = $1 AND channel = ANY($2::text[]) "
        "AND created_at >= $3 AND status NOT IN ('failed', 'cancelled') GROUP BY channel",
        customer_id, channels, since,
    )  # fmt: skip
    return {r["channel"]: r["n"] for r in rows}


# --- templates ------------------------------------------------------------------------------


def _template(row: asyncpg.Record) -> Template:
    return Template(row["key"], row["version"], row["language"], row["subject"], row["body"], row["html"])


async def template(conn: asyncpg.Connection, key: str, language: str, fallback: str) -> Template | None:
    """The latest version in `language`, else in `fallback`."""
    row = await conn.fetchrow(
        "SELECT * FROM template WHERE key = $1 AND language = ANY($2::text[]) "
        "ORDER BY language = $3 DESC, version DESC LIMIT 1",
        key, [language, fallback], language,
    )  # fmt: skip
    return None if row is None else _template(row)


async def latest_templates(conn: asyncpg.Connection, key: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT DISTINCT ON (key, language) * FROM template WHERE $1::text IS NULL OR key = $1 "
        "ORDER BY key, language, version DESC",
        key,
    )


async def add_template(conn: asyncpg.Connection, key: str, language: str, subject: str, body: str, html: str | None,
                       by: str, at: dt.datetime) -> asyncpg.Record:  # fmt: skip
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('notification.template:' || $1 || ':' || $2))", key, language)
    return await conn.fetchrow(
        "INSERT INTO template SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7 FROM template "
        "WHERE key = $1 AND language = $2 RETURNING *",
        key, language, subject, body, html, by, at,
    )  # fmt: skip


async def seed_templates(conn: asyncpg.Connection, templates: Sequence[Template], at: dt.datetime) -> None:
    await conn.executemany(
        "INSERT INTO template VALUES ($1, $2, $3, $4, $5, $6, 'system', $7) ON CONFLICT DO NOTHING",
        [(t.key, t.language, t.version, t.subject, t.body, t.html, at) for t in templates],
    )


# --- webhook endpoints --------------------------------------------------------------------------


async def add_endpoint(conn: asyncpg.Connection, endpoint_id: UUID, url: str, secret: str, categories: list[str],
                       customer_id: UUID | None, owner: str, at: dt.datetime) -> asyncpg.Record | None:  # fmt: skip
    return await conn.fetchrow(
        "INSERT INTO webhook_endpoint (endpoint_id, url, secret, categories, customer_id, owner, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING *",
        endpoint_id, url, secret, categories, customer_id, owner, at,
    )  # fmt: skip


async def endpoint(conn: asyncpg.Connection, endpoint_id: UUID, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT * FROM webhook_endpoint WHERE endpoint_id = $1{' FOR UPDATE' if lock else ''}",
                               endpoint_id)  # fmt: skip


async def endpoints(conn: asyncpg.Connection, owner: str | None) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM webhook_endpoint WHERE $1::text IS NULL OR owner = $1 ORDER BY created_at", owner)


async def endpoints_for(conn: asyncpg.Connection, category: str, customer_id: UUID | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM webhook_endpoint WHERE enabled AND $1 = ANY(categories) "
        "AND (customer_id IS NULL OR customer_id = $2) ORDER BY endpoint_id",
        category, customer_id,
    )  # fmt: skip


async def endpoint_result(conn: asyncpg.Connection, endpoint_id: UUID, ok: bool, disable_after: int,
                          at: dt.datetime) -> asyncpg.Record:  # fmt: skip
    """Count a failure in a row (disabling the endpoint at `disable_after`), or clear the count."""
    return await conn.fetchrow(
        "UPDATE webhook_endpoint SET consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END, "
        "enabled = enabled AND ($2 OR consecutive_failures + 1 < $3), "
        "disabled_at = CASE WHEN enabled AND NOT $2 AND consecutive_failures + 1 >= $3 THEN $4 ELSE disabled_at END "
        "WHERE endpoint_id = $1 RETURNING *",
        endpoint_id, ok, disable_after, at,
    )  # fmt: skip


async def enable_endpoint(conn: asyncpg.Connection, endpoint_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE webhook_endpoint SET enabled = true, consecutive_failures = 0, disabled_at = NULL "
        "WHERE endpoint_id = $1 RETURNING *",
        endpoint_id,
    )


# --- notifications ------------------------------------------------------------------------------

_COLUMNS = ("notification_id", "customer_id", "endpoint_id", "address", "channel", "category", "priority", "template",
            "template_version", "language", "subject", "body", "html", "payload", "status", "scheduled_at",
            "expires_at", "created_at", "updated_at", "error_code", "error", "correlation_id", "cause")  # fmt: skip


async def add_notification(conn: asyncpg.Connection, row: dict[str, Any]) -> bool:
    placeholders = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1))
    added = await conn.fetchval(
        f"INSERT INTO notification ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
        "ON CONFLICT (notification_id) DO NOTHING RETURNING 1",
        *(row.get(c, "" if c in ("subject", "body") else None) for c in _COLUMNS),
    )  # fmt: skip
    return added is not None


async def expire(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE notification SET status = 'cancelled', error_code = 'expired', error = 'unsent before it expired', "
        "updated_at = $1 WHERE notification_id IN (SELECT notification_id FROM notification "
        "WHERE status IN ('pending', 'retry') AND expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING *",
        now, limit,
    )  # fmt: skip


async def interrupted(conn: asyncpg.Connection, before: dt.datetime, now: dt.datetime, limit: int) -> list[asyncpg.Record]:
    """Attempts left `sending` past their lease (the sender died mid-send): marked interrupted;
    their notifications are returned, locked, to be retried or failed."""
    rows = await conn.fetch(
        "UPDATE delivery_attempt SET status = 'interrupted', finished_at = $2, error_code = 'interrupted' "
        "WHERE (notification_id, attempt) IN (SELECT notification_id, attempt FROM delivery_attempt "
        "WHERE status = 'sending' AND started_at < $1 LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING notification_id",
        before, now, limit,
    )  # fmt: skip
    ids = [r["notification_id"] for r in rows]
    return await conn.fetch("SELECT * FROM notification WHERE notification_id = ANY($1) AND status = 'sending' FOR UPDATE",
                            ids)  # fmt: skip


async def due(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[asyncpg.Record]:
    """Due notifications, most urgent first, locked; others' claims are skipped."""
    return await conn.fetch(
        "SELECT * FROM notification WHERE status IN ('pending', 'retry') AND scheduled_at <= $1 "
        "ORDER BY CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, scheduled_at "
        "LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )  # fmt: skip


async def provider_counts(conn: asyncpg.Connection, provider: str, now: dt.datetime,
                          windows: Sequence[dt.timedelta]) -> tuple[dict[dt.timedelta, int], dict[dt.timedelta, dt.datetime]]:  # fmt: skip
    counts: dict[dt.timedelta, int] = {}
    oldest: dict[dt.timedelta, dt.datetime] = {}
    for window in windows:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, min(started_at) AS first FROM delivery_attempt WHERE provider = $1 AND started_at > $2",
            provider, now - window,
        )  # fmt: skip
        counts[window] = row["n"]
        if row["first"] is not None:
            oldest[window] = row["first"]
    return counts, oldest


async def postpone(conn: asyncpg.Connection, notification_id: UUID, until: dt.datetime, now: dt.datetime) -> None:
    await conn.execute("UPDATE notification SET scheduled_at = $2, updated_at = $3 WHERE notification_id = $1",
                       notification_id, until, now)  # fmt: skip


async def start_attempt(conn: asyncpg.Connection, notification_id: UUID, channel: str, provider: str, sender: str,
                        now: dt.datetime) -> int:  # fmt: skip
    attempt: int = await conn.fetchval(
        "UPDATE notification SET status = 'sending', attempts = attempts + 1, updated_at = $2 "
        "WHERE notification_id = $1 RETURNING attempts",
        notification_id, now,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO delivery_attempt (notification_id, attempt, channel, provider, sender, status, started_at) "
        "VALUES ($1, $2, $3, $4, $5, 'sending', $6)",
        notification_id, attempt, channel, provider, sender, now,
    )  # fmt: skip
    return attempt


async def claimed_by(conn: asyncpg.Connection, sender: str, skip: Sequence[tuple[UUID, int]],
                     limit: int) -> list[asyncpg.Record]:  # fmt: skip
    """This sender's attempts still `sending` (committed by its claim), with their notification."""
    skipped = [f"{n}:{a}" for n, a in skip]
    return await conn.fetch(
        "SELECT n.*, d.attempt, d.provider, d.started_at FROM delivery_attempt d "
        "JOIN notification n USING (notification_id) WHERE d.sender = $1 AND d.status = 'sending' "
        "AND NOT (d.notification_id::text || ':' || d.attempt) = ANY($2::text[]) "
        "ORDER BY d.started_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
        sender, skipped, limit,
    )  # fmt: skip


async def finish_attempt(conn: asyncpg.Connection, notification_id: UUID, attempt: int, ok: bool,
                         provider_message_id: str | None, response: str | None, error_code: str | None,
                         retry_after_s: float | None, started_at: dt.datetime, now: dt.datetime) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE delivery_attempt SET status = $3, provider_message_id = $4, response = $5, error_code = $6, "
        "retry_after_s = $7, finished_at = $8, duration_ms = $9 WHERE notification_id = $1 AND attempt = $2",
        notification_id, attempt, "ok" if ok else "failed", provider_message_id, (response or "")[:2000] or None,
        error_code, retry_after_s, now, max(0, int((now - started_at).total_seconds() * 1000)),
    )  # fmt: skip


async def set_status(conn: asyncpg.Connection, notification_id: UUID, status: str, now: dt.datetime, *,
                     scheduled_at: dt.datetime | None = None, error_code: str | None = None,
                     error: str | None = None) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE notification SET status = $2, updated_at = $3, scheduled_at = coalesce($4, scheduled_at), "
        "error_code = coalesce($5, error_code), error = coalesce($6, error) WHERE notification_id = $1",
        notification_id, status, now, scheduled_at, error_code, (error or "")[:2000] or None,
    )  # fmt: skip


async def inbox(conn: asyncpg.Connection, customer_id: UUID, unread_only: bool, before: tuple[dt.datetime, UUID] | None,
                limit: int) -> list[asyncpg.Record]:  # fmt: skip
    return await conn.fetch(
        "SELECT * FROM notification WHERE customer_id = $1 AND channel = 'in_app' AND (NOT $2 OR read_at IS NULL) "
        "AND ($3::timestamptz IS NULL OR (created_at, notification_id) < ($3, $4)) "
        "ORDER BY created_at DESC, notification_id DESC LIMIT $5",
        customer_id, unread_only, before[0] if before else None, before[1] if before else None, limit,
    )  # fmt: skip


async def mark_read(conn: asyncpg.Connection, customer_id: UUID, ids: list[UUID], at: dt.datetime) -> int:
    result = await conn.execute(
        "UPDATE notification SET read_at = $3 WHERE customer_id = $1 AND channel = 'in_app' "
        "AND notification_id = ANY($2) AND read_at IS NULL",
        customer_id, ids, at,
    )  # fmt: skip
    return int(result.split()[-1])


async def notification(conn: asyncpg.Connection, notification_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM notification WHERE notification_id = $1", notification_id)


async def statistics(conn: asyncpg.Connection, since: dt.datetime) -> list[asyncpg.Record]:
    """Per channel per (UTC) day: how many were made, and how many are in each status now."""
    return await conn.fetch(
        "SELECT created_at::date AS day, channel, status, count(*) AS n FROM notification WHERE created_at >= $1 "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        since,
    )


async def add_sms(conn: asyncpg.Connection, notification_id: UUID, attempt: int, phone: str, body: str,
                  at: dt.datetime) -> int:  # fmt: skip
    return await conn.fetchval(
        "INSERT INTO sms_message (notification_id, attempt, phone, body, created_at) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING seq",
        notification_id, attempt, phone, body, at,
    )  # fmt: skip
