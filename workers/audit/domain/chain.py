"""The hash chain that makes the audit trail append-only.

`hash = SHA-256(prev_hash ‖ canonical_json(record))`, from `GENESIS` (32 zero bytes). Canonical
JSON (`contracts.wire.sorted_json`): keys sorted by code point, no whitespace, UTF-8 with
`ensure_ascii=False`; NaN and infinity as `null` (pydantic's JSON mode, which every payload comes
from, already writes them so; the standard library, which wrote the chain's first records, refused
them, so no stored record holds one); aware datetimes in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
(always 6 fraction digits, a Postgres timestamptz's precision, so a record read back hashes the
same); naive datetimes and sets are refused (no zone, no order); dates ISO; UUIDs and Decimals as
`str`; bytes as lower-case hex; tuples as lists. An expired record keeps its hashes but loses its
payload: `verify_chain` then checks its link only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from contracts.wire import sorted_json, standard_sorted_json

GENESIS = bytes(32)


class BreakReason(StrEnum):
    prev_hash_mismatch = "prev_hash_mismatch"  # the link to the previous record does not hold
    hash_mismatch = "hash_mismatch"  # the record does not recompute to its stored hash


def _canonical_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a naive datetime has no canonical form; give it a time zone")
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        raise TypeError("a set has no canonical order; give a sorted list")
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The record's one byte form (module docstring)."""
    return sorted_json(record, ascii_only=False, default=_canonical_default)


def chain_hash(prev_hash: bytes, record: Mapping[str, Any]) -> bytes:
    """SHA-256(prev_hash ‖ canonical JSON of the record), 32 bytes."""
    assert len(prev_hash) == 32, "prev_hash is 32 bytes"
    return hashlib.sha256(bytes(prev_hash) + canonical_json(record)).digest()


def hash_matches(prev_hash: bytes, record: Mapping[str, Any], stored_hash: bytes) -> bool:
    """Does the record recompute to its stored hash? Records chained before 2026-12-07 were
    written by the standard library's encoder, which spells a float below 1e-4 its own way
    (`contracts.wire`): such a record is checked in that spelling too, so an honest old record is
    never reported as tampered with."""
    if chain_hash(prev_hash, record) == bytes(stored_hash):
        return True
    legacy = standard_sorted_json(record, ascii_only=False, default=_canonical_default)
    return hashlib.sha256(bytes(prev_hash) + legacy).digest() == bytes(stored_hash)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    records_checked: int  # records read, the broken one included
    first_broken_index: int | None = None  # 0-based position in the iterable
    reason: BreakReason | None = None
    last_hash: bytes = GENESIS  # hash of the last record that verified: resume a paged check from it


def verify_chain(
    records: Iterable[tuple[bytes, bytes, Mapping[str, Any] | None]],
    start_prev: bytes = GENESIS,
) -> ChainCheck:
    """Walk (prev_hash, hash, record) in chain order; stop at the first break.

    A break: `prev_hash` differs from the previous record's `hash` (from `start_prev` for the
    first), or `hash` does not recompute from `prev_hash` and the record. A record given as None
    (expired: payload archived) is checked for its link only. Deleting the last records leaves no
    break inside the chain: compare `last_hash` with the stored head to catch a truncated tail.
    """
    expected_prev = bytes(start_prev)
    checked = 0
    for index, (prev_hash, stored_hash, record) in enumerate(records):
        checked += 1
        if bytes(prev_hash) != expected_prev:
            return ChainCheck(False, checked, index, BreakReason.prev_hash_mismatch, expected_prev)
        if record is not None and (len(prev_hash) != 32 or not hash_matches(prev_hash, record, stored_hash)):
            return ChainCheck(False, checked, index, BreakReason.hash_mismatch, expected_prev)
        expected_prev = bytes(stored_hash)
    return ChainCheck(True, checked, None, None, expected_prev)
