"""Opaque keyset cursors: the client passes back what it was given, never an offset."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from contracts.common import MAX_CURSOR_CHARS, ErrorCode, Reply

T = TypeVar("T")
K = TypeVar("K")

# The answer to a cursor this worker did not give; audit says it in its own words.
NOT_OUR_CURSOR = Reply.refusal(ErrorCode.invalid_message, "cursor is not one this service issued")


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str] | None:
    """The values inside a cursor, or None when it is not one of ours."""
    if len(cursor) > MAX_CURSOR_CHARS:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, str) for v in values):
        return None
    return values


def cursor_or_refusal(
    cursor: str | None, decode: Callable[[str], K | None], refusal: Reply = NOT_OUR_CURSOR
) -> tuple[K | None, Reply | None]:
    """Where a page starts: `(key, None)` after the key the cursor names, `(None, None)` at the
    beginning when there is no cursor, `(None, refusal)` when the cursor is not one of ours."""
    if cursor is None:
        return None, None
    key = decode(cursor)
    return (key, None) if key is not None else (None, refusal)


# Lists keyed by one unique text: customers by number, users by username.
def decode_text(cursor: str) -> str | None:
    values = decode_cursor(cursor, 1)
    return values[0] if values is not None else None


# Lists keyed by a serial number: ledger history, audit records. `isdecimal` is what `int` reads.
def decode_seq(cursor: str) -> int | None:
    values = decode_cursor(cursor, 1)
    return int(values[0]) if values is not None and values[0].isdecimal() else None


# Newest-first lists keyed by (a timestamp, an id): accounts by opening, payments by acceptance.
TimeId = tuple[datetime, UUID]


def decode_time_id(cursor: str) -> TimeId | None:
    """The (timestamp, id) a newest-first page ended at, or None when the cursor is not ours."""
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    try:
        return datetime.fromisoformat(values[0]), UUID(values[1])
    except ValueError:
        return None


def page_of(found: Sequence[T], limit: int, key: Callable[[T], tuple[Any, ...]]) -> tuple[list[T], str | None]:
    """`found` was fetched with `limit + 1` rows: the page, and the cursor to the next one if any."""
    page = list(found[:limit])
    return page, encode_cursor(*key(page[-1])) if len(found) > limit else None
