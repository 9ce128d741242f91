"""The business date as a worker learns it from `day.opened` (banking-rules §0): each worker that
needs it keeps one row in its own schema's `business_day` table (id true, business_date, as_of),
made by its own migration. The newest event wins; one that arrives late changes nothing."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg


async def learn_business_date(conn: asyncpg.Connection, business_date: date, as_of: datetime) -> None:
    await conn.execute(
        "INSERT INTO business_day (business_date, as_of) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE "
        "SET business_date = $1, as_of = $2 WHERE business_day.as_of < $2",
        business_date, as_of,
    )  # fmt: skip


async def business_date(conn: asyncpg.Connection) -> date | None:
    return await conn.fetchval("SELECT business_date FROM business_day WHERE id")
