"""Opaque keyset cursors: the client passes back what it was given, never an offset."""

from __future__ import annotations

import base64
import json
from typing import Any

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
