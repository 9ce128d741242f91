"""Opaque keyset cursors: the client passes back what it was given, never an offset."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")

MAX_CURSOR_CHARS = 500


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
