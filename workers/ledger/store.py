"""The ledger's SQL, in plain asyncpg. Bulk statements only on the hot path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from uuid import UUID

import asyncpg

from contracts.ledger import AccountFlags, NewAccount, TransferFlags
from workers.ledger.domain.accounts import AccountState
from workers.ledger.domain.transfers import StoredTransfer

_FLAG_BITS = ("linked", "pending", "post_pending", "void_pending", "balancing_debit", "balancing_credit")

_ACCOUNT_COLUMNS = (
    "id, currency, code, debits_must_not_exceed_credits, credits_must_not_exceed_debits, history, frozen, closed, "
    "overdraft_limit, owner_id, debits_pending, debits_posted, credits_pending, credits_posted"
)
_TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, requested_amount, currency, code, flags, pending_id, "
    "timeout_s, reference, user_data, ts, expires_at, state, narration, counterparty"
)


def flags_to_bits(flags: TransferFlags) -> int:
    return sum(1 << i for i, name in enumerate(_FLAG_BITS) if getattr(flags, name))


def bits_to_flags(bits: int) -> TransferFlags:
    return TransferFlags(**{name: bool(bits & (1 << i)) for i, name in enumerate(_FLAG_BITS)})


def _account(row: asyncpg.Record) -> AccountState:
    return AccountState(
        id=row["id"],
        currency=row["currency"],
        code=row["code"],
        flags=AccountFlags(
            debits_must_not_exceed_credits=row["debits_must_not_exceed_credits"],
            credits_must_not_exceed_debits=row["credits_must_not_exceed_debits"],
            history=row["history"],
        ),
        overdraft_limit=row["overdraft_limit"],
        debits_pending=row["debits_pending"],
        debits_posted=row["debits_posted"],
        credits_pending=row["credits_pending"],
        credits_posted=row["credits_posted"],
        frozen=row["frozen"],
        closed=row["closed"],
        owner_id=row["owner_id"],
    )


def _transfer(row: asyncpg.Record) -> StoredTransfer:
    return StoredTransfer(
        id=row["id"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount=row["amount"],
        requested_amount=row["requested_amount"],
        currency=row["currency"],
        code=row["code"],
        flags=bits_to_flags(row["flags"]),
        pending_id=row["pending_id"],
        timeout_s=row["timeout_s"],
        reference=row["reference"],
        user_data=row["user_data"],
        timestamp=row["ts"],
        expires_at=row["expires_at"],
        state=row["state"],
        narration=row["narration"],
        counterparty=row["counterparty"],
    )


async def lock_accounts(conn: asyncpg.Connection, ids: Iterable[UUID]) -> dict[UUID, AccountState]:
    """Lock in id order: two batches touching the same accounts can never deadlock."""
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_account WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
        sorted(set(ids)),
    )
    return {r["id"]: _account(r) for r in rows}


async def lock_ids_for_creation(conn: asyncpg.Connection, ids: Iterable[UUID]) -> None:
    """Serialise concurrent creations of the same new id (a row lock needs a row to exist)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(i::text, 0)) FROM unnest($1::uuid[]) AS i", sorted(set(ids))
    )


async def read_accounts(conn: asyncpg.Connection, ids: Sequence[UUID]) -> list[tuple[AccountState, datetime]]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS}, created_at FROM ledger_account WHERE id = ANY($1::uuid[]) ORDER BY id", list(ids)
    )
    return [(_account(r), r["created_at"]) for r in rows]


async def insert_accounts(conn: asyncpg.Connection, accounts: Sequence[tuple[AccountState, NewAccount]]) -> None:
    """The engine's new states, with what only the store keeps of the request (title, user_data)."""
    await conn.executemany(
        "INSERT INTO ledger_account (id, currency, code, debits_must_not_exceed_credits, credits_must_not_exceed_debits, "
        "history, overdraft_limit, owner_id, user_data, title) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (a.id, a.currency, a.code, a.flags.debits_must_not_exceed_credits, a.flags.credits_must_not_exceed_debits,
             a.flags.history, a.overdraft_limit, a.owner_id, asked.user_data, asked.title)
            for a, asked in accounts
        ],
    )  # fmt: skip


async def load_transfers(conn: asyncpg.Connection, ids: Iterable[UUID]) -> dict[UUID, StoredTransfer]:
    rows = await conn.fetch(f"SELECT {_TRANSFER_COLUMNS} FROM transfer WHERE id = ANY($1::uuid[])", list(set(ids)))
    return {r["id"]: _transfer(r) for r in rows}


async def load_failed(conn: asyncpg.Connection, ids: Iterable[UUID]) -> dict[UUID, str]:
    rows = await conn.fetch("SELECT id, result FROM transfer_failed WHERE id = ANY($1::uuid[])", list(set(ids)))
    return {r["id"]: r["result"] for r in rows}


async def insert_transfers(conn: asyncpg.Connection, transfers: Sequence[StoredTransfer]) -> None:
    if not transfers:
        return
    await conn.copy_records_to_table(
        "transfer",
        columns=[c.strip() for c in _TRANSFER_COLUMNS.split(",")],
        records=[
            (t.id, t.debit_account_id, t.credit_account_id, t.amount, t.requested_amount, t.currency, t.code,
             flags_to_bits(t.flags), t.pending_id, t.timeout_s, t.reference, t.user_data, t.timestamp, t.expires_at,
             t.state, t.narration, t.counterparty)
            for t in transfers
        ],
    )  # fmt: skip


async def update_transfer_states(conn: asyncpg.Connection, transfers: Sequence[StoredTransfer]) -> None:
    if transfers:
        await conn.execute(
            "UPDATE transfer SET state = u.state FROM unnest($1::uuid[], $2::text[]) AS u(id, state) "
            "WHERE transfer.id = u.id",
            [t.id for t in transfers],
            [t.state for t in transfers],
        )


async def insert_failed(conn: asyncpg.Connection, failed: Sequence[tuple[UUID, str]]) -> None:
    if failed:
        await conn.execute(
            "INSERT INTO transfer_failed (id, result) SELECT * FROM unnest($1::uuid[], $2::text[]) "
            "ON CONFLICT DO NOTHING",
            [i for i, _ in failed],
            [r for _, r in failed],
        )


async def save_balances(conn: asyncpg.Connection, accounts: Sequence[AccountState]) -> None:
    if accounts:
        await conn.execute(
            "UPDATE ledger_account SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp, "
            "credits_posted = u.cpo FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) "
            "AS u(id, dp, dpo, cp, cpo) WHERE ledger_account.id = u.id",
            [a.id for a in accounts],
            [a.debits_pending for a in accounts],
            [a.debits_posted for a in accounts],
            [a.credits_pending for a in accounts],
            [a.credits_posted for a in accounts],
        )


async def save_overdraft_limit(conn: asyncpg.Connection, account: AccountState) -> None:
    await conn.execute("UPDATE ledger_account SET overdraft_limit = $2 WHERE id = $1", account.id, account.overdraft_limit)


async def save_flags(conn: asyncpg.Connection, account: AccountState) -> None:
    await conn.execute(
        "UPDATE ledger_account SET frozen = $2, closed = $3 WHERE id = $1", account.id, account.frozen, account.closed
    )


HistoryRow = tuple[UUID, UUID, datetime, str, int, str, bool, int, int, int, int]


async def insert_history(conn: asyncpg.Connection, rows: Sequence[HistoryRow]) -> None:
    if rows:
        await conn.copy_records_to_table(
            "account_history",
            columns=["account_id", "transfer_id", "ts", "code", "amount", "side", "pending", "debits_pending",
                     "debits_posted", "credits_pending", "credits_posted"],
            records=rows,
        )  # fmt: skip


async def history(
    conn: asyncpg.Connection, account_id: UUID, *, since: datetime | None, until: datetime | None,
    code: str | None, after_seq: int | None, limit: int,
) -> list[asyncpg.Record]:  # fmt: skip
    """Each entry with its transfer's words and the account on the other side (its code, owner and
    title, for the domain to name it)."""
    return await conn.fetch(
        "SELECT h.seq, h.transfer_id, h.ts, h.code, h.amount, h.side, h.pending, h.debits_pending, h.debits_posted, "
        "h.credits_pending, h.credits_posted, t.reference, t.narration, t.counterparty AS outside_party, "
        "o.id AS counterparty_account_id, o.code AS other_code, o.owner_id AS other_owner, o.title AS other_title, "
        "(SELECT b.business_date FROM trial_balance b WHERE b.taken_at > h.ts ORDER BY b.taken_at LIMIT 1) AS business_date "
        "FROM account_history h JOIN transfer t ON t.id = h.transfer_id "
        "JOIN ledger_account o ON o.id = CASE WHEN h.side = 'debit' THEN t.credit_account_id ELSE t.debit_account_id END "
        "WHERE h.account_id = $1 AND ($2::timestamptz IS NULL OR h.ts >= $2) "
        "AND ($3::timestamptz IS NULL OR h.ts < $3) AND ($4::text IS NULL OR h.code = $4) "
        "AND ($5::bigint IS NULL OR h.seq > $5) ORDER BY h.seq LIMIT $6",
        account_id, since, until, code, after_seq, limit,
    )  # fmt: skip


async def balance_at(conn: asyncpg.Connection, account_id: UUID, at: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT debits_pending, debits_posted, credits_pending, credits_posted FROM account_history "
        "WHERE account_id = $1 AND ts <= $2 ORDER BY seq DESC LIMIT 1",
        account_id,
        at,
    )


async def expired_pending_ids(conn: asyncpg.Connection, now: datetime, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT id FROM transfer WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2", now, limit
    )
    return [r["id"] for r in rows]


async def ensure_bank_accounts(conn: asyncpg.Connection, currency: str) -> int:
    return await conn.fetchval("SELECT ensure_bank_accounts($1)", currency)


async def keep_trial_balance(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    """Every (currency, code)'s posted debits and credits over all accounts, now, kept for
    `business_date` (taken again, the newer totals replace the older)."""
    return await conn.fetch(
        "INSERT INTO trial_balance (business_date, currency, code, accounts, debits_posted, credits_posted) "
        "SELECT $1, currency, code, count(*), sum(debits_posted), sum(credits_posted) FROM ledger_account "
        "GROUP BY currency, code ON CONFLICT (business_date, currency, code) DO UPDATE SET accounts = excluded.accounts, "
        "debits_posted = excluded.debits_posted, credits_posted = excluded.credits_posted, taken_at = clock_timestamp() "
        "RETURNING currency, code, accounts, debits_posted, credits_posted",
        business_date,
    )


async def keep_day_end_balances(conn: asyncpg.Connection, business_date: date, code: str, *, new_close: bool) -> int:
    """Keep every open `code` account's posted balance for `business_date`, once per close: asked
    again within a close, the first cut stands; a new close of the date (a bank set back to it)
    takes them anew. How many balances the date has."""
    if new_close:
        await conn.execute("DELETE FROM day_end_balance WHERE business_date = $1", business_date)
        await conn.execute("DELETE FROM day_end WHERE business_date = $1", business_date)
    taken = await conn.fetchval(
        "INSERT INTO day_end (business_date, accounts) VALUES ($1, 0) ON CONFLICT DO NOTHING RETURNING true",
        business_date,
    )  # fmt: skip
    if taken:
        status = await conn.execute(
            "INSERT INTO day_end_balance (business_date, account_id, balance) "
            "SELECT $1, id, credits_posted - debits_posted FROM ledger_account "
            "WHERE code = $2 AND NOT closed AND credits_posted <> debits_posted",
            business_date, code,
        )  # fmt: skip
        kept = int(status.split()[-1])  # "INSERT 0 <rows>"
        await conn.execute("UPDATE day_end SET accounts = $2 WHERE business_date = $1", business_date, kept)
    return await conn.fetchval("SELECT accounts FROM day_end WHERE business_date = $1", business_date)


async def day_end_balances(
    conn: asyncpg.Connection, business_date: date, after: UUID | None, limit: int
) -> list[asyncpg.Record] | None:
    """A page of the balances kept for `business_date`, in account id order; None: not taken."""
    if not await conn.fetchval("SELECT true FROM day_end WHERE business_date = $1", business_date):
        return None
    return await conn.fetch(
        "SELECT account_id, balance FROM day_end_balance WHERE business_date = $1 "
        "AND ($2::uuid IS NULL OR account_id > $2) ORDER BY account_id LIMIT $3",
        business_date, after, limit,
    )  # fmt: skip


async def books_cut(conn: asyncpg.Connection, month_end: date) -> datetime | None:
    """When the books of the last business date on or before `month_end` were taken (the trial
    balance, after interest and charges): the cut between that month's statements and the next."""
    return await conn.fetchval(
        "SELECT max(taken_at) FROM trial_balance WHERE business_date = "
        "(SELECT max(business_date) FROM trial_balance WHERE business_date <= $1)",
        month_end,
    )  # fmt: skip


async def books_cut_of(conn: asyncpg.Connection, business_date: date) -> tuple[datetime | None, datetime | None]:
    """The cuts around a closed date's journal: the books of the date before it, and its own."""
    row = await conn.fetchrow(
        "SELECT (SELECT max(taken_at) FROM trial_balance WHERE business_date = $1) AS until, "
        "(SELECT max(taken_at) FROM trial_balance WHERE business_date = "
        "(SELECT max(business_date) FROM trial_balance WHERE business_date < $1)) AS since",
        business_date,
    )  # fmt: skip
    return row["since"], row["until"]


async def journal(conn: asyncpg.Connection, since: datetime | None, until: datetime, after: int,
                  limit: int) -> list[asyncpg.Record]:  # fmt: skip
    """Posted movements between the cuts, one line a side, in history order."""
    return await conn.fetch(
        "SELECT h.seq, h.ts AS at, h.transfer_id, h.account_id, h.side, h.amount, trim(a.currency) AS currency, h.code "
        "FROM account_history h JOIN ledger_account a ON a.id = h.account_id "
        "WHERE NOT h.pending AND h.ts >= $1 AND h.ts < $2 AND h.seq > $3 ORDER BY h.seq LIMIT $4",
        since or datetime.min.replace(tzinfo=until.tzinfo), until, after, limit,
    )  # fmt: skip


async def statements(conn: asyncpg.Connection, account_ids: list[UUID], since: datetime | None,
                     until: datetime) -> list[asyncpg.Record]:  # fmt: skip
    """Per account: the posted balance after its last movement before each cut, and the posted
    credits and debits between them, summed movement by movement."""
    return await conn.fetch(
        """
        SELECT a.id AS account_id,
          coalesce((SELECT h.credits_posted - h.debits_posted FROM account_history h
                    WHERE h.account_id = a.id AND h.ts < $2 ORDER BY h.seq DESC LIMIT 1), 0) AS opening,
          coalesce((SELECT h.credits_posted - h.debits_posted FROM account_history h
                    WHERE h.account_id = a.id AND h.ts < $3 ORDER BY h.seq DESC LIMIT 1), 0) AS closing,
          m.credits, m.debits, m.transfers
        FROM unnest($1::uuid[]) AS a (id)
        CROSS JOIN LATERAL (
          SELECT coalesce(sum(h.amount) FILTER (WHERE h.side = 'credit'), 0) AS credits,
                 coalesce(sum(h.amount) FILTER (WHERE h.side = 'debit'), 0) AS debits, count(*) AS transfers
          FROM account_history h WHERE h.account_id = a.id AND NOT h.pending AND h.ts >= $2 AND h.ts < $3
        ) AS m
        """,
        account_ids, since or datetime.min.replace(tzinfo=until.tzinfo), until,
    )  # fmt: skip


async def kept_trial_balance(conn: asyncpg.Connection, business_date: date) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT currency, code, accounts, debits_posted, credits_posted FROM trial_balance WHERE business_date = $1",
        business_date,
    )


async def db_now(conn: asyncpg.Connection) -> datetime:
    """The database's clock, read under the account locks: one clock for every replica."""
    return await conn.fetchval("SELECT clock_timestamp()")


async def verify(conn: asyncpg.Connection) -> tuple[list[dict], list[dict], int, int]:
    """What `domain.accounts.verified` judges: the accounts whose stored balances differ from their
    transfers (recomputed here), each currency's summed balances, and how many accounts and
    transfers there are."""
    mismatches = await conn.fetch(
        """
        WITH moved AS (
            SELECT debit_account_id AS account_id,
                   sum(amount) FILTER (WHERE state = 'posted' AND flags & 8 = 0) AS dpo,
                   sum(amount) FILTER (WHERE state = 'pending') AS dp,
                   0::numeric AS cpo, 0::numeric AS cp
              FROM transfer GROUP BY debit_account_id
            UNION ALL
            SELECT credit_account_id, 0, 0,
                   sum(amount) FILTER (WHERE state = 'posted' AND flags & 8 = 0),
                   sum(amount) FILTER (WHERE state = 'pending')
              FROM transfer GROUP BY credit_account_id
        ), expected AS (
            SELECT account_id, coalesce(sum(dpo), 0) AS dpo, coalesce(sum(dp), 0) AS dp,
                   coalesce(sum(cpo), 0) AS cpo, coalesce(sum(cp), 0) AS cp
              FROM moved GROUP BY account_id
        )
        SELECT a.id, a.debits_posted, a.debits_pending, a.credits_posted, a.credits_pending,
               coalesce(e.dpo, 0) AS expected_debits_posted, coalesce(e.dp, 0) AS expected_debits_pending,
               coalesce(e.cpo, 0) AS expected_credits_posted, coalesce(e.cp, 0) AS expected_credits_pending
          FROM ledger_account a LEFT JOIN expected e ON e.account_id = a.id
         WHERE a.debits_posted <> coalesce(e.dpo, 0) OR a.debits_pending <> coalesce(e.dp, 0)
            OR a.credits_posted <> coalesce(e.cpo, 0) OR a.credits_pending <> coalesce(e.cp, 0)
        """
    )
    totals = await conn.fetch(
        "SELECT currency, sum(debits_posted) AS debits_posted, sum(credits_posted) AS credits_posted, "
        "sum(debits_pending) AS debits_pending, sum(credits_pending) AS credits_pending "
        "FROM ledger_account GROUP BY currency ORDER BY currency"
    )
    accounts = await conn.fetchval("SELECT count(*) FROM ledger_account")
    transfers = await conn.fetchval("SELECT count(*) FROM transfer")
    return (
        [{k: (str(v) if isinstance(v, UUID) else int(v)) for k, v in dict(r).items()} for r in mismatches],
        [{k: (v if k == "currency" else int(v)) for k, v in dict(r).items()} for r in totals],
        accounts,
        transfers,
    )
