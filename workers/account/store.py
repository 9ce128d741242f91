"""The account worker's SQL, in plain asyncpg."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.account import AccountView
from workers.account.domain import CustomerStanding, StatusChange

_ACCOUNT_COLUMNS = (
    "account_id, number, customer_id, product_code, type, currency, status, status_before_freeze, "
    "ledger_account_id, trim(branch) AS branch, nickname, opened_at, closed_at, version"
)


def _view(row: asyncpg.Record) -> AccountView:
    return AccountView.model_validate(dict(row))


async def customer_standing(conn: asyncpg.Connection, customer_id: UUID) -> CustomerStanding | None:
    row = await conn.fetchrow("SELECT status, kyc_status FROM customer_standing WHERE customer_id = $1", customer_id)
    return CustomerStanding(status=row["status"], kyc_status=row["kyc_status"]) if row else None


async def record_standing(
    conn: asyncpg.Connection, customer_id: UUID, status: str, kyc_status: str, as_of: datetime
) -> None:
    """Keep the newest standing; events may arrive in any order."""
    await conn.execute(
        "INSERT INTO customer_standing (customer_id, status, kyc_status, as_of) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (customer_id) DO UPDATE SET status = EXCLUDED.status, kyc_status = EXCLUDED.kyc_status, "
        "as_of = EXCLUDED.as_of WHERE customer_standing.as_of <= EXCLUDED.as_of",
        customer_id,
        status,
        kyc_status,
        as_of,
    )


async def next_sequence(conn: asyncpg.Connection, branch: str) -> int:
    return await conn.fetchval(
        "INSERT INTO branch_sequence (branch, last_used) VALUES ($1, 1) "
        "ON CONFLICT (branch) DO UPDATE SET last_used = branch_sequence.last_used + 1 RETURNING last_used",
        branch,
    )


async def get_account(conn: asyncpg.Connection, account_id: UUID, *, for_update: bool = False) -> AccountView | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE account_id = $1{lock}", account_id)
    return _view(row) if row else None


async def insert_account(conn: asyncpg.Connection, account: AccountView) -> None:
    await conn.execute(
        "INSERT INTO account (account_id, number, customer_id, product_code, type, currency, status, "
        "ledger_account_id, branch, nickname, opened_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        account.account_id,
        account.number,
        account.customer_id,
        account.product_code,
        account.type.value,
        account.currency,
        account.status.value,
        account.ledger_account_id,
        account.branch,
        account.nickname,
        account.opened_at,
    )


async def change_status(
    conn: asyncpg.Connection, account_id: UUID, change: StatusChange, now: datetime
) -> AccountView:
    row = await conn.fetchrow(
        "UPDATE account SET status = $2, status_before_freeze = $3, version = version + 1, "
        "closed_at = CASE WHEN $2 = 'closed' THEN $4 ELSE closed_at END "
        f"WHERE account_id = $1 RETURNING {_ACCOUNT_COLUMNS}",
        account_id,
        change.status.value,
        change.status_before_freeze.value if change.status_before_freeze else None,
        now,
    )
    assert row is not None, "status change of an account that was just locked"
    return _view(row)


async def customer_accounts(
    conn: asyncpg.Connection, customer_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[AccountView]:
    if after is None:
        rows = await conn.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE customer_id = $1 "
            "ORDER BY opened_at, account_id LIMIT $2",
            customer_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE customer_id = $1 AND (opened_at, account_id) > ($2, $3) "
            "ORDER BY opened_at, account_id LIMIT $4",
            customer_id,
            after[0],
            after[1],
            limit,
        )
    return [_view(r) for r in rows]
