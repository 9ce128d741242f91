"""Audit paused does not stop the bank (issue 10): with the audit worker stopped, transfers flow as
before (its taps are streams, which refuse no publisher); restarted, it records every command and
event the bank handled meanwhile, each once, and the chain verifies."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import asyncpg

from tests.e2e.conftest import ROOT, Cluster


def _bench(cluster: Cluster) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench", "--seconds", "3", "--accounts", "20", "--concurrency", "8"],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _ledger_traffic_since(db: asyncpg.Connection, since: float) -> tuple[set[str], set[str]]:
    """The message ids of the commands ledger handled and the events it published since `since`."""
    commands = await db.fetch("SELECT message_id FROM ledger.inbox WHERE consumer = 'ledger.create_transfers' "
                              "AND received_at >= to_timestamp($1)", since)  # fmt: skip
    events = await db.fetch("SELECT message_id FROM ledger.outbox WHERE exchange = 'cbs.events' "
                            "AND created_at >= to_timestamp($1)", since)  # fmt: skip
    return {r["message_id"] for r in commands}, {r["message_id"] for r in events}


async def _recorded(db: asyncpg.Connection, exchange: str, ids: set[str]) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT event_id, count(*) AS n FROM audit.audit_record WHERE exchange = $1 AND event_id = ANY($2) GROUP BY event_id",
        exchange, list(ids),
    )  # fmt: skip
    return {r["event_id"]: r["n"] for r in rows}


async def _until_recorded(database_url: str, commands: set[str], events: set[str], timeout_s: float) -> None:
    db = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            seen_commands = await _recorded(db, "cbs.commands", commands)
            seen_events = await _recorded(db, "cbs.events", events)
            if len(seen_commands) == len(commands) and len(seen_events) == len(events):
                assert set(seen_commands.values()) == {1} and set(seen_events.values()) == {1}, "each once"
                return
            assert time.monotonic() < deadline, (
                f"audit recorded {len(seen_commands)}/{len(commands)} commands, {len(seen_events)}/{len(events)} events"
            )
            await asyncio.sleep(0.5)
    finally:
        await db.close()


async def _traffic(database_url: str, since: float) -> tuple[set[str], set[str]]:
    db = await asyncpg.connect(database_url)
    try:
        return await _ledger_traffic_since(db, since)
    finally:
        await db.close()


async def _tap_offsets(database_url: str) -> dict[str, tuple[int, int]]:
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch("SELECT stream, next_offset, gaps FROM audit.stream_offset")
        return {r["stream"]: (r["next_offset"], r["gaps"]) for r in rows}
    finally:
        await db.close()


def test_the_bank_runs_while_audit_is_stopped_and_audit_then_records_everything_once(cluster: Cluster) -> None:
    database_url = cluster.env["CBS_DATABASE_URL"]
    cluster.stop("audit")
    try:
        since = time.time()
        report = _bench(cluster)
        moved = re.search(r"^transfers\s+(\d+)$", report, re.M)
        assert moved is not None and int(moved.group(1)) > 0, report
        assert re.search(r"^errors\s+none$", report, re.M) and re.search(r"^ledger\.verify\s+ok$", report, re.M), report
        commands, events = asyncio.run(_traffic(database_url, since))
        assert len(commands) >= int(moved.group(1)) and events, "the bank moved money with audit stopped"
        before = asyncio.run(_tap_offsets(database_url))
    finally:
        cluster.start("audit")
    asyncio.run(_until_recorded(database_url, commands, events, timeout_s=120))
    after = asyncio.run(_tap_offsets(database_url))
    for stream in ("audit.tap.commands", "audit.tap.events"):
        assert after[stream][0] > before.get(stream, (0, 0))[0], f"{stream} was read on from where audit stopped"
        assert after[stream][1] == 0, f"{stream}: nothing was lost to retention"
    with cluster.client() as http:
        verified = http.post("/v1/audit/verify", json={"max_records": 1_000_000}).json()
    assert verified["ok"] is True, verified
