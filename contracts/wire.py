"""Sorted JSON: the byte form a stored message is published as (`bus.outbox.body_of`) and the
audit chain hashes (`workers.audit.domain.chain.canonical_json`), written by orjson.

Both forms were first written with the standard library's `json.dumps(sort_keys=True,
separators=(",", ":"))`, and bytes already out there depend on them: a receiver's inbox compares
a repeated command's body hash with the first's, and `verify` recomputes the chain's stored
hashes. Issue 10's profiles put that encoder at 11% of the ledger's CPU and 25% of audit's; orjson
writes the same document about ten times faster. `sorted_json` gives the standard library's bytes
for every value but these (`tests/unit/test_wire.py` checks it on generated documents):

- a float of magnitude below 1e-4: orjson writes `1e-7` and `0.00001`, Python `1e-07` and
  `1e-05`. Seeing one in orjson's bytes costs a scan longer than the encoding itself (a UUID's
  `…3e-4…` looks the same), so they are left to differ: no contract has a float field, and the
  chain's verification also accepts the standard library's form (`chain.hash_matches`);
- NaN and infinity: orjson writes `null`, where the standard library (`allow_nan=False`) refused.
  Bodies are dumped by pydantic's JSON mode, which writes `null` already;
- a UUID or an enum: orjson writes `str(uuid)` and the enum's value itself, where the standard
  library asks `default` (or refuses): the chain's `default` writes a UUID as `str` too, and a
  body dumped in JSON mode holds neither.

Where orjson refuses (an integer beyond 64 bits, a key that is not a string), and, with
`ascii_only`, where its bytes hold anything beyond ASCII (the standard library escapes U+007F and
up as `\\uXXXX`), the standard library writes the value, and raises what it always raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def sorted_json(value: Any, *, ascii_only: bool, default: Callable[[Any], Any] | None = None) -> bytes:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only,
    allow_nan=False, default=default).encode()`, byte for byte but for tiny floats and NaN (module
    docstring)."""
    try:
        fast = orjson.dumps(value, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        fast = None
    if fast is not None and not (ascii_only and (not fast.isascii() or b"\x7f" in fast)):
        return fast
    return standard_sorted_json(value, ascii_only=ascii_only, default=default)


def standard_sorted_json(value: Any, *, ascii_only: bool, default: Callable[[Any], Any] | None = None) -> bytes:
    """The standard library's form, as the first bytes were written."""
    return json.dumps(
        value, default=default, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False
    ).encode()


def compact_json(value: Any) -> bytes:
    """Any JSON, unsorted and compact (a jsonb parameter, a reply): orjson, or the standard library
    for what orjson refuses (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()
