"""The account worker's SQL, in plain asyncpg."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from bus.business_day import business_date, learn_business_date  # noqa: F401  (this worker's store speaks for it)
from contracts.account import AccountView, HoldView, ProductTerms, ProductView
from workers.account.domain.accounts import CustomerStanding, StatusChange

_ACCOUNT_COLUMNS = (
    "account_id, number, customer_id, product_code, product_version, type, currency, status, status_before_freeze, "
    "ledger_account_id, trim(branch) AS branch, nickname, opened_at, closed_at, overdraft_limit, last_customer_activity_at, version"
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


# --- products ----------------------------------------------------------------------------------

_PRODUCT_COLUMNS = "code, version, terms, defined_by, defined_at"


def _product(row: asyncpg.Record) -> ProductView:
    return ProductView.model_validate({**row["terms"], "code": row["code"], "version": row["version"],
                                       "defined_by": row["defined_by"], "defined_at": row["defined_at"]})  # fmt: skip


async def product(conn: asyncpg.Connection, code: str, version: int | None = None) -> ProductView | None:
    """A product's version, or its newest."""
    row = await conn.fetchrow(
        f"SELECT {_PRODUCT_COLUMNS} FROM product_version WHERE code = $1 AND ($2::int IS NULL OR version = $2) "
        "ORDER BY version DESC LIMIT 1",
        code, version,
    )  # fmt: skip
    return _product(row) if row else None


async def newest_products(conn: asyncpg.Connection) -> list[ProductView]:
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (code) {_PRODUCT_COLUMNS} FROM product_version ORDER BY code, version DESC"
    )
    return [_product(r) for r in rows]


async def lock_products(conn: asyncpg.Connection) -> None:
    """Versions are numbered one after another: definitions take turns (they are rare)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('account.product_version'))")


async def insert_product(conn: asyncpg.Connection, code: str, version: int, terms: ProductTerms, defined_by: str,
                         defined_at: datetime) -> ProductView:  # fmt: skip
    row = await conn.fetchrow(
        f"INSERT INTO product_version ({_PRODUCT_COLUMNS}, type, currency) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        f"RETURNING {_PRODUCT_COLUMNS}",
        code, version, terms.model_dump(mode="json"), defined_by, defined_at, terms.type.value, terms.currency,
    )  # fmt: skip
    return _product(row)


# --- accounts ----------------------------------------------------------------------------------


async def get_account(conn: asyncpg.Connection, account_id: UUID, *, for_update: bool = False) -> AccountView | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE account_id = $1{lock}", account_id)
    return _view(row) if row else None


async def insert_account(conn: asyncpg.Connection, account: AccountView) -> None:
    await conn.execute(
        "INSERT INTO account (account_id, number, customer_id, product_code, type, currency, status, "
        "ledger_account_id, branch, nickname, opened_at, product_version, last_customer_activity_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11)",
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
        account.product_version,
    )


async def change_status(
    conn: asyncpg.Connection, account_id: UUID, change: StatusChange, now: datetime
) -> AccountView:
    row = await conn.fetchrow(
        "UPDATE account SET status = $2, status_before_freeze = $3, version = version + 1, "
        "closed_at = CASE WHEN $2 = 'closed' THEN $4 ELSE closed_at END, "
        "closed_on = CASE WHEN $2 = 'closed' THEN (SELECT business_date FROM business_day WHERE id) ELSE closed_on END "
        f"WHERE account_id = $1 RETURNING {_ACCOUNT_COLUMNS}",
        account_id,
        change.status.value,
        change.status_before_freeze.value if change.status_before_freeze else None,
        now,
    )
    assert row is not None, "status change of an account that was just locked"
    return _view(row)


async def set_overdraft(conn: asyncpg.Connection, account_id: UUID, overdraft: int) -> AccountView:
    row = await conn.fetchrow(
        f"UPDATE account SET overdraft_limit = $2, version = version + 1 WHERE account_id = $1 RETURNING {_ACCOUNT_COLUMNS}",
        account_id, overdraft,
    )  # fmt: skip
    assert row is not None, "the overdraft of an account that was just locked"
    return _view(row)


async def migrate_product(conn: asyncpg.Connection, account_id: UUID, version: int) -> AccountView:
    row = await conn.fetchrow(
        f"UPDATE account SET product_version = $2, version = version + 1 WHERE account_id = $1 RETURNING {_ACCOUNT_COLUMNS}",
        account_id, version,
    )  # fmt: skip
    assert row is not None
    return _view(row)


async def customer_activity(conn: asyncpg.Connection, account_id: UUID, at: datetime) -> None:
    """The customer acted on the account at `at` (facts may arrive late or twice: the newest wins)."""
    await conn.execute(
        "UPDATE account SET last_customer_activity_at = $2 WHERE account_id = $1 AND last_customer_activity_at < $2",
        account_id, at,
    )  # fmt: skip


async def dormancy_due(conn: asyncpg.Connection, inactive_since: datetime, limit: int) -> list[AccountView]:
    """Active accounts without customer activity since `inactive_since`, locked (skipping those a
    concurrent change holds: they are looked at again by the next close)."""
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE status = 'active' AND last_customer_activity_at < $1 "
        "AND type NOT IN ('fixed_deposit', 'recurring_deposit') "
        "ORDER BY last_customer_activity_at, account_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        inactive_since, limit,
    )  # fmt: skip
    return [_view(r) for r in rows]


async def open_accounts_of(conn: asyncpg.Connection, customer_id: UUID) -> list[AccountView]:
    """A customer's accounts not closed (nor failed to open), oldest first, locked."""
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE customer_id = $1 AND status NOT IN ('closed', 'opening') "
        "ORDER BY opened_at, account_id FOR UPDATE",
        customer_id,
    )  # fmt: skip
    return [_view(r) for r in rows]


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


# --- interest (close of business's `account.interest` step) ----------------------------------------


async def interest_run(conn: asyncpg.Connection, business_date: date, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM interest_run WHERE business_date = $1{lock}", business_date)


async def start_interest_run(conn: asyncpg.Connection, business_date: date, covers_until: date, *,
                             new_close: bool) -> asyncpg.Record:  # fmt: skip
    """The date's run, begun now or earlier (a repeated ask finds it), locked; a new close of the
    date (a bank set back to it) runs it again (what was accrued or posted adds nothing twice)."""
    if new_close:
        await conn.execute("UPDATE interest_run SET status = 'accruing', cursor = NULL, accounts = 0, covers_until = $2 "
                           "WHERE business_date = $1", business_date, covers_until)  # fmt: skip
    await conn.execute(
        "INSERT INTO interest_run (business_date, covers_until, status) VALUES ($1, $2, 'accruing') ON CONFLICT DO NOTHING",
        business_date, covers_until,
    )  # fmt: skip
    run = await interest_run(conn, business_date, for_update=True)
    assert run is not None
    return run


async def advance_interest_run(
    conn: asyncpg.Connection, business_date: date, *, cursor: UUID | None, accounts: int, status: str
) -> None:
    await conn.execute(
        "UPDATE interest_run SET cursor = $2, accounts = accounts + $3, status = $4, updated_at = clock_timestamp() "
        "WHERE business_date = $1",
        business_date, cursor, accounts, status,
    )  # fmt: skip


async def open_accounts_among(conn: asyncpg.Connection, account_ids: list[UUID]) -> list[asyncpg.Record]:
    """Of these ledger account ids, the open accounts, with their product version's interest terms."""
    return await conn.fetch(
        "SELECT a.account_id, a.type, (p.terms->>'rate_bps')::int AS rate_bps, p.terms->>'interest_posting' AS interest_posting "
        "FROM account a JOIN product_version p ON (p.code, p.version) = (a.product_code, a.product_version) "
        "WHERE a.ledger_account_id = ANY($1::uuid[]) AND a.status IN ('active', 'dormant', 'frozen')",
        account_ids,
    )  # fmt: skip


async def add_accruals(conn: asyncpg.Connection, rows: list[tuple[UUID, date, date, date, int]]) -> None:
    """(account_id, period_end, first, last, balance_bps_days): added to the period's accrual once;
    days already accrued (a restored or repeated close) add nothing."""
    if not rows:
        return
    account_ids, ends, firsts, lasts, amounts = (list(column) for column in zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO interest_accrual AS a (account_id, period_end, accrued_from, accrued_through, balance_bps_days) "
        "SELECT * FROM unnest($1::uuid[], $2::date[], $3::date[], $4::date[], $5::numeric[]) "
        "ON CONFLICT (account_id, period_end) DO UPDATE SET balance_bps_days = a.balance_bps_days + excluded.balance_bps_days, "
        "accrued_through = excluded.accrued_through "
        "WHERE a.accrued_through < excluded.accrued_from AND a.status IN ('accruing', 'due')",
        account_ids, ends, firsts, lasts, amounts,
    )  # fmt: skip


async def due_interest(conn: asyncpg.Connection, business_date: date, until: date, limit: int) -> list[asyncpg.Record]:
    """Periods ended before `until`, not posted, not yet tried by this date's close; locked."""
    return await conn.fetch(
        "SELECT a.account_id, a.period_end, a.balance_bps_days, acc.ledger_account_id, acc.currency, acc.customer_id "
        "FROM interest_accrual a JOIN account acc USING (account_id) "
        "WHERE a.status IN ('accruing', 'due') AND a.period_end < $2 AND (a.tried_on IS NULL OR a.tried_on < $1) "
        "AND acc.status <> 'closed' ORDER BY a.period_end, a.account_id LIMIT $3 FOR UPDATE OF a",
        business_date, until, limit,
    )  # fmt: skip


async def mark_interest_asked(
    conn: asyncpg.Connection, business_date: date, rows: list[tuple[UUID, date, int, UUID | None]]
) -> None:
    """(account_id, period_end, amount, transfer_id): asked of the ledger (`posting`), or, at zero,
    nothing to post (`posted`, no transfer)."""
    account_ids, ends, amounts, transfer_ids = (list(column) for column in zip(*rows, strict=True))
    await conn.execute(
        "UPDATE interest_accrual a SET amount = r.amount, transfer_id = r.transfer_id, tried_on = $1::date, error = NULL, "
        "status = CASE WHEN r.amount = 0 THEN 'posted' ELSE 'posting' END, "
        "posted_on = CASE WHEN r.amount = 0 THEN $1::date END "
        "FROM unnest($2::uuid[], $3::date[], $4::bigint[], $5::uuid[]) AS r (account_id, period_end, amount, transfer_id) "
        "WHERE a.account_id = r.account_id AND a.period_end = r.period_end",
        business_date, account_ids, ends, amounts, transfer_ids,
    )  # fmt: skip


async def interest_answered(
    conn: asyncpg.Connection, business_date: date, transfer_id: UUID, *, error: str | None
) -> asyncpg.Record | None:
    """The ledger's answer for one interest transfer: posted, or due again (with why). The row, if
    it was still waiting for this answer."""
    return await conn.fetchrow(
        "UPDATE interest_accrual a SET status = CASE WHEN $3::text IS NULL THEN 'posted' ELSE 'due' END, "
        "posted_on = CASE WHEN $3::text IS NULL THEN $1::date END, error = $3 "
        "FROM account acc WHERE a.transfer_id = $2 AND a.status = 'posting' AND acc.account_id = a.account_id "
        "RETURNING a.account_id, a.period_end, a.amount, acc.customer_id, acc.currency",
        business_date, transfer_id, error,
    )  # fmt: skip


async def interest_posting_outstanding(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    """Asked by this date's close and not answered yet."""
    return await conn.fetch(
        "SELECT a.account_id, a.period_end, a.amount, a.transfer_id, acc.ledger_account_id, acc.currency "
        "FROM interest_accrual a JOIN account acc USING (account_id) WHERE a.status = 'posting' AND a.tried_on = $1",
        business_date,
    )  # fmt: skip


async def interest_posted_on(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT acc.currency, count(*) AS postings, sum(a.amount) AS amount FROM interest_accrual a "
        "JOIN account acc USING (account_id) WHERE a.posted_on = $1 AND a.amount > 0 GROUP BY acc.currency "
        "ORDER BY acc.currency",
        business_date,
    )  # fmt: skip


async def unposted_interest(conn: asyncpg.Connection, account_id: UUID) -> list[asyncpg.Record]:
    """The account's periods not posted yet (a closing posts them), locked."""
    return await conn.fetch(
        "SELECT period_end, balance_bps_days, status FROM interest_accrual WHERE account_id = $1 "
        "AND status <> 'posted' ORDER BY period_end FOR UPDATE",
        account_id,
    )  # fmt: skip


async def closing_interest_asked(conn: asyncpg.Connection, account_id: UUID, periods: list[date]) -> None:
    """A closing asked the ledger to settle these periods: `posting`, so no close of business posts
    them too (nor accrues into them); not this or any close's to wait for (tried_on NULL)."""
    await conn.execute(
        "UPDATE interest_accrual SET status = 'posting', tried_on = NULL WHERE account_id = $1 AND period_end = ANY($2::date[])",
        account_id, periods,
    )  # fmt: skip


async def closing_interest_answered(conn: asyncpg.Connection, account_id: UUID, periods: list[tuple[date, int, UUID | None]],
                                    *, posted: bool) -> None:  # fmt: skip
    """(period_end, amount, transfer_id): posted by the closing, or, the close refused, back to
    accruing (or due, if a close of business had found it refused)."""
    ends, amounts, transfer_ids = (list(column) for column in zip(*periods, strict=True))
    await conn.execute(
        "UPDATE interest_accrual a SET "
        "status = CASE WHEN $4 THEN 'posted' WHEN a.error IS NULL THEN 'accruing' ELSE 'due' END, "
        "amount = CASE WHEN $4 THEN r.amount END, transfer_id = CASE WHEN $4 THEN r.transfer_id END, "
        "error = CASE WHEN $4 THEN NULL ELSE a.error END "
        "FROM unnest($2::date[], $3::bigint[], $5::uuid[]) AS r (period_end, amount, transfer_id) "
        "WHERE a.account_id = $1 AND a.period_end = r.period_end AND a.status = 'posting' AND a.tried_on IS NULL",
        account_id, ends, amounts, posted, transfer_ids,
    )  # fmt: skip


async def interest_periods(conn: asyncpg.Connection, account_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM interest_accrual WHERE account_id = $1 ORDER BY period_end DESC LIMIT $2", account_id, limit
    )


# --- charges (close of business's `account.charges` step) -----------------------------------------


async def add_balance_days(conn: asyncpg.Connection, rows: list[tuple[UUID, date, date, date, int, int]]) -> None:
    """(account_id, month_end, first, last, balance_days, overdrawn_days): added to the month once;
    days already counted (a restored or repeated close) add nothing."""
    if not rows:
        return
    account_ids, ends, firsts, lasts, amounts, overdrawn = (list(column) for column in zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO balance_month AS m (account_id, month_end, counted_from, counted_through, balance_days, overdrawn_days) "
        "SELECT * FROM unnest($1::uuid[], $2::date[], $3::date[], $4::date[], $5::numeric[], $6::numeric[]) "
        "ON CONFLICT (account_id, month_end) DO UPDATE SET balance_days = m.balance_days + excluded.balance_days, "
        "overdrawn_days = m.overdrawn_days + excluded.overdrawn_days, "
        "counted_through = excluded.counted_through WHERE m.counted_through < excluded.counted_from",
        account_ids, ends, firsts, lasts, amounts, overdrawn,
    )  # fmt: skip


async def start_charge_run(conn: asyncpg.Connection, business_date: date, covers_until: date, *,
                           new_close: bool) -> asyncpg.Record:  # fmt: skip
    """As `start_interest_run`: a charge already asked is never asked twice (one row per fee and month)."""
    if new_close:
        await conn.execute("UPDATE charge_run SET status = 'charging', cursor = NULL, covers_until = $2 "
                           "WHERE business_date = $1", business_date, covers_until)  # fmt: skip
    await conn.execute(
        "INSERT INTO charge_run (business_date, covers_until, status) VALUES ($1, $2, 'charging') ON CONFLICT DO NOTHING",
        business_date, covers_until,
    )  # fmt: skip
    run = await charge_run(conn, business_date)
    assert run is not None
    return run


async def charge_run(conn: asyncpg.Connection, business_date: date) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM charge_run WHERE business_date = $1 FOR UPDATE", business_date)


async def advance_charge_run(conn: asyncpg.Connection, business_date: date, cursor: UUID | None, status: str) -> None:
    await conn.execute(
        "UPDATE charge_run SET cursor = $2, status = $3, updated_at = clock_timestamp() WHERE business_date = $1",
        business_date, cursor, status,
    )  # fmt: skip


async def fee_accounts(conn: asyncpg.Connection, after: UUID | None, limit: int) -> list[asyncpg.Record]:
    """Open accounts whose product version charges a monthly fee or overdraft interest, in id order after `after`."""
    return await conn.fetch(
        "SELECT a.account_id, a.ledger_account_id, a.currency, a.customer_id, a.opened_at, p.terms "
        "FROM account a JOIN product_version p ON (p.code, p.version) = (a.product_code, a.product_version) "
        "WHERE a.status IN ('active', 'dormant', 'frozen') AND ($1::uuid IS NULL OR a.account_id > $1) "
        "AND ((p.terms->>'maintenance_fee')::bigint > 0 OR (p.terms->>'shortfall_fee')::bigint > 0 "
        "     OR coalesce((p.terms->>'overdraft_rate_bps')::int, 0) > 0) "
        "ORDER BY a.account_id LIMIT $2",
        after, limit,
    )  # fmt: skip


async def month_balance_days(conn: asyncpg.Connection, account_ids: list[UUID], month_end: date) -> dict[UUID, tuple[int, int]]:
    """Per account: the month's (Σ balance × days, Σ overdrawn balance × days)."""
    rows = await conn.fetch(
        "SELECT account_id, balance_days, overdrawn_days FROM balance_month WHERE account_id = ANY($1::uuid[]) "
        "AND month_end = $2",
        account_ids, month_end,
    )  # fmt: skip
    return {r["account_id"]: (int(r["balance_days"]), int(r["overdrawn_days"])) for r in rows}


async def insert_charges(
    conn: asyncpg.Connection, business_date: date, rows: list[tuple[UUID, str, date, int, UUID]]
) -> list[asyncpg.Record]:
    """(account_id, kind, month_end, fee, transfer_id), asked now; those charged or asked before
    stay as they are. The rows inserted."""
    if not rows:
        return []
    account_ids, kinds, ends, fees, transfer_ids = (list(column) for column in zip(*rows, strict=True))
    return await conn.fetch(
        "INSERT INTO account_charge (account_id, kind, month_end, fee, transfer_id, tried_on, status) "
        "SELECT r.*, $6::date, 'posting' FROM unnest($1::uuid[], $2::text[], $3::date[], $4::bigint[], $5::uuid[]) "
        "AS r (account_id, kind, month_end, fee, transfer_id) ON CONFLICT DO NOTHING RETURNING transfer_id",
        account_ids, kinds, ends, fees, transfer_ids, business_date,
    )  # fmt: skip


async def due_charges(conn: asyncpg.Connection, business_date: date, limit: int) -> list[asyncpg.Record]:
    """Charges an earlier close could not take (a frozen account), not tried by this close; locked."""
    return await conn.fetch(
        "SELECT c.account_id, c.kind, c.month_end, c.fee, a.ledger_account_id, a.currency FROM account_charge c "
        "JOIN account a USING (account_id) WHERE c.status = 'due' AND c.tried_on < $1 AND a.status <> 'closed' "
        "ORDER BY c.tried_on, c.account_id LIMIT $2 FOR UPDATE OF c",
        business_date, limit,
    )  # fmt: skip


async def retry_charge(conn: asyncpg.Connection, account_id: UUID, kind: str, month_end: date, transfer_id: UUID,
                       business_date: date) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE account_charge SET status = 'posting', transfer_id = $4, tried_on = $5, error = NULL "
        "WHERE account_id = $1 AND kind = $2 AND month_end = $3",
        account_id, kind, month_end, transfer_id, business_date,
    )  # fmt: skip


async def charge_answered(conn: asyncpg.Connection, business_date: date, transfer_id: UUID, collected: int | None,
                          error: str | None) -> asyncpg.Record | None:  # fmt: skip
    """The ledger's answer for one charge: taken (`collected`, maybe less than the fee, maybe 0), or
    refused and due again. The row, if it was waiting for this answer."""
    return await conn.fetchrow(
        "UPDATE account_charge c SET status = CASE WHEN $4::text IS NULL THEN 'charged' ELSE 'due' END, "
        "collected = $3, charged_on = CASE WHEN $4::text IS NULL THEN $1::date END, error = $4 "
        "FROM account a WHERE c.transfer_id = $2 AND c.status = 'posting' AND a.account_id = c.account_id "
        "RETURNING c.account_id, c.kind, c.month_end, c.fee, c.collected, a.customer_id, a.currency",
        business_date, transfer_id, collected, error,
    )  # fmt: skip


async def charges_outstanding(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT c.account_id, c.kind, c.month_end, c.fee, c.transfer_id, a.ledger_account_id, a.currency "
        "FROM account_charge c JOIN account a USING (account_id) WHERE c.status = 'posting' AND c.tried_on = $1",
        business_date,
    )  # fmt: skip


async def charged_on(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.currency, c.kind, count(*) AS charges, sum(c.fee) AS fees, sum(c.collected) AS collected "
        "FROM account_charge c JOIN account a USING (account_id) WHERE c.charged_on = $1 "
        "GROUP BY a.currency, c.kind ORDER BY a.currency, c.kind",
        business_date,
    )  # fmt: skip


async def account_charges(conn: asyncpg.Connection, account_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM account_charge WHERE account_id = $1 ORDER BY month_end DESC, kind LIMIT $2", account_id, limit
    )


# --- statements (close of business's `account.statements` step) -----------------------------------


async def start_statement_run(conn: asyncpg.Connection, business_date: date, month_end: date | None, *,
                              new_close: bool) -> asyncpg.Record:  # fmt: skip
    """As `start_interest_run`: a statement drawn up stays as it was (one per account and month)."""
    if new_close:
        await conn.execute("UPDATE statement_run SET month_end = $2, cursor = NULL, "
                           "status = CASE WHEN $2::date IS NULL THEN 'done' ELSE 'drawing' END WHERE business_date = $1",
                           business_date, month_end)  # fmt: skip
    await conn.execute(
        "INSERT INTO statement_run (business_date, month_end, status) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        business_date, month_end, "drawing" if month_end else "done",
    )  # fmt: skip
    run = await statement_run(conn, business_date)
    assert run is not None
    return run


async def statement_run(conn: asyncpg.Connection, business_date: date) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM statement_run WHERE business_date = $1 FOR UPDATE", business_date)


async def advance_statement_run(conn: asyncpg.Connection, business_date: date, month_end: date | None,
                                cursor: UUID | None, status: str) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE statement_run SET month_end = $2, cursor = $3, status = $4, updated_at = clock_timestamp() "
        "WHERE business_date = $1",
        business_date, month_end, cursor, status,
    )  # fmt: skip


async def statement_accounts(conn: asyncpg.Connection, after: UUID | None, limit: int,
                             closed_since: date) -> list[UUID]:  # fmt: skip
    """Open accounts (those the ledger has created), and those closed on or after the business date
    `closed_since` (their last statement shows the closing), in id order after `after`."""
    rows = await conn.fetch(
        "SELECT account_id FROM account WHERE (status IN ('active', 'dormant', 'frozen') "
        "OR (status = 'closed' AND closed_on >= $3)) AND ($1::uuid IS NULL OR account_id > $1) "
        "ORDER BY account_id LIMIT $2",
        after, limit, closed_since,
    )  # fmt: skip
    return [r["account_id"] for r in rows]


async def closed_among(conn: asyncpg.Connection, account_ids: list[UUID]) -> set[UUID]:
    rows = await conn.fetch("SELECT account_id FROM account WHERE account_id = ANY($1::uuid[]) AND status = 'closed'",
                            account_ids)  # fmt: skip
    return {r["account_id"] for r in rows}


async def insert_statements(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> list[asyncpg.Record]:
    """(account_id, month_end, opening, credits, debits, closing, transfers, period_from, period_until,
    status, issued_on): the statements not drawn up before, with their accounts' customer and currency."""
    if not rows:
        return []
    columns = [list(column) for column in zip(*rows, strict=True)]
    return await conn.fetch(
        "WITH new AS (INSERT INTO statement (account_id, month_end, opening, credits, debits, closing, transfers, "
        "period_from, period_until, status, issued_on) SELECT * FROM unnest($1::uuid[], $2::date[], $3::bigint[], "
        "$4::bigint[], $5::bigint[], $6::bigint[], $7::int[], $8::timestamptz[], $9::timestamptz[], $10::text[], "
        "$11::date[]) ON CONFLICT DO NOTHING RETURNING *) "
        "SELECT new.*, a.customer_id, a.currency FROM new JOIN account a USING (account_id)",
        *columns,
    )  # fmt: skip


async def statements_of(conn: asyncpg.Connection, account_id: UUID, limit: int,
                        month_end: date | None = None) -> list[asyncpg.Record]:  # fmt: skip
    """Newest first; with `month_end`, that month's only."""
    return await conn.fetch(
        "SELECT s.*, a.currency, a.number AS account_number FROM statement s JOIN account a USING (account_id) "
        "WHERE s.account_id = $1 AND ($3::date IS NULL OR s.month_end = $3) ORDER BY s.month_end DESC LIMIT $2",
        account_id, limit, month_end,
    )  # fmt: skip


async def statements_issued_on(conn: asyncpg.Connection, business_date: date) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM statement WHERE issued_on = $1 GROUP BY status", business_date)
    return {r["status"]: r["n"] for r in rows}


# --- the business date and fixed deposits -----------------------------------------------------------




_DEPOSIT_COLUMNS = ("account_id, principal, rate_bps, term_days, start_date, maturity_date, at_maturity, "
                    "payout_account_id, funding_account_id, status, tried_on, last_interest, error, kind, instalment, "
                    "instalments")  # fmt: skip


async def insert_deposit(conn: asyncpg.Connection, account_id: UUID, principal: int, rate_bps: int, term_days: int,
                         at_maturity: str, payout_account_id: UUID, funding_account_id: UUID, *,
                         instalments: int | None = None) -> None:  # fmt: skip
    """A fixed deposit of `principal`, or (with `instalments`) a recurring one of `principal` a month."""
    await conn.execute(
        "INSERT INTO deposit (account_id, principal, rate_bps, term_days, at_maturity, payout_account_id, "
        "funding_account_id, status, kind, instalment, instalments) VALUES ($1, $2, $3, $4, $5, $6, $7, 'funding', "
        "$8, $9, $10)",
        account_id, principal, rate_bps, term_days, at_maturity, payout_account_id, funding_account_id,
        "recurring" if instalments else "fixed", principal if instalments else None, instalments,
    )  # fmt: skip


async def get_deposit(conn: asyncpg.Connection, account_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_DEPOSIT_COLUMNS} FROM deposit WHERE account_id = $1{lock}", account_id)


async def update_deposit(conn: asyncpg.Connection, account_id: UUID, **fields: Any) -> asyncpg.Record:
    """Set the named columns (names from this module's callers, never from a message)."""
    assert fields and set(fields) <= set(_DEPOSIT_COLUMNS.replace(" ", "").split(",")), fields
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    row = await conn.fetchrow(f"UPDATE deposit SET {sets} WHERE account_id = $1 RETURNING {_DEPOSIT_COLUMNS}",
                              account_id, *fields.values())  # fmt: skip
    assert row is not None
    return row


async def due_deposits(conn: asyncpg.Connection, business_date: date, limit: int) -> list[asyncpg.Record]:
    """Running deposits matured by `business_date`, not tried by its close yet; locked."""
    return await conn.fetch(
        f"SELECT {_DEPOSIT_COLUMNS} FROM deposit WHERE status = 'running' AND maturity_date <= $1 "
        "AND (tried_on IS NULL OR tried_on < $1) ORDER BY maturity_date, account_id LIMIT $2 FOR UPDATE",
        business_date, limit,
    )  # fmt: skip


async def maturing(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_DEPOSIT_COLUMNS} FROM deposit WHERE status = 'maturing' AND tried_on = $1",
                            business_date)  # fmt: skip


async def deposits_tried_on(conn: asyncpg.Connection, business_date: date) -> dict[str, int]:
    """What this date's close did to the deposits it matured: matured (paid out), running again
    (renewed, or refused and retried by the next close)."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM deposit WHERE tried_on = $1 GROUP BY status", business_date)
    return {r["status"]: r["n"] for r in rows}


async def insert_instalments(conn: asyncpg.Connection, account_id: UUID, due_dates: list[date], amount: int,
                             paid_on: date, first_transfer_id: UUID) -> None:  # fmt: skip
    """The schedule, the first instalment paid (at opening)."""
    await conn.execute(
        "INSERT INTO deposit_instalment (account_id, seq, due_date, amount, status, paid_on, transfer_id) "
        "SELECT $1, s - 1, d, $3, CASE WHEN s = 1 THEN 'paid' ELSE 'due' END, CASE WHEN s = 1 THEN $4::date END, "
        "CASE WHEN s = 1 THEN $5::uuid END FROM unnest($2::date[]) WITH ORDINALITY AS t (d, s)",
        account_id, due_dates, amount, paid_on, first_transfer_id,
    )  # fmt: skip


async def due_instalments(conn: asyncpg.Connection, business_date: date, limit: int) -> list[asyncpg.Record]:
    """Instalments of running deposits due by `business_date`, not yet tried by its close; locked."""
    return await conn.fetch(
        "SELECT i.account_id, i.seq, i.amount, f.ledger_account_id AS funding_ledger_id, a.ledger_account_id, a.currency, "
        "a.number FROM deposit_instalment i JOIN deposit d USING (account_id) JOIN account a USING (account_id) "
        "JOIN account f ON f.account_id = d.funding_account_id WHERE i.status = 'due' AND i.due_date <= $1 "
        "AND d.status = 'running' AND (i.tried_on IS NULL OR i.tried_on < $1) ORDER BY i.due_date, i.account_id "
        "LIMIT $2 FOR UPDATE OF i",
        business_date, limit,
    )  # fmt: skip


async def instalment_asked(conn: asyncpg.Connection, account_id: UUID, seq: int, transfer_id: UUID,
                           business_date: date) -> None:  # fmt: skip
    await conn.execute(
        "UPDATE deposit_instalment SET status = 'paying', transfer_id = $3, tried_on = $4 WHERE account_id = $1 AND seq = $2",
        account_id, seq, transfer_id, business_date,
    )  # fmt: skip


async def instalment_answered(conn: asyncpg.Connection, transfer_id: UUID, business_date: date,
                              error: str | None) -> asyncpg.Record | None:  # fmt: skip
    """Paid (the deposit's principal grows by it), or due again with why."""
    row = await conn.fetchrow(
        "UPDATE deposit_instalment SET status = CASE WHEN $3::text IS NULL THEN 'paid' ELSE 'due' END, "
        "paid_on = CASE WHEN $3::text IS NULL THEN $2::date END, error = $3 "
        "WHERE transfer_id = $1 AND status = 'paying' RETURNING account_id, amount",
        transfer_id, business_date, error,
    )  # fmt: skip
    if row is not None and error is None:
        await conn.execute("UPDATE deposit SET principal = principal + $2 WHERE account_id = $1", row["account_id"],
                           row["amount"])  # fmt: skip
    return row


async def instalments_paying(conn: asyncpg.Connection, business_date: date) -> int:
    return await conn.fetchval("SELECT count(*) FROM deposit_instalment WHERE status = 'paying' AND tried_on = $1",
                               business_date)  # fmt: skip


async def paid_instalments(conn: asyncpg.Connection, account_id: UUID) -> list[tuple[int, date]]:
    rows = await conn.fetch("SELECT amount, paid_on FROM deposit_instalment WHERE account_id = $1 AND status = 'paid' "
                            "ORDER BY seq", account_id)  # fmt: skip
    return [(r["amount"], r["paid_on"]) for r in rows]


async def miss_unpaid_instalments(conn: asyncpg.Connection, account_id: UUID) -> None:
    await conn.execute("UPDATE deposit_instalment SET status = 'missed' WHERE account_id = $1 AND status = 'due'",
                       account_id)  # fmt: skip


async def instalment_counts(conn: asyncpg.Connection, account_id: UUID) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM deposit_instalment WHERE account_id = $1 GROUP BY status",
                            account_id)  # fmt: skip
    return {r["status"]: r["n"] for r in rows}


async def instalments_refused(conn: asyncpg.Connection, business_date: date, error: str) -> None:
    await conn.execute("UPDATE deposit_instalment SET status = 'due', error = $2 WHERE status = 'paying' AND tried_on = $1",
                       business_date, error)  # fmt: skip


async def unsettled_charges(conn: asyncpg.Connection, account_id: UUID) -> list[asyncpg.Record]:
    """The account's charges not taken yet (due, or being asked), locked: a closing settles them."""
    return await conn.fetch(
        "SELECT kind, month_end, fee, status FROM account_charge WHERE account_id = $1 AND status IN ('due', 'posting') "
        "ORDER BY month_end, kind FOR UPDATE",
        account_id,
    )  # fmt: skip


async def closing_charges_asked(conn: asyncpg.Connection, account_id: UUID, charges: list[tuple[str, date, UUID]]) -> None:
    """(kind, month_end, transfer_id): in the closing chain, not a close of business's to ask."""
    for kind, month_end, transfer_id in charges:
        await conn.execute(
            "UPDATE account_charge SET status = 'posting', transfer_id = $4 WHERE account_id = $1 AND kind = $2 "
            "AND month_end = $3",
            account_id, kind, month_end, transfer_id,
        )  # fmt: skip


async def closing_charge_answered(conn: asyncpg.Connection, transfer_id: UUID, collected: int | None,
                                  charged_on: date | None) -> asyncpg.Record | None:  # fmt: skip
    """Taken by the closing (`collected`), or, the close refused, due again. The row, if it waited."""
    return await conn.fetchrow(
        "UPDATE account_charge SET status = CASE WHEN $2::bigint IS NULL THEN 'due' ELSE 'charged' END, "
        "collected = $2, charged_on = $3, error = CASE WHEN $2::bigint IS NULL THEN 'the closing was refused' END "
        "WHERE transfer_id = $1 AND status = 'posting' RETURNING kind, month_end, fee, collected",
        transfer_id, collected, charged_on,
    )  # fmt: skip
