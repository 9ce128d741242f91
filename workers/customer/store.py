"""The customer worker's SQL, in plain asyncpg.

A customer is stored whole, as its CustomerView in `data`; the other columns are copies kept
for the unique indexes and for search.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from contracts.customer import CustomerError, CustomerView
from workers.customer.domain.profile import full_name

# Which unique index a clash hit -> the refusal it means (index names: migrations/0001).
_DUPLICATES: dict[str, CustomerError] = {
    "customer_pkey": CustomerError.duplicate_customer,
    "customer_email_key": CustomerError.duplicate_email,
    "customer_national_id_key": CustomerError.duplicate_national_id,
}


def _search_text(customer: CustomerView) -> str:
    parts = (full_name(customer), customer.customer_number, customer.email, customer.phone, customer.national_id)
    return " ".join(part for part in parts if part).lower()


_COLUMNS = (
    "customer_id, customer_number, email, national_id, phone, status, kyc_status, search_text, "
    "version, created_at, updated_at, data"
)


def _columns(customer: CustomerView) -> tuple[object, ...]:
    """$1..$12 of insert and save, in the order of _COLUMNS."""
    return (
        customer.customer_id,
        customer.customer_number,
        customer.email,
        customer.national_id,
        customer.phone,
        customer.status.value,
        customer.kyc_status.value,
        _search_text(customer),
        customer.version,
        customer.created_at,
        customer.updated_at,
        customer.model_dump(mode="json"),
    )


async def next_customer_number(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT nextval('customer_number_seq')")


async def load(conn: asyncpg.Connection, customer_id: UUID, *, for_update: bool = False) -> CustomerView | None:
    lock = " FOR UPDATE" if for_update else ""
    data = await conn.fetchval(f"SELECT data FROM customer WHERE customer_id = $1{lock}", customer_id)
    return CustomerView.model_validate(data) if data is not None else None


async def insert(conn: asyncpg.Connection, customer: CustomerView) -> CustomerError | None:
    """Insert a new customer; the duplicate refusal when a unique index says no."""
    return await _guarded(
        conn,
        f"INSERT INTO customer ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        customer,
    )


async def save(conn: asyncpg.Connection, customer: CustomerView) -> CustomerError | None:
    """Store a changed customer, loaded FOR UPDATE in this transaction (so `version - 1` is the
    stored version); the duplicate refusal when a changed email or national id is taken."""
    return await _guarded(
        conn,
        "UPDATE customer SET customer_number = $2, email = $3, national_id = $4, phone = $5, status = $6, "
        "kyc_status = $7, search_text = $8, version = $9, created_at = $10, updated_at = $11, data = $12 "
        "WHERE customer_id = $1 AND version = $9 - 1",
        customer,
        expect_one=True,
    )


async def _guarded(
    conn: asyncpg.Connection, sql: str, customer: CustomerView, *, expect_one: bool = False
) -> CustomerError | None:
    # A savepoint: a unique violation undoes this statement only, so the refusal can still be
    # stored in the inbox by the enclosing transaction. A concurrent writer of the same email
    # blocks on the index until it commits, then one of the two gets the violation.
    try:
        async with conn.transaction():
            status = await conn.execute(sql, *_columns(customer))
    except asyncpg.UniqueViolationError as exc:
        code = _DUPLICATES.get(exc.constraint_name or "")
        assert code is not None, f"unexpected unique violation: {exc.constraint_name}"
        return code
    assert not expect_one or status == "UPDATE 1", f"save of customer {customer.customer_id} not locked: {status}"
    return None


async def search(
    conn: asyncpg.Connection, query: str, *, after_number: str | None, limit: int
) -> list[CustomerView]:
    """Customers whose name, number, email, phone or national id contains `query`, in
    customer_number order, after the one the cursor names."""
    pattern = "%" + _escape_like(query.strip().lower()) + "%"
    rows = await conn.fetch(
        "SELECT data FROM customer WHERE search_text LIKE $1 AND ($2::text IS NULL OR customer_number > $2) "
        "ORDER BY customer_number LIMIT $3",
        pattern,
        after_number,
        limit,
    )
    return [CustomerView.model_validate(r["data"]) for r in rows]


def _escape_like(text: str) -> str:
    """`%` and `_` typed by a user are literal characters, not wildcards (`\\` is LIKE's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def product_opened(conn: asyncpg.Connection, product_id: UUID, customer_id: UUID, kind: str) -> None:
    await conn.execute(
        "INSERT INTO open_product (product_id, customer_id, kind) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        product_id,
        customer_id,
        kind,
    )


async def product_closed(conn: asyncpg.Connection, product_id: UUID, customer_id: UUID, kind: str) -> None:
    await conn.execute(
        "INSERT INTO open_product (product_id, customer_id, kind, closed) VALUES ($1, $2, $3, true) "
        "ON CONFLICT (product_id) DO UPDATE SET closed = true",
        product_id,
        customer_id,
        kind,
    )


async def open_products(conn: asyncpg.Connection, customer_id: UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM open_product WHERE customer_id = $1 AND NOT closed", customer_id)
