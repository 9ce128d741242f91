"""The payment worker's SQL, in plain asyncpg."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from bus.business_day import business_date, learn_business_date  # noqa: F401  (this worker's store speaks for it)
from contracts.payment import PayeeView, PaymentView, StandingOrderStatus, StandingOrderView

# --- accounts, as the account worker's events describe them -----------------------------------


@dataclass(frozen=True, slots=True)
class KnownAccount:
    account_id: UUID
    customer_id: UUID
    number: str
    currency: str
    status: str
    daily_payments_out_limit: int | None
    monthly_debit_limit: int | None
    daily_cash_withdrawal_limit: int | None
    type: str | None = None  # savings, current, fixed_deposit, recurring_deposit (None: learnt before it was sent)
    free_atm_withdrawals: int | None = None  # a calendar month's free ATM withdrawals (None: not known, no fee)
    atm_fee: int | None = None


_ACCOUNT_COLUMNS = (
    "account_id, customer_id, number, currency, status, type, daily_payments_out_limit, monthly_debit_limit, "
    "daily_cash_withdrawal_limit, free_atm_withdrawals, atm_fee"
)


async def get_account(conn: asyncpg.Connection, account_id: UUID, *, for_update: bool = False) -> KnownAccount | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM payment_account WHERE account_id = $1{lock}", account_id)
    return KnownAccount(**dict(row)) if row else None


async def account_by_number(conn: asyncpg.Connection, number: str) -> KnownAccount | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM payment_account WHERE number = $1", number)
    return KnownAccount(**dict(row)) if row else None


async def record_account(conn: asyncpg.Connection, fact: dict[str, Any], as_of: datetime) -> None:
    """Keep the newest facts; events may arrive in any order. Limits and ATM terms come only with
    account.opened and account.product_migrated."""
    await conn.execute(
        "INSERT INTO payment_account (account_id, customer_id, number, product_code, currency, status, "
        "daily_payments_out_limit, monthly_debit_limit, daily_cash_withdrawal_limit, as_of, type, "
        "free_atm_withdrawals, atm_fee) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
        "ON CONFLICT (account_id) DO UPDATE SET status = EXCLUDED.status, as_of = EXCLUDED.as_of, "
        "type = coalesce(EXCLUDED.type, payment_account.type), "
        "product_code = EXCLUDED.product_code, "
        "free_atm_withdrawals = coalesce(EXCLUDED.free_atm_withdrawals, payment_account.free_atm_withdrawals), "
        "atm_fee = coalesce(EXCLUDED.atm_fee, payment_account.atm_fee), "
        "daily_payments_out_limit = coalesce(EXCLUDED.daily_payments_out_limit, payment_account.daily_payments_out_limit), "
        "monthly_debit_limit = coalesce(EXCLUDED.monthly_debit_limit, payment_account.monthly_debit_limit), "
        "daily_cash_withdrawal_limit = coalesce(EXCLUDED.daily_cash_withdrawal_limit, "
        "payment_account.daily_cash_withdrawal_limit) "
        "WHERE payment_account.as_of <= EXCLUDED.as_of",
        fact["account_id"], fact["customer_id"], fact["number"], fact["product_code"], fact["currency"],
        fact["status"], fact.get("daily_payments_out_limit"), fact.get("monthly_debit_limit"),
        fact.get("daily_cash_withdrawal_limit"), as_of, fact.get("type"), fact.get("free_atm_withdrawals"),
        fact.get("atm_fee"),
    )  # fmt: skip


# --- limit usage --------------------------------------------------------------------------------


async def activity(
    conn: asyncpg.Connection, account_id: UUID, periods: dict[str, date], since: datetime
) -> tuple[dict[str, int], int]:
    """In one round trip: the amount used per period (0 where nothing was charged yet), and how
    many payments the account placed since `since` (the velocity rule; failed ones count too)."""
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(jsonb_object_agg(period, used), '{}'::jsonb) FROM limit_usage "
        "        WHERE account_id = $1 AND (period, period_start) IN (SELECT * FROM unnest($2::text[], $3::date[])))"
        " AS used, "
        "(SELECT count(*) FROM payment WHERE payer_account_id = $1 AND created_at >= $4) AS recent",
        account_id, list(periods), list(periods.values()), since,
    )  # fmt: skip
    found = row["used"]
    return {name: int(found.get(name, 0)) for name in periods}, row["recent"]


async def charge(conn: asyncpg.Connection, account_id: UUID, periods: dict[str, date], amount: int) -> None:
    """Add (or, negative, give back) `amount` to each period's usage."""
    await conn.execute(
        "INSERT INTO limit_usage (account_id, period, period_start, used) "
        "SELECT $1, p, s, greatest($4::bigint, 0) FROM unnest($2::text[], $3::date[]) AS t(p, s) "
        "ON CONFLICT (account_id, period, period_start) DO UPDATE SET used = greatest(limit_usage.used + $4, 0)",
        account_id, list(periods), list(periods.values()), amount,
    )  # fmt: skip


# --- payments -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """A payment as stored: the view plus what only the worker needs."""

    view: PaymentView
    payee_account_id: UUID | None
    customer_id: UUID | None
    needs_approval: bool
    charged_periods: list[str]
    refund_reserved: int
    standing_order_id: UUID | None
    expires_at: datetime | None
    completed_at: datetime | None
    failure_reason: str | None
    partner: str | None


_VIEW_COLUMNS = (
    "payment_id", "reference", "kind", "channel", "status", "payer_account_id", "payee", "amount", "fee",
    "currency", "fraud_score", "fraud_level", "refund_of", "refunded_amount", "maker", "approver",
    "partner_reference", "failure_code", "description", "execute_at", "created_at", "updated_at",
)  # fmt: skip
_EXTRA_COLUMNS = (
    "payee_account_id", "customer_id", "needs_approval", "charged_periods", "refund_reserved",
    "standing_order_id", "expires_at", "completed_at", "failure_reason", "partner",
)  # fmt: skip
_PAYMENT_COLUMNS = ", ".join(_VIEW_COLUMNS + _EXTRA_COLUMNS)


def _payment(row: asyncpg.Record) -> PaymentRow:
    data = dict(row)
    view = PaymentView.model_validate({k: data[k] for k in _VIEW_COLUMNS})
    return PaymentRow(view=view, **{k: data[k] for k in _EXTRA_COLUMNS})


async def get_payment(conn: asyncpg.Connection, payment_id: UUID, *, for_update: bool = False) -> PaymentRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_PAYMENT_COLUMNS} FROM payment WHERE payment_id = $1{lock}", payment_id)
    return _payment(row) if row else None


async def incoming_by_reference(conn: asyncpg.Connection, partner: str, reference: str) -> PaymentRow | None:
    row = await conn.fetchrow(
        f"SELECT {_PAYMENT_COLUMNS} FROM payment WHERE kind = 'incoming' AND partner = $1 AND partner_reference = $2",
        partner, reference,
    )  # fmt: skip
    return _payment(row) if row else None


async def insert_payment(conn: asyncpg.Connection, row: PaymentRow, charge: dict[str, date] | None = None) -> None:
    """Store a new payment; with `charge`, also add its amount and fee to the payer's usage of
    those periods, in the same statement."""
    v = row.view
    values: dict[str, Any] = v.model_dump(include=set(_VIEW_COLUMNS))
    values["payee"] = v.payee.model_dump(mode="json", exclude_none=True) if v.payee else None
    values.update({k: getattr(row, k) for k in _EXTRA_COLUMNS})
    columns = list(values)
    args = [values[c] for c in columns]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    insert = f"INSERT INTO payment ({', '.join(columns)}) VALUES ({placeholders})"
    if not charge:
        await conn.execute(insert, *args)
        return
    n = len(args)
    await conn.execute(
        f"WITH new_payment AS ({insert} RETURNING payer_account_id, amount + fee AS charged) "
        "INSERT INTO limit_usage (account_id, period, period_start, used) "
        f"SELECT payer_account_id, p, s, charged FROM new_payment, unnest(${n + 1}::text[], ${n + 2}::date[]) AS t(p, s) "
        "ON CONFLICT (account_id, period, period_start) DO UPDATE SET used = limit_usage.used + EXCLUDED.used",
        *args, list(charge), list(charge.values()),
    )  # fmt: skip


async def _update(
    conn: asyncpg.Connection, table: str, key: tuple[str, UUID], returning: str, allowed: set[str], now: datetime,
    changes: dict[str, Any],
) -> asyncpg.Record:
    """Set the given columns (only those allowed) and updated_at; returns the row as it now is."""
    assert changes and set(changes) <= allowed, f"unknown columns {set(changes) - allowed}"
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
    row = await conn.fetchrow(
        f"UPDATE {table} SET updated_at = $2, {sets} WHERE {key[0]} = $1 RETURNING {returning}",
        key[1], now, *changes.values(),
    )  # fmt: skip
    assert row is not None, f"{table} {key[1]} vanished"
    return row


async def update_payment(conn: asyncpg.Connection, payment_id: UUID, now: datetime, **changes: Any) -> PaymentRow:
    row = await _update(conn, "payment", ("payment_id", payment_id), _PAYMENT_COLUMNS,
                        set(_VIEW_COLUMNS + _EXTRA_COLUMNS), now, changes)  # fmt: skip
    return _payment(row)


async def account_payments(
    conn: asyncpg.Connection, account_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[PaymentView]:
    """Payments the account pays or receives, newest first, after the keyset cursor."""
    cursor = "AND (created_at, payment_id) < ($2, $3)" if after else "AND $2::timestamptz IS NULL AND $3::uuid IS NULL"
    rows = await conn.fetch(
        f"SELECT {_PAYMENT_COLUMNS} FROM ("
        f" (SELECT * FROM payment WHERE payer_account_id = $1 {cursor} ORDER BY created_at DESC, payment_id DESC LIMIT $4)"
        f" UNION"
        f" (SELECT * FROM payment WHERE payee_account_id = $1 {cursor} ORDER BY created_at DESC, payment_id DESC LIMIT $4)"
        f") AS p ORDER BY created_at DESC, payment_id DESC LIMIT $4",
        account_id, *(after or (None, None)), limit,
    )  # fmt: skip
    return [_payment(r).view for r in rows]


async def due_payments(conn: asyncpg.Connection, now: datetime, limit: int) -> list[PaymentRow]:
    """Payments a sweep must act on, locked (SKIP LOCKED: replicas share the work):
    approvals past their expiry, settlements past their timeout, held payments whose rail window came."""
    rows = await conn.fetch(
        f"SELECT {_PAYMENT_COLUMNS} FROM payment WHERE "
        "(status IN ('pending', 'processing') AND expires_at <= $1) "
        "OR (status = 'pending' AND execute_at <= $1 AND (NOT needs_approval OR approver IS NOT NULL)) "
        "ORDER BY coalesce(expires_at, execute_at) LIMIT $2 FOR UPDATE SKIP LOCKED",
        now, limit,
    )  # fmt: skip
    return [_payment(r) for r in rows]


# --- payees -----------------------------------------------------------------------------------------


async def get_payee(conn: asyncpg.Connection, payee_id: UUID) -> PayeeView | None:
    row = await conn.fetchrow("SELECT payee_id, customer_id, payee, added_at FROM payee WHERE payee_id = $1", payee_id)
    return PayeeView.model_validate(dict(row)) if row else None


async def count_payees(conn: asyncpg.Connection, customer_id: UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM payee WHERE customer_id = $1", customer_id)


async def insert_payee(conn: asyncpg.Connection, view: PayeeView) -> None:
    await conn.execute(
        "INSERT INTO payee (payee_id, customer_id, payee, added_at) VALUES ($1, $2, $3, $4)",
        view.payee_id, view.customer_id, view.payee.model_dump(mode="json", exclude_none=True), view.added_at,
    )  # fmt: skip


async def customer_payees(conn: asyncpg.Connection, customer_id: UUID, limit: int) -> list[PayeeView]:
    rows = await conn.fetch(
        "SELECT payee_id, customer_id, payee, added_at FROM payee WHERE customer_id = $1 "
        "ORDER BY added_at DESC, payee_id DESC LIMIT $2",
        customer_id, limit,
    )  # fmt: skip
    return [PayeeView.model_validate(dict(r)) for r in rows]


# --- standing orders ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StandingOrderRow:
    view: StandingOrderView
    next_nominal: date | None
    next_due: date | None
    retry_nominal: date | None
    retry_on: date | None
    actor: str


_SO_COLUMNS = (
    "standing_order_id, payer_account_id, customer_id, payee, kind, amount, currency, frequency, start_date, "
    "end_date, next_nominal, next_due, retry_nominal, retry_on, failures, status, actor, created_at"
)


def _standing_order(row: asyncpg.Record) -> StandingOrderRow:
    data = dict(row)
    next_date = min((d for d in (data["retry_on"], data["next_due"]) if d is not None), default=None)
    if data["status"] in (StandingOrderStatus.cancelled, StandingOrderStatus.ended):
        next_date = None
    view = StandingOrderView.model_validate(
        {**{k: v for k, v in data.items() if k not in ("next_nominal", "next_due", "retry_nominal", "retry_on", "actor")},
         "next_date": next_date}
    )  # fmt: skip
    return StandingOrderRow(
        view, data["next_nominal"], data["next_due"], data["retry_nominal"], data["retry_on"], data["actor"]
    )


async def get_standing_order(
    conn: asyncpg.Connection, standing_order_id: UUID, *, for_update: bool = False
) -> StandingOrderRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_SO_COLUMNS} FROM standing_order WHERE standing_order_id = $1{lock}", standing_order_id
    )
    return _standing_order(row) if row else None


async def insert_standing_order(conn: asyncpg.Connection, view: StandingOrderView, actor: str, next_due: date) -> None:
    await conn.execute(
        "INSERT INTO standing_order (standing_order_id, payer_account_id, customer_id, payee, kind, amount, currency, "
        "frequency, start_date, end_date, next_nominal, next_due, failures, status, actor, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9, $13, 0, 'active', $11, $12, $12)",
        view.standing_order_id, view.payer_account_id, view.customer_id,
        view.payee.model_dump(mode="json", exclude_none=True), view.kind, view.amount, view.currency,
        view.frequency, view.start_date, view.end_date, actor, view.created_at, next_due,
    )  # fmt: skip


async def update_standing_order(
    conn: asyncpg.Connection, standing_order_id: UUID, now: datetime, **changes: Any
) -> StandingOrderRow:
    allowed = {"next_nominal", "next_due", "retry_nominal", "retry_on", "failures", "status"}
    row = await _update(conn, "standing_order", ("standing_order_id", standing_order_id), _SO_COLUMNS, allowed,
                        now, changes)  # fmt: skip
    return _standing_order(row)


async def account_standing_orders(conn: asyncpg.Connection, account_id: UUID, limit: int) -> list[StandingOrderView]:
    rows = await conn.fetch(
        f"SELECT {_SO_COLUMNS} FROM standing_order WHERE payer_account_id = $1 "
        "ORDER BY created_at DESC, standing_order_id DESC LIMIT $2",
        account_id, limit,
    )  # fmt: skip
    return [_standing_order(r).view for r in rows]


async def due_standing_orders(conn: asyncpg.Connection, today: date, limit: int) -> list[StandingOrderRow]:
    """Active standing orders with an occurrence or a retry due by `today`, locked (SKIP LOCKED:
    replicas share the work, and an order is handled by one of them at a time)."""
    rows = await conn.fetch(
        f"SELECT {_SO_COLUMNS} FROM standing_order WHERE status = 'active' "
        "AND least(next_due, retry_on) <= $1 ORDER BY least(next_due, retry_on) LIMIT $2 "
        "FOR UPDATE SKIP LOCKED",
        today, limit,
    )  # fmt: skip
    return [_standing_order(r) for r in rows]


# --- standing-order occurrences -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OccurrenceRow:
    payment_id: UUID
    standing_order_id: UUID
    nominal: date
    attempt: int
    placed_on: date
    succeeded: bool | None


async def insert_occurrence(
    conn: asyncpg.Connection, payment_id: UUID, standing_order_id: UUID, nominal: date, attempt: int, placed_on: date
) -> bool:
    """True when this occurrence is new; False when some run placed it already."""
    return bool(await conn.fetchval(
        "INSERT INTO standing_order_occurrence (payment_id, standing_order_id, nominal, attempt, placed_on) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        payment_id, standing_order_id, nominal, attempt, placed_on,
    ))  # fmt: skip


async def get_occurrence(conn: asyncpg.Connection, payment_id: UUID) -> OccurrenceRow | None:
    row = await conn.fetchrow(
        "SELECT payment_id, standing_order_id, nominal, attempt, placed_on, succeeded "
        "FROM standing_order_occurrence WHERE payment_id = $1",
        payment_id,
    )
    return OccurrenceRow(**dict(row)) if row else None


async def record_occurrence_result(conn: asyncpg.Connection, payment_id: UUID, succeeded: bool) -> None:
    await conn.execute(
        "UPDATE standing_order_occurrence SET succeeded = $2 WHERE payment_id = $1", payment_id, succeeded
    )


# --- the business day, as learned from the day worker -------------------------------------------




async def learn_holiday(conn: asyncpg.Connection, holiday_date: date, name: str | None, as_of: datetime) -> None:
    await conn.execute(
        "INSERT INTO holiday (holiday_date, name, as_of) VALUES ($1, $2, $3) ON CONFLICT (holiday_date) DO UPDATE "
        "SET name = $2, as_of = $3 WHERE holiday.as_of < $3",
        holiday_date, name, as_of,
    )  # fmt: skip


async def holidays(conn: asyncpg.Connection) -> frozenset[date]:
    return frozenset(r["holiday_date"] for r in await conn.fetch("SELECT holiday_date FROM holiday WHERE name IS NOT NULL"))
