"""The loan worker's SQL, in plain asyncpg."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from contracts.loan import LoanProductTerms, LoanProductView


async def learn_business_date(conn: asyncpg.Connection, business_date: date, as_of: datetime) -> None:
    """The newest `day.opened` wins; one that arrives late changes nothing."""
    await conn.execute(
        "INSERT INTO business_day (business_date, as_of) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE "
        "SET business_date = $1, as_of = $2 WHERE business_day.as_of < $2",
        business_date, as_of,
    )  # fmt: skip


async def business_date(conn: asyncpg.Connection) -> date | None:
    return await conn.fetchval("SELECT business_date FROM business_day WHERE id")


# --- products ------------------------------------------------------------------------------------

_PRODUCT_COLUMNS = "code, version, terms, defined_by, defined_at"


def _product(row: asyncpg.Record) -> LoanProductView:
    return LoanProductView.model_validate({**row["terms"], "code": row["code"], "version": row["version"],
                                           "defined_by": row["defined_by"], "defined_at": row["defined_at"]})  # fmt: skip


async def product(conn: asyncpg.Connection, code: str, version: int | None = None) -> LoanProductView | None:
    """A product's version, or its newest."""
    row = await conn.fetchrow(
        f"SELECT {_PRODUCT_COLUMNS} FROM loan_product_version WHERE code = $1 AND ($2::int IS NULL OR version = $2) "
        "ORDER BY version DESC LIMIT 1",
        code, version,
    )  # fmt: skip
    return _product(row) if row else None


async def newest_products(conn: asyncpg.Connection) -> list[LoanProductView]:
    rows = await conn.fetch(f"SELECT DISTINCT ON (code) {_PRODUCT_COLUMNS} FROM loan_product_version ORDER BY code, version DESC")
    return [_product(r) for r in rows]


async def lock_products(conn: asyncpg.Connection) -> None:
    """Versions are numbered one after another: definitions take turns (they are rare)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('loan.loan_product_version'))")


async def insert_product(conn: asyncpg.Connection, code: str, version: int, terms: LoanProductTerms, defined_by: str,
                         defined_at: datetime) -> LoanProductView:  # fmt: skip
    row = await conn.fetchrow(
        f"INSERT INTO loan_product_version ({_PRODUCT_COLUMNS}, type, currency) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        f"RETURNING {_PRODUCT_COLUMNS}",
        code, version, terms.model_dump(mode="json"), defined_by, defined_at, terms.type.value, terms.currency,
    )  # fmt: skip
    return _product(row)
