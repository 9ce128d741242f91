"""The day worker's SQL, in plain asyncpg."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from contracts.day import DayStatus, StepStatus
from workers.day.domain import Day


async def lock_day(conn: asyncpg.Connection) -> Day | None:
    """The business day, locked until commit: one close, one date change at a time."""
    row = await conn.fetchrow("SELECT business_date, status FROM business_day WHERE id FOR UPDATE")
    return None if row is None else Day(row["business_date"], DayStatus(row["status"]))


async def read_day(conn: asyncpg.Connection) -> tuple[Day, dt.date | None] | None:
    row = await conn.fetchrow("SELECT business_date, status, last_closed FROM business_day WHERE id")
    return None if row is None else (Day(row["business_date"], DayStatus(row["status"])), row["last_closed"])


async def open_first_day(conn: asyncpg.Connection, business_date: dt.date) -> bool:
    """True when this call opened the bank's first day (a second replica finds it open)."""
    inserted = await conn.fetchval(
        "INSERT INTO business_day (business_date, status) VALUES ($1, 'open') ON CONFLICT (id) DO NOTHING RETURNING 1",
        business_date,
    )
    return inserted is not None


async def set_day(conn: asyncpg.Connection, business_date: dt.date, status: DayStatus, last_closed: dt.date | None) -> None:
    await conn.execute(
        "UPDATE business_day SET business_date = $1, status = $2, last_closed = coalesce($3, last_closed), "
        "updated_at = clock_timestamp() WHERE id",
        business_date, status.value, last_closed,
    )  # fmt: skip


async def steps(conn: asyncpg.Connection, business_date: dt.date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT step, status, error, attempts, reported_at, result FROM cob_step WHERE business_date = $1", business_date
    )


async def ensure_steps(conn: asyncpg.Connection, business_date: dt.date, names: list[str]) -> None:
    await conn.execute(
        "INSERT INTO cob_step (business_date, step, status) SELECT $1, s, 'waiting' FROM unnest($2::text[]) AS s "
        "ON CONFLICT DO NOTHING",
        business_date, names,
    )  # fmt: skip


async def reset_steps(conn: asyncpg.Connection, business_date: dt.date) -> None:
    await conn.execute(
        "UPDATE cob_step SET status = 'waiting', error = NULL, result = NULL, attempts = 0, asked_at = NULL, "
        "reported_at = NULL WHERE business_date = $1",
        business_date,
    )  # fmt: skip


async def mark_asked(conn: asyncpg.Connection, business_date: dt.date, step: str) -> None:
    await conn.execute(
        "INSERT INTO cob_step AS s (business_date, step, status, attempts, asked_at) "
        "VALUES ($1, $2, 'pending', 1, clock_timestamp()) ON CONFLICT (business_date, step) DO UPDATE "
        "SET status = 'pending', error = NULL, attempts = s.attempts + 1, asked_at = clock_timestamp()",
        business_date, step,
    )  # fmt: skip


async def report(
    conn: asyncpg.Connection, business_date: dt.date, step: str, status: StepStatus, error: str | None,
    result: dict[str, Any] | None,
) -> bool:  # fmt: skip
    """Record a step's outcome; False when the step was not pending (a repeat, or not asked)."""
    done = await conn.fetchval(
        "UPDATE cob_step SET status = $3, error = $4, result = $5, reported_at = clock_timestamp() "
        "WHERE business_date = $1 AND step = $2 AND status = 'pending' RETURNING 1",
        business_date, step, status.value, error, result,
    )  # fmt: skip
    return done is not None


async def unreported_since(conn: asyncpg.Connection, business_date: dt.date, seconds: float) -> list[str]:
    rows = await conn.fetch(
        "SELECT step FROM cob_step WHERE business_date = $1 AND status = 'pending' "
        "AND asked_at < clock_timestamp() - make_interval(secs => $2)",
        business_date, seconds,
    )  # fmt: skip
    return [r["step"] for r in rows]


async def record_closed(
    conn: asyncpg.Connection, business_date: dt.date, next_date: dt.date, trial_balance: list[dict[str, Any]]
) -> None:
    await conn.execute(
        "INSERT INTO closed_day (business_date, next_business_date, trial_balance) VALUES ($1, $2, $3)",
        business_date, next_date, trial_balance,
    )  # fmt: skip


async def holidays(conn: asyncpg.Connection, since: dt.date | None = None, limit: int = 10_000) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT holiday_date, name FROM holiday WHERE removed_at IS NULL AND ($1::date IS NULL OR holiday_date >= $1) "
        "ORDER BY holiday_date LIMIT $2",
        since, limit,
    )  # fmt: skip


async def holiday_dates(conn: asyncpg.Connection, since: dt.date) -> set[dt.date]:
    return {r["holiday_date"] for r in await holidays(conn, since)}


async def put_holiday(conn: asyncpg.Connection, date: dt.date, name: str, actor: str) -> None:
    await conn.execute(
        "INSERT INTO holiday (holiday_date, name, added_by) VALUES ($1, $2, $3) ON CONFLICT (holiday_date) DO UPDATE "
        "SET name = $2, added_by = $3, removed_at = NULL, updated_at = clock_timestamp()",
        date, name, actor,
    )  # fmt: skip


async def remove_holiday(conn: asyncpg.Connection, date: dt.date) -> str | None:
    """The removed holiday's name, or None when there was none."""
    return await conn.fetchval(
        "UPDATE holiday SET removed_at = clock_timestamp(), updated_at = clock_timestamp() "
        "WHERE holiday_date = $1 AND removed_at IS NULL RETURNING name",
        date,
    )


def jsonb(value: Any) -> Any:
    """What a jsonb column gives back (the pool's codec decodes it; a bare text is parsed)."""
    return json.loads(value) if isinstance(value, str) else value
