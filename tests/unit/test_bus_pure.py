"""Pure pieces of the bus and the edge: cursors, refusal → HTTP status, body models."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_edge.errors import status_for
from api_edge.gateway import body_model
from bus.paging import NOT_OUR_CURSOR, cursor_or_refusal, decode_cursor, decode_seq, decode_text, encode_cursor, page_of
from contracts import account as a
from contracts.common import Reply


# Real cursors hold a timestamp and an id: short printable text.
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40), min_size=1, max_size=3))
def test_cursor_round_trips(values: list[str]) -> None:
    assert decode_cursor(encode_cursor(*values), len(values)) == values


@pytest.mark.parametrize("junk", ["", "!!!", "bm90IGpzb24", encode_cursor("a", "b")])
def test_foreign_cursor_is_refused(junk: str) -> None:
    assert decode_cursor(junk, 3) is None


def test_a_list_starts_at_the_beginning_after_the_cursor_or_refuses_a_foreign_one() -> None:
    assert cursor_or_refusal(None, decode_text) == (None, None)
    assert cursor_or_refusal(encode_cursor("C0042"), decode_text) == ("C0042", None)
    after, refusal = cursor_or_refusal("not-a-cursor", decode_text)
    assert after is None and refusal is NOT_OUR_CURSOR
    assert refusal.error is not None and refusal.error.code == "invalid_message"
    assert refusal.error.message == "cursor is not one this service issued"
    own = Reply.refusal("invalid_cursor", "this cursor is not one audit gave")
    assert cursor_or_refusal(encode_cursor("a", "b"), decode_text, own) == (None, own)


@pytest.mark.parametrize(("value", "seq"), [("0", 0), ("42", 42), ("-1", None), ("1.5", None), ("", None), ("²", None)])
def test_a_sequence_cursor_holds_digits_only(value: str, seq: int | None) -> None:
    assert decode_seq(encode_cursor(value)) == seq


def test_a_page_of_limit_plus_one_rows_carries_the_cursor_to_the_next() -> None:
    page, cursor = page_of(["a", "b", "c"], 2, lambda x: (x,))
    assert page == ["a", "b"] and cursor is not None and decode_text(cursor) == "b"
    assert page_of(["a", "b"], 2, lambda x: (x,)) == (["a", "b"], None)
    assert page_of([], 2, lambda x: (x,)) == ([], None)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_message", 400),
        ("account_not_found", 404),
        ("customer_unknown", 404),
        ("idempotency_key_reused", 409),
        ("exists_with_different_amount", 409),
        ("duplicate_email", 409),
        ("customer_not_eligible", 422),
        ("exceeds_credits", 422),
        ("backpressure", 503),
    ],
)
def test_refusal_codes_map_to_http_statuses(code: str, status: int) -> None:
    assert status_for(code) == status


def test_body_model_drops_path_fields_and_keeps_validation() -> None:
    model = body_model(a.FreezeAccount, exclude={"account_id"}, name="FreezeBody")
    assert set(model.model_fields) == {"actor", "reason"}
    with pytest.raises(ValueError):
        model(actor="", reason="x")


def test_reply_envelope() -> None:
    ok = Reply.success({"a": 1})
    assert ok.ok and ok.result == {"a": 1} and ok.error is None
    refused = Reply.refusal("account_frozen", "frozen", {"id": str(uuid.uuid4())})
    assert not refused.ok and refused.error is not None and refused.error.code == "account_frozen"


def test_json_logs_carry_service_and_correlation_id() -> None:
    import json
    import logging

    from bus.observability import JsonFormatter, correlation_id_var

    token = correlation_id_var.set("corr-1")
    try:
        record = logging.LogRecord("cbs.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        entry = json.loads(JsonFormatter("customer-worker").format(record))
    finally:
        correlation_id_var.reset(token)
    assert entry["msg"] == "hello world" and entry["service"] == "customer-worker" and entry["correlation_id"] == "corr-1"


async def test_an_oversized_body_is_refused_before_it_is_read(monkeypatch) -> None:
    import httpx
    from starlette.responses import PlainTextResponse

    from api_edge.app import BoundedBody

    monkeypatch.setenv("CBS_MAX_BODY_BYTES", "100")
    guarded = BoundedBody(PlainTextResponse("reached"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://edge") as client:
        small, big = await client.post("/", content=b"x" * 100), await client.post("/", content=b"x" * 101)
    assert small.text == "reached"
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"


def test_a_stored_message_travels_as_the_same_bytes_whatever_order_its_keys_come_back_in() -> None:
    """The fast path publishes the dict it wrote; the relay the dict jsonb gives back, keys in
    another order. Both publishes of one command must hash the same in the receiver's inbox."""
    from bus.outbox import body_of

    written = {"accounts": [{"id": "x", "title": "SB-1", "flags": {"history": True, "debits_must_not_exceed_credits": True}}]}
    read_back = {"accounts": [{"flags": {"debits_must_not_exceed_credits": True, "history": True}, "id": "x", "title": "SB-1"}]}
    assert body_of(written) == body_of(read_back)
    assert body_of(written) != body_of({"accounts": [{"id": "x", "title": "SB-2", "flags": {}}]})
