"""contracts/wire.py: orjson's speed, the standard library's bytes. Bytes already published and
hashed depend on them (a repeated command's body hash, the audit chain's stored hashes)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.wire import compact_json, sorted_json, standard_sorted_json


def _standard(value: object, *, ascii_only: bool, default=None) -> bytes:
    return json.dumps(
        value, default=default, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False
    ).encode()


_text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\x7f", "\x00\x1f\b\f\n\r\t", "\u2028\u2029", "é", "€", "😀", 'q"\\/', "a:1e5", "[2.5", "NaN"]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits: orjson refuses, the fallback answers
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or abs(f) >= 1e-4)
    | st.sampled_from([1e-4, 1e15, 1e16, 1.5e300, -0.0, 0.1, 100.0])
    | _text
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(_values, st.booleans())
def test_the_standard_librarys_bytes_for_any_json(value: object, ascii_only: bool) -> None:
    assert sorted_json(value, ascii_only=ascii_only) == _standard(value, ascii_only=ascii_only)


def _default(value: object) -> object:
    """Some `default`: what it writes comes out the same on both paths, what it refuses raises the
    same. It writes a UUID as `str`, as orjson does without asking it (contracts/wire.py)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("naive")
    if isinstance(value, (set, frozenset)):
        raise TypeError("set")
    return str(value)


def test_what_default_writes_is_the_same_and_what_it_refuses_raises_the_same() -> None:
    value = {"t": datetime(2024, 5, 1, 6, 30, tzinfo=timezone.utc), "d": date(2024, 2, 29), "x": Decimal("1.50"),
             "u": UUID(int=7), "h": b"\x00\xff", "tuple": (1, "é")}  # fmt: skip
    for ascii_only in (False, True):
        assert sorted_json(value, ascii_only=ascii_only, default=_default) == _standard(
            value, ascii_only=ascii_only, default=_default
        )
    with pytest.raises(ValueError, match="naive"):
        sorted_json({"t": datetime(2024, 5, 1)}, ascii_only=False, default=_default)
    with pytest.raises(TypeError, match="set"):
        sorted_json({"s": {1}}, ascii_only=False, default=_default)


def test_a_key_that_is_not_a_string_is_the_standard_librarys_to_write() -> None:
    assert sorted_json({2: "b", 1: "a"}, ascii_only=True) == b'{"1":"a","2":"b"}'


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != 0 and abs(f) < 1e-4))
def test_a_tiny_float_is_the_same_number_in_another_spelling(tiny: float) -> None:
    fast, standard = sorted_json([tiny], ascii_only=True), standard_sorted_json([tiny], ascii_only=True)
    assert json.loads(fast) == json.loads(standard) == [tiny]


@given(_values)
def test_compact_json_round_trips(value: object) -> None:
    assert json.loads(compact_json(value)) == value



def test_the_usual_body_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times of day, amounts in text, UUIDs, and non-ASCII text where it may be written raw do not
    send a body to the standard library."""
    import contracts.wire as wire

    def refuse(*_: object, **__: object) -> bytes:
        raise AssertionError("fell back to the standard library")

    monkeypatch.setattr(wire.json, "dumps", refuse)
    body = {"at": "2026-12-07T06:00:00.123456Z", "narration": "NEFT to Asha, 1,000.50 rupees", "amount": 100_000,
            "ids": ["3e4f0000-3e4f-0000-0000-000000000001"], "nested": [{"ok": True, "n": None, "rate": 0.5}]}  # fmt: skip
    assert json.loads(sorted_json(body, ascii_only=True)) == body
    assert json.loads(sorted_json({**body, "name": "José"}, ascii_only=False)) == {**body, "name": "José"}
