"""The account worker's SQL, in plain asyncpg."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from contracts.account import AccountView, HoldView
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


# --- holds and liens ---------------------------------------------------------------------------

_HOLD_COLUMNS = ("hold_id, account_id, kind, amount, currency, reason, status, placed_by, placed_at, expires_at, "
                 "released_at, refusal")  # fmt: skip


def _hold(row: asyncpg.Record) -> HoldView:
    return HoldView(**{k: (v.strip() if k == "currency" else v) for k, v in dict(row).items() if k != "expires_in_s"})


async def insert_hold(conn: asyncpg.Connection, hold: HoldView, expires_in_s: int | None) -> None:
    await conn.execute(
        "INSERT INTO account_hold (hold_id, account_id, kind, amount, currency, reason, status, placed_by, placed_at, "
        "expires_in_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        hold.hold_id, hold.account_id, hold.kind.value, hold.amount, hold.currency, hold.reason, hold.status.value,
        hold.placed_by, hold.placed_at, expires_in_s,
    )  # fmt: skip


async def get_hold(conn: asyncpg.Connection, hold_id: UUID, *, for_update: bool = False) -> HoldView | None:
    row = await conn.fetchrow(
        f"SELECT {_HOLD_COLUMNS} FROM account_hold WHERE hold_id = $1{' FOR UPDATE' if for_update else ''}", hold_id
    )
    return None if row is None else _hold(row)


async def hold_expiry(conn: asyncpg.Connection, hold_id: UUID) -> int | None:
    return await conn.fetchval("SELECT expires_in_s FROM account_hold WHERE hold_id = $1", hold_id)


async def set_hold(conn: asyncpg.Connection, hold_id: UUID, status: str, *, expires_at: datetime | None = None,
                   released_at: datetime | None = None, refusal: str | None = None) -> HoldView:  # fmt: skip
    row = await conn.fetchrow(
        f"UPDATE account_hold SET status = $2, expires_at = coalesce($3, expires_at), "
        f"released_at = coalesce($4, released_at), refusal = coalesce($5, refusal) WHERE hold_id = $1 "
        f"RETURNING {_HOLD_COLUMNS}",
        hold_id, status, expires_at, released_at, refusal,
    )  # fmt: skip
    assert row is not None
    return _hold(row)


async def holds(conn: asyncpg.Connection, account_id: UUID, limit: int) -> list[HoldView]:
    rows = await conn.fetch(
        f"SELECT {_HOLD_COLUMNS} FROM account_hold WHERE account_id = $1 ORDER BY placed_at DESC, hold_id LIMIT $2",
        account_id, limit,
    )  # fmt: skip
    return [_hold(r) for r in rows]
