"""Retention (banking-rules §7), a duty: an expired record is archived whole, then its payload
is removed. Every CBS_AUDIT_RETENTION_SWEEP_S seconds (routes.py), into CBS_AUDIT_ARCHIVE_DIR.

The archive is JSON Lines, one file per archiving transaction, named by the seq range it holds
(`audit-<first>-<last>.jsonl`). Each line is a record exactly as it was hashed (`record`: the
chained fields in canonical form) with its `seq`, `prev_hash` and `hash`, so any line can be
checked on its own, offline, against the hash the table keeps: `cbs audit verify-archive FILE…`
(ops/audit_archive.py). The file is written and fsynced before the transaction that removes the
payloads commits; a crash in between leaves a file whose records are archived again by the next
run (a duplicate line is harmless: it verifies the same). The table's trigger allows removing a
payload only once its expiry has passed by the database clock (migration 0002).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bus.handling import Context
from workers.audit import store
from workers.audit.domain import chain

log = logging.getLogger("cbs.audit")

ARCHIVE_BATCH = 1_000  # records per archiving transaction and file
DEFAULT_DIRECTORY = "var/audit-archive"
ARCHIVE_DIRECTORY = Path(os.environ.get("CBS_AUDIT_ARCHIVE_DIR", DEFAULT_DIRECTORY))
RETENTION_SWEEP_S = float(os.environ.get("CBS_AUDIT_RETENTION_SWEEP_S", "3600"))


@dataclass(frozen=True, slots=True)
class ArchiveRun:
    count: int
    first_seq: int
    last_seq: int
    path: Path
    sha256: str  # of the file


def archive_line(row: asyncpg.Record) -> dict[str, Any]:
    """A stored record as it was hashed: what `cbs audit verify-archive` recomputes."""
    chained = store.chained_fields(row)
    assert chained is not None, "an archived record has no payload left to archive"
    return {
        "seq": row["seq"], "prev_hash": bytes(row["prev_hash"]).hex(), "hash": bytes(row["hash"]).hex(),
        "record": json.loads(chain.canonical_json(chained)),
    }  # fmt: skip


def _write_durably(path: Path, lines: list[dict[str, Any]]) -> str:
    """Write, fsync, rename into place, fsync the directory: the file survives a crash once this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                    for line in lines)  # fmt: skip
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return hashlib.sha256(data).hexdigest()


async def archive_expired(conn: asyncpg.Connection, directory: Path, *, batch: int = ARCHIVE_BATCH) -> ArchiveRun | None:
    """Archive up to `batch` expired records in the caller's transaction; None when none is due."""
    rows = await store.expired(conn, batch)
    if not rows:
        return None
    first, last = rows[0]["seq"], rows[-1]["seq"]
    path = directory / f"audit-{first:012d}-{last:012d}.jsonl"
    sha256 = await asyncio.to_thread(_write_durably, path, [archive_line(r) for r in rows])
    await store.remove_payloads(conn, [r["seq"] for r in rows])
    return ArchiveRun(len(rows), first, last, path, sha256)


async def archive_duty(ctx: Context) -> bool:
    """The retention duty: one archiving transaction; True when it took a full batch (more may be due)."""
    run = await archive_expired(ctx.conn, ARCHIVE_DIRECTORY)
    if run is None:
        return False
    log.info("archived %d expired records (seq %d-%d) to %s, sha256 %s",
             run.count, run.first_seq, run.last_seq, run.path, run.sha256)  # fmt: skip
    return run.count == ARCHIVE_BATCH
