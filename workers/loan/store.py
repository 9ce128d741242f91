"""The loan worker's SQL, in plain asyncpg."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from bus.business_day import business_date, learn_business_date  # noqa: F401  (this worker's store speaks for it)
from contracts.loan import LoanApplicationView, LoanProductTerms, LoanProductView, LoanView, Schedule
from workers.loan.domain.accrual import Period
from workers.loan.domain.applications import LinkedAccount, Standing
from workers.loan.domain.foreclosure import Line
from workers.loan.domain.repayment import Due




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


# --- what the loan worker learns of customers and accounts -----------------------------------------


async def record_customer(conn: asyncpg.Connection, customer_id: UUID, status: str, kyc_status: str, as_of: datetime) -> None:
    await conn.execute(
        "INSERT INTO loan_customer (customer_id, status, kyc_status, as_of) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (customer_id) DO UPDATE SET status = EXCLUDED.status, kyc_status = EXCLUDED.kyc_status, "
        "as_of = EXCLUDED.as_of WHERE loan_customer.as_of <= EXCLUDED.as_of",
        customer_id, status, kyc_status, as_of,
    )  # fmt: skip


async def record_account(conn: asyncpg.Connection, account_id: UUID, customer_id: UUID, currency: str, status: str,
                         as_of: datetime) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO loan_account (account_id, customer_id, currency, status, as_of) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (account_id) DO UPDATE SET status = EXCLUDED.status, as_of = EXCLUDED.as_of "
        "WHERE loan_account.as_of <= EXCLUDED.as_of",
        account_id, customer_id, currency, status, as_of,
    )  # fmt: skip


async def standing(conn: asyncpg.Connection, customer_id: UUID) -> Standing | None:
    row = await conn.fetchrow("SELECT status, kyc_status FROM loan_customer WHERE customer_id = $1", customer_id)
    return Standing(row["status"], row["kyc_status"]) if row else None


async def linked_account(conn: asyncpg.Connection, account_id: UUID) -> LinkedAccount | None:
    row = await conn.fetchrow("SELECT customer_id, currency, status FROM loan_account WHERE account_id = $1", account_id)
    return LinkedAccount(row["customer_id"], row["currency"].strip(), row["status"]) if row else None


# --- applications ----------------------------------------------------------------------------------


async def application(conn: asyncpg.Connection, application_id: UUID, *,
                      for_update: bool = False) -> tuple[LoanApplicationView, dict[str, Any]] | None:  # fmt: skip
    """The application and the request that made it."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT view, request FROM loan_application WHERE application_id = $1{lock}", application_id)
    return (LoanApplicationView.model_validate(row["view"]), row["request"]) if row else None


async def insert_application(conn: asyncpg.Connection, view: LoanApplicationView, request: dict[str, Any]) -> bool:
    """False when the id was taken meanwhile (a concurrent create)."""
    inserted = await conn.fetchval(
        "INSERT INTO loan_application (application_id, customer_id, status, request, view, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
        view.application_id, view.customer_id, view.status.value, request, view.model_dump(mode="json"), view.updated_at,
    )  # fmt: skip
    return bool(inserted)


async def save_application(conn: asyncpg.Connection, view: LoanApplicationView) -> None:
    await conn.execute(
        "UPDATE loan_application SET status = $2, view = $3, updated_at = $4 WHERE application_id = $1",
        view.application_id, view.status.value, view.model_dump(mode="json"), view.updated_at,
    )  # fmt: skip


async def document_request(conn: asyncpg.Connection, document_id: UUID) -> tuple[UUID, dict[str, Any]] | None:
    """Which application a document id belongs to, and the body that added it."""
    row = await conn.fetchrow("SELECT application_id, request FROM loan_application_document WHERE document_id = $1", document_id)
    return (row["application_id"], row["request"]) if row else None


async def insert_document(conn: asyncpg.Connection, document_id: UUID, application_id: UUID, request: dict[str, Any],
                          added_at: datetime) -> bool:  # fmt: skip
    """False when the id was taken meanwhile (the same id added at once elsewhere)."""
    inserted = await conn.fetchval(
        "INSERT INTO loan_application_document (document_id, application_id, request, added_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING RETURNING true",
        document_id, application_id, request, added_at,
    )  # fmt: skip
    return bool(inserted)


# --- loans -------------------------------------------------------------------------------------------


async def next_loan_number(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT nextval('loan_number')")


async def loan(conn: asyncpg.Connection, loan_id: UUID, *, for_update: bool = False) -> LoanView | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT view FROM loan WHERE loan_id = $1{lock}", loan_id)
    return LoanView.model_validate(row["view"]) if row else None


async def insert_loan(conn: asyncpg.Connection, view: LoanView) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO loan (loan_id, application_id, customer_id, status, view, updated_at) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT DO NOTHING RETURNING true",
        view.loan_id, view.application_id, view.customer_id, view.status.value, view.model_dump(mode="json"), view.updated_at,
    )  # fmt: skip
    return bool(inserted)


async def save_loan(conn: asyncpg.Connection, view: LoanView) -> None:
    await conn.execute("UPDATE loan SET status = $2, view = $3, updated_at = $4 WHERE loan_id = $1",
                       view.loan_id, view.status.value, view.model_dump(mode="json"), view.updated_at)  # fmt: skip


# --- instalments and their repayment (close of business's `loan.repayments`) -------------------------


async def insert_instalments(conn: asyncpg.Connection, loan_id: UUID, schedule: Schedule, after: int = 0) -> None:
    """The schedule's instalments, numbered after `after` (a restructured loan's old ones), each
    accruing from the due date before it (the first from the schedule's start); the loan accrued
    through that start."""
    starts = [schedule.disbursed_on, *(i.due_date for i in schedule.instalments[:-1])]
    await conn.executemany(
        "INSERT INTO instalment (loan_id, number, due_date, principal, interest, accrues_from, balance_after) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        [(loan_id, after + i.number, i.due_date, i.principal, i.interest, start, i.balance_after)
         for i, start in zip(schedule.instalments, starts, strict=True)],
    )  # fmt: skip
    await conn.execute("UPDATE loan SET accrued_through = $2 WHERE loan_id = $1", loan_id, schedule.disbursed_on)


async def instalments_of(conn: asyncpg.Connection, loan_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM instalment WHERE loan_id = $1 ORDER BY number", loan_id)


async def start_repayment_run(conn: asyncpg.Connection, business_date: date, *, new_close: bool) -> str:
    """The run's status, locked: a new close of a date asks again what is still pending, and the
    postings the ledger refused (the operators fixed the cause)."""
    if new_close:
        await conn.execute("UPDATE repayment_run SET status = 'asking' WHERE business_date = $1", business_date)
        await conn.execute("UPDATE gl_posting SET status = 'asked', result = NULL WHERE status = 'refused'")
    await conn.execute("INSERT INTO repayment_run (business_date, status) VALUES ($1, 'asking') ON CONFLICT DO NOTHING",
                       business_date)  # fmt: skip
    return await conn.fetchval("SELECT status FROM repayment_run WHERE business_date = $1 FOR UPDATE", business_date)


async def finish_repayment_run(conn: asyncpg.Connection, business_date: date) -> None:
    await conn.execute("UPDATE repayment_run SET status = 'done', updated_at = clock_timestamp() WHERE business_date = $1",
                       business_date)  # fmt: skip


_DUE_COLUMNS = ("i.loan_id, i.number, i.principal, i.interest, (l.view->>'linked_account_id')::uuid AS linked_account_id, "
                "l.view->>'currency' AS currency, l.view->>'number' AS loan_number, "
                "GREATEST(i.accrued_interest - i.paid_interest, 0) AS receivable, l.customer_id")  # fmt: skip


def _due(row: asyncpg.Record) -> Due:
    return Due(row["loan_id"], row["number"], row["principal"], row["interest"], row["linked_account_id"], row["currency"],
               row["loan_number"], row["receivable"], row["customer_id"])  # fmt: skip


async def due_instalments(conn: asyncpg.Connection, business_date: date, limit: int) -> list[Due]:
    """Pending instalments of active loans due on or before the date, oldest first; locked."""
    rows = await conn.fetch(
        f"SELECT {_DUE_COLUMNS} FROM instalment i JOIN loan l USING (loan_id) WHERE i.status = 'pending' "
        "AND i.due_date <= $1 AND l.status IN ('active', 'overdue', 'defaulted') ORDER BY i.due_date, i.loan_id, i.number "
        "LIMIT $2 FOR UPDATE OF i",
        business_date, limit,
    )  # fmt: skip
    return [_due(r) for r in rows]


async def asked_instalments(conn: asyncpg.Connection, business_date: date) -> list[Due]:
    """Those this date's close asked and whose answer has not come."""
    rows = await conn.fetch(
        f"SELECT {_DUE_COLUMNS} FROM instalment i JOIN loan l USING (loan_id) WHERE i.status = 'asked' AND i.asked_on = $1 "
        "ORDER BY i.due_date, i.loan_id, i.number",
        business_date,
    )  # fmt: skip
    return [_due(r) for r in rows]


async def mark_asked(conn: asyncpg.Connection, dues: list[Due], business_date: date) -> None:
    await conn.executemany("UPDATE instalment SET status = 'asked', asked_on = $3 WHERE loan_id = $1 AND number = $2",
                           [(d.loan_id, d.number, business_date) for d in dues])  # fmt: skip


async def settle_instalments(conn: asyncpg.Connection, rows: list[tuple[Due, int, int, str]]) -> dict[tuple[UUID, int], int]:
    """(due, interest taken, principal taken, status): what the debits took, in one statement, and
    the interest received cleared from its suspense (first). Returns, for each instalment settled
    now (not by an earlier answer), how much suspense it cleared."""
    if not rows:
        return {}
    found = await conn.fetch(
        "WITH s AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[], $5::text[]) "
        "           AS s (loan_id, number, interest, principal, status)), "
        "o AS (SELECT i.loan_id, i.number, i.suspended_interest FROM instalment i JOIN s USING (loan_id, number) "
        "      WHERE i.status = 'asked' FOR UPDATE OF i) "
        "UPDATE instalment i SET paid_interest = s.interest, paid_principal = s.principal, status = s.status, "
        "suspended_interest = o.suspended_interest - LEAST(o.suspended_interest, s.interest) FROM s JOIN o USING (loan_id, number) "
        "WHERE i.loan_id = s.loan_id AND i.number = s.number RETURNING i.loan_id, i.number, LEAST(o.suspended_interest, s.interest) AS freed",
        [d.loan_id for d, *_ in rows], [d.number for d, *_ in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
    )  # fmt: skip
    return {(r["loan_id"], r["number"]): r["freed"] for r in found}


async def collections_over(conn: asyncpg.Connection, business_date: date) -> bool:
    """True once for a close: its rounds are over, what follows them (penalties, delinquency,
    reminders, lapses) is done in this transaction."""
    return bool(await conn.fetchval("UPDATE repayment_run SET status = 'posting', updated_at = clock_timestamp() "
                                    "WHERE business_date = $1 AND status = 'asking' RETURNING true", business_date))  # fmt: skip


async def repayments_on(conn: asyncpg.Connection, business_date: date) -> dict[str, int]:
    """What a close's step did, for its report."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(*) FILTER (WHERE status = 'partially_paid') AS partially_paid, "
        "coalesce(sum(paid_interest + paid_principal), 0) AS collected FROM instalment WHERE asked_on = $1",
        business_date,
    )  # fmt: skip
    return {"paid": row["paid"], "partially_paid": row["partially_paid"], "collected": int(row["collected"])}


# --- manual payments ---------------------------------------------------------------------------------


async def owed_instalments(conn: asyncpg.Connection, loan_id: UUID, business_date: date) -> list[asyncpg.Record]:
    """Instalments due on or before the date that still owe something and no one is collecting; locked."""
    return await conn.fetch(
        "SELECT number, due_date, interest - paid_interest AS interest, principal - paid_principal AS principal, "
        "penalty_due, penalty_paid, charges_due - charges_paid AS charges, status, GREATEST(accrued_interest - paid_interest, 0) AS receivable, "
        "suspended_interest AS suspended FROM instalment WHERE loan_id = $1 AND due_date <= $2 "
        "AND status IN ('pending', 'partially_paid') ORDER BY number FOR UPDATE",
        loan_id, business_date,
    )  # fmt: skip


async def payment(conn: asyncpg.Connection, payment_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM loan_payment WHERE payment_id = $1 FOR UPDATE", payment_id)


async def insert_payment(conn: asyncpg.Connection, payment_id: UUID, loan_id: UUID, amount: int, shares: list[dict[str, Any]],
                         now: datetime) -> None:  # fmt: skip
    await conn.execute("INSERT INTO loan_payment (payment_id, loan_id, amount, shares, status, created_at) "
                       "VALUES ($1, $2, $3, $4, 'asked', $5)", payment_id, loan_id, amount, shares, now)  # fmt: skip
    await conn.execute("UPDATE instalment SET status = 'paying' WHERE loan_id = $1 AND number = ANY($2::int[])",
                       loan_id, [s["number"] for s in shares])  # fmt: skip


async def finish_payment(conn: asyncpg.Connection, payment_id: UUID, loan_id: UUID, shares: list[dict[str, Any]], *,
                         refusal: str | None) -> None:  # fmt: skip
    """Taken: each share added to its instalment (paid when nothing is left of it). Refused: each
    instalment as it was."""
    if refusal is None:
        # Within the grace days (`waive`) the penalty accrued is forgiven with the last of what it owed.
        await conn.executemany(
            "UPDATE instalment SET paid_interest = paid_interest + $3, paid_principal = paid_principal + $4, "
            "penalty_paid = penalty_paid + $5, suspended_interest = suspended_interest - $7, charges_paid = charges_paid + $8, "
            "penalty_due = CASE WHEN $6 AND paid_interest + $3 = interest AND paid_principal + $4 = principal "
            "                   THEN penalty_paid + $5 ELSE penalty_due END, "
            "status = CASE WHEN paid_interest + $3 = interest AND paid_principal + $4 = principal "
            "              AND ($6 OR penalty_paid + $5 = penalty_due) AND charges_paid + $8 = charges_due THEN 'paid' ELSE 'partially_paid' END "
            "WHERE loan_id = $1 AND number = $2 AND status = 'paying'",
            [(loan_id, s["number"], s["interest"], s["principal"], s.get("penalty", 0), s.get("waive", False), s.get("released", 0),
              s.get("charges", 0))
             for s in shares],
        )  # fmt: skip
    else:
        await conn.executemany("UPDATE instalment SET status = $3 WHERE loan_id = $1 AND number = $2 AND status = 'paying'",
                               [(loan_id, s["number"], s["before"]) for s in shares])  # fmt: skip
    await conn.execute("UPDATE loan_payment SET status = $2, refusal = $3 WHERE payment_id = $1",
                       payment_id, "refused" if refusal else "done", refusal)  # fmt: skip


async def delinquency(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    """Each running loan with its stored standing and the due date of its oldest instalment still
    owing something past its date (null: none); locked. A loan with a payment in flight is left to
    the next close (the payment decided its booking on the standing it read)."""
    # The standing only (status, days past due), not the whole view: most loans do not change.
    return await conn.fetch(
        "SELECT l.loan_id, l.status, (l.view->>'days_past_due')::int AS days_past_due, "
        "(SELECT min(i.due_date) FROM instalment i WHERE i.loan_id = l.loan_id "
        "AND i.due_date < $1 AND i.status IN ('pending', 'asked', 'paying', 'partially_paid')) AS oldest_owing "
        "FROM loan l WHERE l.status IN ('active', 'overdue', 'defaulted') "
        "AND NOT EXISTS (SELECT 1 FROM instalment p WHERE p.loan_id = l.loan_id AND p.status = 'paying') "
        "ORDER BY l.loan_id FOR UPDATE OF l",
        business_date,
    )  # fmt: skip


async def to_remind(conn: asyncpg.Connection, business_date: date, horizon: date) -> list[asyncpg.Record]:
    """Pending instalments of running loans falling due after the date and by `horizon`, not told yet; marked told."""
    return await conn.fetch(
        "UPDATE instalment i SET reminded_on = $1 FROM loan l WHERE l.loan_id = i.loan_id "
        "AND l.status IN ('active', 'overdue', 'defaulted') AND i.status = 'pending' AND i.reminded_on IS NULL "
        "AND i.due_date > $1 AND i.due_date <= $2 "
        "RETURNING i.loan_id, i.number, i.due_date, i.principal + i.interest AS amount, l.customer_id, "
        "l.view->>'number' AS loan_number, (l.view->>'linked_account_id')::uuid AS linked_account_id",
        business_date, horizon,
    )  # fmt: skip


async def loans_of(conn: asyncpg.Connection, customer_id: UUID, limit: int) -> list[LoanView]:
    rows = await conn.fetch("SELECT view FROM loan WHERE customer_id = $1 ORDER BY (view->>'created_at') DESC LIMIT $2",
                            customer_id, limit)  # fmt: skip
    return [LoanView.model_validate(r["view"]) for r in rows]


async def owing_past_due(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    """Instalments of running loans owing something past their due date, with their product's
    penalty rate, and how far their penalty is accrued; locked."""
    return await conn.fetch(
        "SELECT i.loan_id, i.number, i.due_date, i.penalty_through, i.charges_due > 0 AS charged, "
        "(i.interest - i.paid_interest) + (i.principal - i.paid_principal) AS owing, (p.terms->>'penalty_rate_bps')::int AS penalty_rate_bps, "
        "coalesce((p.terms->>'late_fee')::bigint, 0) AS late_fee, (p.terms->>'grace_days')::int AS grace_days "
        "FROM instalment i JOIN loan l USING (loan_id) "
        "JOIN loan_product_version p ON p.code = l.view->>'product_code' AND p.version = (l.view->>'product_version')::int "
        "WHERE l.status IN ('active', 'overdue', 'defaulted') AND i.due_date < $1 "
        "AND i.status IN ('pending', 'asked', 'paying', 'partially_paid') "
        "AND (i.penalty_through IS NULL OR i.penalty_through < $1) "
        "ORDER BY i.loan_id, i.number FOR UPDATE OF i",
        business_date,
    )  # fmt: skip


async def penalty_standing(conn: asyncpg.Connection, loan_ids: list[UUID]) -> list[asyncpg.Record]:
    """Each loan's view and all it owes in penalties and in charges."""
    return await conn.fetch(
        "SELECT l.view, coalesce(sum(i.penalty_due - i.penalty_paid), 0)::bigint AS penalties_due, "
        "coalesce(sum(i.charges_due - i.charges_paid), 0)::bigint AS charges_due FROM loan l LEFT JOIN instalment i "
        "ON i.loan_id = l.loan_id AND i.status NOT IN ('paid', 'foreclosed', 'written_off', 'restructured') "
        "WHERE l.loan_id = ANY($1::uuid[]) GROUP BY l.loan_id, l.view",
        loan_ids,
    )  # fmt: skip


async def add_penalties(conn: asyncpg.Connection, rows: list[tuple[UUID, int, int, int]], through: date) -> None:
    """(loan_id, number, penalty addition, late fee): each instalment's penalty accrued through
    `through`, and its late fee when one is charged."""
    await conn.executemany(
        "UPDATE instalment SET penalty_due = penalty_due + $3, charges_due = charges_due + $4, "
        "penalty_through = $5 WHERE loan_id = $1 AND number = $2",
        [(loan_id, number, addition, fee, through) for loan_id, number, addition, fee in rows],
    )  # fmt: skip


# --- foreclosure ---------------------------------------------------------------------------------------


async def lines(conn: asyncpg.Connection, loan_id: UUID, *, for_update: bool = False) -> list[Line]:
    lock = " FOR UPDATE" if for_update else ""
    rows = await conn.fetch(
        "SELECT number, due_date, principal, interest, paid_principal, paid_interest, penalty_due, penalty_paid, status, "
        "accrued_interest, suspended_interest, charges_due, charges_paid "
        f"FROM instalment WHERE loan_id = $1 AND status <> 'restructured' ORDER BY number{lock}",
        loan_id,
    )  # fmt: skip
    return [Line(**dict(r)) for r in rows]


async def insert_foreclosure(conn: asyncpg.Connection, payment_id: UUID, loan_id: UUID, amount: int, quote: dict[str, Any],
                             now: datetime) -> None:  # fmt: skip
    await conn.execute("INSERT INTO loan_payment (payment_id, loan_id, amount, shares, status, created_at, kind) "
                       "VALUES ($1, $2, $3, $4, 'asked', $5, 'foreclosure')", payment_id, loan_id, amount, quote, now)  # fmt: skip
    await conn.execute("UPDATE instalment SET status = 'paying' WHERE loan_id = $1 AND status NOT IN ('paid', 'foreclosed')",
                       loan_id)  # fmt: skip


async def finish_foreclosure(conn: asyncpg.Connection, payment_id: UUID, loan_id: UUID, business_date: date,
                             grace_days: int, before: dict[str, str], *, refusal: str | None) -> None:  # fmt: skip
    """Paid: what was due is paid (its penalty taken, or forgiven within the grace), what was not is
    foreclosed (its principal paid, its interest never owed). Refused: each instalment as it was."""
    if refusal is not None:
        await conn.executemany("UPDATE instalment SET status = $3 WHERE loan_id = $1 AND number = $2 AND status = 'paying'",
                               [(loan_id, int(number), status) for number, status in before.items()])  # fmt: skip
    else:
        await conn.execute(
            "UPDATE instalment SET paid_principal = principal, "
            "paid_interest = CASE WHEN due_date <= $2 THEN interest ELSE paid_interest END, penalty_due = penalty_paid + "
            "CASE WHEN due_date <= $2 AND $2 - due_date > $3 THEN penalty_due - penalty_paid ELSE 0 END, "
            "penalty_paid = penalty_paid + CASE WHEN due_date <= $2 AND $2 - due_date > $3 THEN penalty_due - penalty_paid ELSE 0 END, "
            "charges_paid = charges_due, "
            "status = CASE WHEN due_date <= $2 THEN 'paid' ELSE 'foreclosed' END, suspended_interest = 0 "
            "WHERE loan_id = $1 AND status = 'paying'",
            loan_id, business_date, grace_days,
        )  # fmt: skip
    await conn.execute("UPDATE loan_payment SET status = $2, refusal = $3 WHERE payment_id = $1",
                       payment_id, "refused" if refusal else "done", refusal)  # fmt: skip


async def lapsing(conn: asyncpg.Connection, approved_before: date) -> list[LoanApplicationView]:
    """Approved applications never disbursed (no loan asked) whose approval is older than the date; locked."""
    rows = await conn.fetch(
        "SELECT view FROM loan_application WHERE status = 'approved' AND view->>'loan_id' IS NULL "
        "AND (view->>'approved_on')::date < $1 ORDER BY application_id FOR UPDATE",
        approved_before,
    )  # fmt: skip
    return [LoanApplicationView.model_validate(r["view"]) for r in rows]


# --- accrual and the bank-side postings of close of business ----------------------------------------


async def accruing(conn: asyncpg.Connection, business_date: date) -> list[tuple[UUID, str, bool, Period]]:
    """(loan, currency, defaulted, period) of every running loan's instalment still accruing whose
    period has begun by the date; none being paid (a payment in flight decided its own booking);
    locked."""
    rows = await conn.fetch(
        "SELECT i.loan_id, l.view->>'currency' AS currency, l.status = 'defaulted' AS defaulted, i.number, i.accrues_from, "
        "i.due_date, i.interest, i.accrued_interest FROM instalment i JOIN loan l USING (loan_id) "
        "WHERE l.status IN ('active', 'overdue', 'defaulted') AND l.accrued_through < $1 AND i.accrued_interest < i.interest "
        "AND i.accrues_from < $1 AND i.status IN ('pending', 'asked', 'partially_paid', 'paid') "
        "ORDER BY i.loan_id, i.number FOR UPDATE OF i",
        business_date,
    )  # fmt: skip
    return [(r["loan_id"], r["currency"], r["defaulted"],
             Period(r["number"], r["accrues_from"], r["due_date"], r["interest"], r["accrued_interest"])) for r in rows]  # fmt: skip


async def add_accruals(conn: asyncpg.Connection, rows: list[tuple[UUID, int, int, bool]], business_date: date) -> None:
    """(loan_id, number, addition, to suspense): each instalment's accrual; every running loan accrued through the date."""
    await conn.executemany(
        "UPDATE instalment SET accrued_interest = accrued_interest + $3, "
        "suspended_interest = suspended_interest + CASE WHEN $4 THEN $3 ELSE 0 END WHERE loan_id = $1 AND number = $2",
        rows,
    )  # fmt: skip
    await conn.execute("UPDATE loan SET accrued_through = $1 WHERE status IN ('active', 'overdue', 'defaulted') "
                       "AND accrued_through < $1", business_date)  # fmt: skip


async def insert_postings(conn: asyncpg.Connection, business_date: date, kind: str,
                          amounts: dict[tuple[str, str, str], int]) -> None:  # fmt: skip
    """{(currency, debit code, credit code): amount}: one posting each, to be asked."""
    await conn.executemany(
        "INSERT INTO gl_posting (posting_id, business_date, kind, currency, debit_code, credit_code, amount) "
        "VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6)",
        [(business_date, kind, cur, dr, cr, amount) for (cur, dr, cr), amount in amounts.items() if amount > 0],
    )  # fmt: skip


async def asked_postings(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM gl_posting WHERE status = 'asked' ORDER BY created_at, posting_id LIMIT $1", limit)


async def finish_postings(conn: asyncpg.Connection, results: dict[UUID, str]) -> tuple[int, list[str]]:
    """{transfer id: the ledger's result}, of which some may be postings: in the ledger (ok,
    exists) is posted; anything else is refused, kept with its result. How many postings this
    answered, and each refused one as `kind id: result` (the books would disagree: the step fails)."""
    rows = await conn.fetch(
        "UPDATE gl_posting p SET status = CASE WHEN r.result IN ('ok', 'exists') THEN 'posted' ELSE 'refused' END, result = r.result "
        "FROM unnest($1::uuid[], $2::text[]) AS r (id, result) WHERE p.posting_id = r.id AND p.status = 'asked' "
        "RETURNING p.kind, p.posting_id, p.status, p.result",
        list(results), list(results.values()),
    )  # fmt: skip
    return len(rows), [f"{r['kind']} {r['posting_id']}: {r['result']}" for r in rows if r["status"] == "refused"]


async def suspend_interest(conn: asyncpg.Connection, loan_id: UUID) -> int:
    """A loan turned defaulted: its accrued, unreceived interest moves to suspense; how much moved."""
    return await conn.fetchval(
        "WITH before AS (SELECT number, suspended_interest FROM instalment WHERE loan_id = $1 FOR UPDATE), "
        "after AS (UPDATE instalment i SET suspended_interest = GREATEST(i.accrued_interest - i.paid_interest, 0) "
        "          FROM before b WHERE i.loan_id = $1 AND i.number = b.number AND i.status NOT IN ('foreclosed', 'written_off', 'restructured') "
        "          RETURNING i.suspended_interest - b.suspended_interest AS moved) "
        "SELECT coalesce(sum(moved), 0)::bigint FROM after",
        loan_id,
    )  # fmt: skip


async def restore_interest(conn: asyncpg.Connection, loan_id: UUID) -> int:
    """A defaulted loan turned active: what is left in suspense is income again; how much."""
    left = await conn.fetchval("SELECT coalesce(sum(suspended_interest), 0)::bigint FROM instalment WHERE loan_id = $1", loan_id)
    await conn.execute("UPDATE instalment SET suspended_interest = 0 WHERE loan_id = $1 AND suspended_interest > 0", loan_id)
    return left


async def release_interest(conn: asyncpg.Connection, loan_id: UUID, number: int, received: int) -> int:
    """Interest received on an instalment clears its suspense first; how much was released."""
    return await conn.fetchval(
        "WITH o AS (SELECT suspended_interest FROM instalment WHERE loan_id = $1 AND number = $2 FOR UPDATE) "
        "UPDATE instalment i SET suspended_interest = i.suspended_interest - LEAST(o.suspended_interest, $3) FROM o "
        "WHERE i.loan_id = $1 AND i.number = $2 RETURNING LEAST(o.suspended_interest, $3)",
        loan_id, number, received,
    ) or 0  # fmt: skip


# --- write-off and recoveries ------------------------------------------------------------------------


async def write_off_instalments(conn: asyncpg.Connection, loan_id: UUID) -> None:
    """Every instalment not settled is given up with its loan; its suspense was written back."""
    await conn.execute("UPDATE instalment SET status = 'written_off', suspended_interest = 0 "
                       "WHERE loan_id = $1 AND status NOT IN ('paid', 'foreclosed', 'restructured')", loan_id)  # fmt: skip


async def last_instalment_number(conn: asyncpg.Connection, loan_id: UUID) -> int:
    return await conn.fetchval("SELECT coalesce(max(number), 0) FROM instalment WHERE loan_id = $1", loan_id)


async def restructure_instalments(conn: asyncpg.Connection, loan_id: UUID) -> None:
    """Every instalment not paid is closed: what it owed is in the new schedule, its penalty waived."""
    await conn.execute("UPDATE instalment SET status = 'restructured', suspended_interest = 0 "
                       "WHERE loan_id = $1 AND status NOT IN ('paid', 'foreclosed', 'written_off', 'restructured')", loan_id)  # fmt: skip


async def insert_recovery(conn: asyncpg.Connection, payment_id: UUID, loan_id: UUID, amount: int, now: datetime) -> None:
    await conn.execute("INSERT INTO loan_payment (payment_id, loan_id, amount, shares, status, created_at, kind) "
                       "VALUES ($1, $2, $3, '{}'::jsonb, 'asked', $4, 'recovery')", payment_id, loan_id, amount, now)  # fmt: skip


async def finish_recovery(conn: asyncpg.Connection, payment_id: UUID, *, refusal: str | None) -> None:
    await conn.execute("UPDATE loan_payment SET status = $2, refusal = $3 WHERE payment_id = $1",
                       payment_id, "refused" if refusal else "done", refusal)  # fmt: skip


# --- receipts -----------------------------------------------------------------------------------------


async def insert_receipts(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """(receipt_id, loan_id, kind, instalment, business_date, amount, received_at)."""
    await conn.executemany(
        "INSERT INTO loan_receipt (receipt_id, loan_id, kind, instalment, business_date, amount, received_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        rows,
    )  # fmt: skip


async def receipts_of(conn: asyncpg.Connection, loan_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT receipt_id, kind, instalment, business_date, amount, received_at FROM loan_receipt WHERE loan_id = $1 "
        "ORDER BY received_at DESC, receipt_id LIMIT $2",
        loan_id, limit,
    )  # fmt: skip
