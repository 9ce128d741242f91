"""asyncpg pools: one per worker, connected as the worker's own role, in its own schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from bus import tracing
from contracts.wire import compact_json

# Errors worth another try: the database said "try again" (or was briefly out of reach).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
)
DB_ATTEMPTS = 5  # tries of one transaction within a delivery, before it is nacked for redelivery

# What the workers need of the server's upkeep. Without autovacuum no table is ever analyzed or
# vacuumed, and a worker's statements, prepared once per pooled connection, keep the generic plan
# they were first given on an empty table: nothing tells PostgreSQL to plan them again. Issue 10
# saw it in the ledger: storing a group commit's replies read the whole inbox, 161 blocks a
# commit after one 20-second run and 1,158 after four, and the p99 of 210 transfers a second grew
# from 87 to 172 ms; with autovacuum on, the first analyze brought it to 17 blocks and 0.10 ms.
UPKEEP_SETTINGS = ("autovacuum", "track_counts")


def upkeep_warnings(settings: dict[str, str]) -> list[str]:
    """What is wrong with a server's upkeep settings (`SHOW` values by name), one sentence each."""
    return [
        f"PostgreSQL has {name} = {settings.get(name)!r}: tables are never analyzed or vacuumed, so the workers' "
        f"prepared statements keep plans made for empty tables and slow down as the tables grow; set {name} = on "
        "(PostgreSQL's default; scripts/prepare.sh does it on this machine)"
        for name in UPKEEP_SETTINGS
        if settings.get(name) != "on"
    ]


async def server_upkeep_warnings(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", list(UPKEEP_SETTINGS))
    return upkeep_warnings({r["name"]: r["setting"] for r in rows})


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as the arrays an `INSERT ... SELECT * FROM unnest($1::t[], ...)` takes: one statement
    for a batch, where `executemany` executes once a row. `unnest` keeps the rows' order."""
    assert all(len(r) == width for r in rows), f"every row has {width} columns"
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _encode_jsonb(value: object) -> bytes:
    return b"\x01" + compact_json(value)  # binary jsonb: a version byte, then the text


def _decode_jsonb(data: bytes) -> object:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Without a codec jsonb arrives as str. Binary format, so COPY (bulk inserts) can carry it too.
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections are not reset: asyncpg's default reset is a round trip per
    transaction (RESET ALL, UNLISTEN *, …) and workers change no session state — the schema is
    set once per connection and nothing in a pooled connection LISTENs or holds advisory locks.
    A connection given back inside a transaction (its task was cancelled) is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_traced_connection(conn: asyncpg.Connection) -> None:
    await _init_connection(conn)
    # A span per statement (bus/tracing.py). asyncpg times and reports a statement only while a
    # connection has a query logger, so an untraced pool pays nothing for this.
    conn.add_query_logger(tracing.sql_span_of)


async def create_pool(dsn: str, schema: str, *, max_size: int, application_name: str,
                      traced: bool = False) -> asyncpg.Pool:  # fmt: skip
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        command_timeout=10,
        max_inactive_connection_lifetime=300,
        init=_init_traced_connection if traced else _init_connection,
        reset=_keep_session,
        server_settings={"application_name": application_name, "search_path": schema},
    )
    assert pool is not None
    return pool
