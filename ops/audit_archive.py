"""`cbs audit verify-archive FILE…`: check audit's retention archive offline.

An archive file (JSON Lines, written by the audit worker's retention duty) holds one expired
record a line: `{"seq", "prev_hash", "hash", "record"}`, the record in the form it was hashed. A
line verifies when SHA-256(prev_hash ‖ canonical JSON of the record) is its `hash`, the hash the
audit table keeps for that seq. No database or broker is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from workers.audit.domain.chain import hash_matches

MAX_LISTED = 100  # broken seqs printed per file


def verify_line(line: dict[str, Any]) -> bool:
    return hash_matches(bytes.fromhex(line["prev_hash"]), line["record"], bytes.fromhex(line["hash"]))


def verify_file(path: Path) -> tuple[int, list[int]]:
    """(lines read, seqs whose record does not recompute to its hash)."""
    count, bad = 0, []
    with open(path, encoding="utf-8") as f:
        for text in f:
            line = json.loads(text)
            count += 1
            if not verify_line(line):
                bad.append(int(line["seq"]))
    return count, bad


def verify_files(names: Iterable[str], out: TextIO) -> int:
    """One JSON line per file on `out`; 0 when every file verifies, 1 otherwise."""
    failed = False
    for name in names:
        try:
            count, bad = verify_file(Path(name))
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:  # unreadable, or not an archive
            failed = True
            print(json.dumps({"file": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}), file=out)
            continue
        failed |= bool(bad)
        print(json.dumps({"file": name, "records": count, "ok": not bad, "broken_seqs": bad[:MAX_LISTED]}), file=out)
    return 1 if failed else 0
