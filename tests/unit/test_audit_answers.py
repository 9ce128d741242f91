"""Audit's answers, pure (issue 13): a command's outcome from its reply, the accounts a record
names, the reports' rules (large value, structuring, security summary), a reply's draft."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.replies import copies_bodies, reply_body
from bus.settings import broker_user
from contracts.common import MAX_REPLY_COPIES, Reply, ReplyCopies, ReplyCopy
from workers.audit.domain.outcomes import (
    classify_outcome,
    outcome_of_reply,
    outcome_payload,
)
from workers.audit.domain.reports import (
    Movement,
    ReportConfig,
    SecurityFact,
    actor_in,
    hour_of,
    is_just_below,
    is_large,
    security_category,
    security_summary,
    structuring_cases,
)
from workers.audit.domain.chain import canonical_json
from workers.audit.domain.subjects import LEDGER_ACCOUNT_KEYS, accounts_of
from workers.audit.handlers.taps import draft_of_reply, drafts_of_reply_copies

# --- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"ok": True, "result": {"payment_id": "x"}}, ("success", "success", None)),
        ({"ok": True, "result": None}, ("success", "success", None)),
        ({"ok": False, "error": {"code": "insufficient_funds", "message": "…"}}, ("refused", "failure", "insufficient_funds")),
        ({"ok": False, "error": {"code": "forbidden", "message": "…"}}, ("refused", "failure", "forbidden")),
        ({"ok": False, "error": {"code": "invalid_message", "message": "…"}}, ("failed", "failure", "invalid_message")),
        ({"ok": True, "result": {"results": [{"result": "ok"}, {"result": "exists"}]}}, ("success", "success", None)),
        ({"ok": True, "result": {"results": [{"result": "ok"}, {"result": "exceeds_credits"}]}},
         ("partial", "partial", "exceeds_credits")),
        ({"ok": True, "result": {"results": [{"result": "exceeds_credits"}, {"result": "exceeds_credits"},
                                             {"result": "account_not_found"}]}}, ("refused", "failure", "exceeds_credits")),
    ],
)  # fmt: skip
def test_a_replys_outcome(reply: dict, expected: tuple) -> None:
    outcome = outcome_of_reply(reply)
    assert outcome is not None
    assert (outcome.result, outcome.status.value, outcome.code) == expected


@pytest.mark.parametrize("reply", [None, [], {"result": {}}, {"ok": "yes"}, {"ok": False}, {"ok": False, "error": {}},
                                   {"ok": False, "error": {"code": ""}}])  # fmt: skip
def test_what_is_no_reply_has_no_outcome(reply: object) -> None:
    assert outcome_of_reply(reply) is None


def test_a_batchs_item_codes_are_counted_and_kept_in_the_payload() -> None:
    outcome = outcome_of_reply({"ok": True, "result": {"results": [{"result": "ok"}, {"result": "exceeds_credits"},
                                                                   {"result": "exceeds_credits"}]}})  # fmt: skip
    assert outcome is not None and outcome.item_codes == {"exceeds_credits": 2, "ok": 1}
    assert outcome_payload(outcome, "m1", "ledger.create_transfers") == {
        "command_id": "m1", "command": "ledger.create_transfers", "result": "partial", "code": "exceeds_credits",
        "items": {"exceeds_credits": 2, "ok": 1},
    }  # fmt: skip


def test_an_outcome_classifies_its_command_and_raises_only_for_security_codes() -> None:
    refused = classify_outcome("payment.initiate_payment", outcome_of_reply({"ok": False, "error": {"code": "limit_exceeded"}}))
    assert (refused.status.value, refused.severity.value, refused.error_code) == ("failure", "high", "limit_exceeded")
    assert refused.risk_score == 100  # 35 × 2 × 1.5 × 1.3 = 136.5, capped
    assert not refused.security_followup and not refused.compliance_followup
    ok = classify_outcome("identity.create_user", outcome_of_reply({"ok": True, "result": {}}))
    assert ok.status.value == "success" and not ok.compliance_followup  # the command's own record raised it
    suspicious = classify_outcome("payment.initiate_payment",
                                  outcome_of_reply({"ok": False, "error": {"code": "suspicious_activity"}}))  # fmt: skip
    assert suspicious.security_followup


# --- a reply's draft ------------------------------------------------------------------------------


def _reply_draft(body: bytes, user: str | None, **kw: object) -> object:
    args = {"message_id": "cmd-1.reply", "command_key": "payment.initiate_payment", "correlation_id": "c1",
            "user_id": user, "max_body_bytes": 10_000} | kw  # fmt: skip
    return draft_of_reply(body, **args)  # type: ignore[arg-type]


def test_a_reply_from_the_commands_worker_is_its_outcome() -> None:
    body = json.dumps({"ok": False, "error": {"code": "insufficient_funds", "message": "secret 1234"}}).encode()
    draft = _reply_draft(body, broker_user("payment"))
    assert (draft.kind, draft.exchange, draft.event_id, draft.causation_id) == ("outcome", "", "cmd-1.reply", "cmd-1")
    assert draft.outcome is not None and draft.outcome[:2] == ("cmd-1", "payment.initiate_payment")
    assert draft.parse_error is None and "secret" not in json.dumps(draft.payload)  # the message is never kept


@pytest.mark.parametrize(
    ("body", "user", "kw", "why"),
    [
        (b'{"ok": true}', "ledger", {}, "comes from payment's broker user"),
        (b'{"ok": true}', None, {}, "comes from payment's broker user"),
        (b"not json", "payment", {}, "not JSON"),
        (b'{"hello": 1}', "payment", {}, "not a reply envelope"),
        (b'{"ok": true}', "payment", {"message_id": "cmd-1"}, "names its command"),
        (b'{"ok": true}', "payment", {"command_key": None}, "names its command"),
    ],
)  # fmt: skip
def test_a_reply_not_believed_is_recorded_with_why_and_indexes_nothing(body: bytes, user: str | None, kw: dict,
                                                                       why: str) -> None:  # fmt: skip
    draft = _reply_draft(body, broker_user(user) if user else None, **kw)
    assert draft.outcome is None and draft.parse_error is not None and why in draft.parse_error
    # A reply for a worker from anyone else raises a security event.
    assert draft.classification.security_followup == ("broker user" in why)


# --- a group commit's replies, copied as one message -----------------------------------------------


def _copy(n: int, reply: Reply, command: str = "ledger.create_transfers") -> ReplyCopy:
    return ReplyCopy(message_id=f"cmd-{n}.reply", command=command, correlation_id=f"c{n}",
                     body=reply_body(reply).decode())  # fmt: skip


def test_each_copy_is_the_outcome_record_its_own_reply_would_have_made() -> None:
    answers = [Reply.success({"results": [{"result": "ok"}]}), Reply.refusal("forbidden", "no"),
               Reply.success({"results": [{"result": "exceeds_credits"}]})]  # fmt: skip
    copies = [_copy(n, r) for n, r in enumerate(answers)]
    [body] = copies_bodies(copies, 1_000_000)
    assert ReplyCopies.model_validate_json(body) == ReplyCopies(replies=copies)  # what the contract reads
    drafts = drafts_of_reply_copies(body, message_id="m", user_id=broker_user("ledger"), max_body_bytes=1_000_000)
    singles = [draft_of_reply(reply_body(r), message_id=f"cmd-{n}.reply", command_key="ledger.create_transfers",
                              correlation_id=f"c{n}", user_id=broker_user("ledger"), max_body_bytes=1_000_000)
               for n, r in enumerate(answers)]  # fmt: skip
    assert drafts == singles  # the same records, hashes of the bytes each asker received included
    assert [d.outcome[2].result for d in drafts if d.outcome] == ["success", "refused", "refused"]


def test_copies_from_another_worker_are_each_not_believed_and_raise_a_security_event() -> None:
    body = copies_bodies([_copy(1, Reply.success({})), _copy(2, Reply.success({}))], 1_000_000)[0]
    drafts = drafts_of_reply_copies(body, message_id="m", user_id=broker_user("payment"), max_body_bytes=1_000_000)
    assert len(drafts) == 2
    assert all(d.outcome is None and "broker user" in (d.parse_error or "") for d in drafts)
    assert all(d.classification.security_followup for d in drafts)


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"not json", "reply copies: invalid body"), (b'{"replies": []}', "reply copies: invalid body"),
     (b'{"replies": [{"message_id": "x.reply", "command": "a.b", "body": "{}", "extra": 1}]}', "reply copies"),
     (b"x" * 2_000, "exceeds 1000 bytes")],
)  # fmt: skip
def test_what_is_not_reply_copies_is_recorded_once_with_why(body: bytes, why: str) -> None:
    [draft] = drafts_of_reply_copies(body, message_id="m", user_id=broker_user("ledger"), max_body_bytes=1_000)
    assert draft.kind == "outcome" and draft.outcome is None and draft.payload is None
    assert draft.parse_error is not None and why in draft.parse_error and draft.message_type == "reply_copies.v1"


@given(st.lists(st.integers(min_value=0, max_value=3_000), max_size=600), st.integers(min_value=500, max_value=20_000))
def test_copies_are_chunked_in_order_within_both_bounds(sizes: list[int], max_bytes: int) -> None:
    copies = [_copy(n, Reply.success({"pad": "x" * size})) for n, size in enumerate(sizes)]
    bodies = copies_bodies(copies, max_bytes)
    chunks = [ReplyCopies.model_validate_json(b).replies for b in bodies]
    assert [c for chunk in chunks for c in chunk] == copies  # every copy once, in order
    for body, chunk in zip(bodies, chunks):
        assert len(chunk) <= MAX_REPLY_COPIES
        assert len(body) <= max_bytes or len(chunk) == 1  # only a copy too large alone passes the bound


# --- accounts a record names --------------------------------------------------------------------

A, B, C = (str(uuid.uuid4()) for _ in range(3))


def named(routing_key: str, body: dict[str, object]) -> tuple[str, ...]:
    return accounts_of(routing_key, canonical_json(body))


def test_accounts_of_a_payment_and_of_a_ledger_transfer() -> None:
    order = {"payment_id": str(uuid.uuid4()), "payer_account_id": A, "payee": {"account_id": B, "name": None}}
    assert named("payment.initiate_payment", order) == tuple(sorted((A, B)))
    transfers = {"transfers": [{"id": str(uuid.uuid4()), "debit_account_id": A, "credit_account_id": C},
                               {"id": str(uuid.uuid4()), "debit_account_id": B, "credit_account_id": C}]}  # fmt: skip
    assert named("ledger.create_transfers", transfers) == tuple(sorted((A, B, C)))
    # A transfer's own id is no account; on the ledger's account messages a bare id is.
    assert named("ledger.create_accounts", {"accounts": [{"id": A, "code": "x"}]}) == (A,)
    assert named("ledger.lookup_accounts", {"ids": [A, B]}) == tuple(sorted((A, B)))
    assert named("ledger.lookup_transfers", {"ids": [A]}) == ()
    assert named("payment.initiate_payment", {"payer_account_id": "not-a-uuid", "account_id": None}) == ()


def test_accounts_of_reads_ids_as_uuids_and_never_inside_a_string() -> None:
    # Another spelling of a UUID is the same account; text that only looks like a key is not one.
    assert named("payment.initiate_payment", {"account_id": A.upper(), "note": f'"account_id":"{B}"'}) == (A,)
    assert named("customer.x", {"account_ids": [A, None, 7, "nope", B]}) == tuple(sorted((A, B)))
    assert named("ledger.lookup_transfers", {"pending_id": A, "ids": [B]}) == ()


def reference(routing_key: str, value: object) -> set[str]:
    """What a body names, found by walking it: a matching key's string (else what it holds is
    walked on), a matching key's flat list of strings."""
    bare = routing_key in LEDGER_ACCOUNT_KEYS
    found: set[str] = set()

    def add(item: object) -> None:
        if isinstance(item, str):
            try:
                found.add(str(uuid.UUID(item)))
            except ValueError:
                pass

    def walk(item: object) -> None:
        if isinstance(item, dict):
            for key, each in item.items():
                if (key.endswith("account_id") or (bare and key == "id")) and isinstance(each, str):
                    add(each)
                elif (key == "account_ids" or (bare and key == "ids")) and isinstance(each, list) and all(
                    not isinstance(one, (list, dict)) for one in each
                ):
                    for one in each:
                        add(one)
                else:
                    walk(each)
        elif isinstance(item, list):
            for each in item:
                walk(each)

    walk(value)
    return found


KEYS = st.sampled_from(["id", "ids", "account_id", "debit_account_id", "account_ids", "payee", "x", 'a"account_id'])
SPELLINGS = [A, B, C.upper(), "{" + A + "}", "not-a-uuid", 'a\\"b\\\\']  # a quote and backslashes too
LEAVES = st.none() | st.integers() | st.sampled_from(SPELLINGS) | st.text(max_size=5)


# Generated bodies are nested and uneven: no deadline, so a loaded machine cannot fail it.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["ledger.create_accounts", "payment.initiate_payment"]),
       st.dictionaries(KEYS, st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                                          | st.dictionaries(KEYS, inner, max_size=3), max_leaves=12), max_size=4))  # fmt: skip
def test_accounts_of_finds_what_a_walk_of_the_body_finds(routing_key: str, body: dict[str, object]) -> None:
    assert set(named(routing_key, body)) == reference(routing_key, body)


@given(st.recursive(st.none() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=30))  # fmt: skip
def test_accounts_of_never_raises(body: object) -> None:
    found = named("ledger.create_accounts", {"x": body})
    assert list(found) == sorted(set(found))


# --- reports ------------------------------------------------------------------------------------

CONFIG = ReportConfig(large_value_minor=1_000_000, structuring_band_bps=1_000, structuring_min_count=3)
DAY = date(2026, 12, 7)


def test_thresholds_are_inclusive_and_just_below_is_the_band_under_them() -> None:
    assert CONFIG.structuring_floor == 900_000
    assert is_large(1_000_000, CONFIG) and not is_large(999_999, CONFIG)
    assert [is_just_below(a, CONFIG) for a in (899_999, 900_000, 999_999, 1_000_000)] == [False, True, True, False]
    assert ReportConfig(large_value_minor=1_000_001, structuring_band_bps=1_000).structuring_floor == 900_001
    with pytest.raises(AssertionError):
        ReportConfig(structuring_min_count=1)


def _m(n: int, customer: str | None, amount: int, day: date = DAY, currency: str = "INR") -> Movement:
    return Movement(payment_id=f"p{n}", seq=n, business_date=day, customer_id=customer, kind="cash_deposit",
                    amount=amount, currency=currency, occurred_at=datetime(2026, 12, 7, tzinfo=timezone.utc))  # fmt: skip


def test_structuring_finds_several_just_below_by_one_customer_in_a_day_and_nothing_else() -> None:
    movements = [
        _m(1, "smurf", 950_000), _m(2, "smurf", 900_000), _m(3, "smurf", 999_999),  # planted
        _m(4, "smurf", 1_000_000),  # large, not just below
        _m(5, "few", 960_000), _m(6, "few", 960_000),  # only two
        _m(7, "low", 899_999), _m(8, "low", 899_999), _m(9, "low", 899_999),  # below the band
        _m(10, "split", 950_000), _m(11, "split", 950_000), _m(12, "split", 950_000, day=date(2026, 12, 8)),  # two days
        _m(13, None, 950_000), _m(14, None, 950_000), _m(15, None, 950_000),  # no customer: not grouped
    ]  # fmt: skip
    assert structuring_cases(movements, CONFIG) == [{
        "business_date": "2026-12-07", "customer_id": "smurf", "currency": "INR", "count": 3,
        "total": 2_849_999, "payment_ids": ["p1", "p2", "p3"], "record_seqs": [1, 2, 3],
    }]  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 2_000_000)), max_size=40))
def test_every_structuring_case_is_several_just_below_movements_of_one_customer(moves: list[tuple[str, int]]) -> None:
    movements = [_m(n, who, amount) for n, (who, amount) in enumerate(moves)]
    cases = structuring_cases(movements, CONFIG)
    for case in cases:
        theirs = [m for m in movements if m.customer_id == case["customer_id"] and is_just_below(m.amount, CONFIG)]
        assert case["count"] == len(theirs) >= CONFIG.structuring_min_count
        assert case["total"] == sum(m.amount for m in theirs)
    flagged = {c["customer_id"] for c in cases}
    for who in {"a", "b", "c"} - flagged:
        assert sum(1 for m in movements if m.customer_id == who and is_just_below(m.amount, CONFIG)) < 3


def test_security_categories_actors_and_hours() -> None:
    assert security_category("identity.login_failed", "event", None) == "failed_logins"
    assert security_category("edge.auth_failed", "event", None) == "failed_logins"
    assert security_category("identity.locked_out", "event", None) == "lockouts"
    assert security_category("payment.access_denied", "event", None) == "access_denied"
    assert security_category("payment.initiate_payment", "outcome", "refused") == "refusals"
    assert security_category("payment.initiate_payment", "outcome", "success") is None
    assert security_category("payment.completed", "event", None) is None
    assert actor_in("identity.login_failed", {"username": "eve"}, None, "cbs.edge") == "eve"
    assert actor_in("edge.access_denied", {"subject": "u-1"}, None, "cbs.edge") == "u-1"
    assert actor_in("edge.auth_failed", {"client": "10.0.0.9"}, None, "cbs.edge") == "client:10.0.0.9"
    assert actor_in("payment.initiate_payment", None, "teller-1", "cbs.edge") == "teller-1"
    assert actor_in("payment.initiate_payment", None, None, None) == "unknown"
    ist = datetime(2026, 12, 7, 20, 15, tzinfo=timezone.utc).astimezone()
    assert hour_of(ist) == "2026-12-07T20:00:00Z"


def test_the_security_summary_counts_by_actor_and_by_hour() -> None:
    at = datetime(2026, 12, 7, 9, 5, tzinfo=timezone.utc)
    later = datetime(2026, 12, 7, 10, 59, tzinfo=timezone.utc)
    facts = [
        SecurityFact(at, "identity.login_failed", "event", None, "eve"),
        SecurityFact(at, "identity.login_failed", "event", None, "eve"),
        SecurityFact(later, "identity.locked_out", "event", None, "eve"),
        SecurityFact(later, "payment.initiate_payment", "outcome", "refused", "bob"),
        SecurityFact(later, "payment.initiate_payment", "outcome", "success", "bob"),  # not counted
    ]
    summary = security_summary(facts)
    assert summary["by_actor"] == [
        {"actor": "bob", "failed_logins": 0, "lockouts": 0, "refusals": 1, "access_denied": 0, "total": 1},
        {"actor": "eve", "failed_logins": 2, "lockouts": 1, "refusals": 0, "access_denied": 0, "total": 3},
    ]
    assert summary["by_hour"] == [
        {"hour": "2026-12-07T09:00:00Z", "failed_logins": 2, "lockouts": 0, "refusals": 0, "access_denied": 0, "total": 2},
        {"hour": "2026-12-07T10:00:00Z", "failed_logins": 0, "lockouts": 1, "refusals": 1, "access_denied": 0, "total": 2},
    ]
