"""Audit rules: the record mapping, severity, status, retention, compliance flags, follow-ups, the
risk score, entities and actors, and the hash chain (banking-rules §7, §9)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops import cli
from contracts.wire import standard_sorted_json
from workers.audit.domain.chain import GENESIS, BreakReason, canonical_json, chain_hash, verify_chain
from workers.audit.domain.classification import (
    ComplianceFlag,
    Outcome,
    RecordType,
    Retention,
    Severity,
    Status,
    classify,
    expires_at,
    message_name,
    risk_score,
)
from workers.audit.domain.subjects import actor_of_headers, entity_of

T, V, S, R, F = RecordType, Severity, Status, Retention, ComplianceFlag

# --- mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "expected"),
    [
        ("ledger.create_transfers", "command", T.transaction),
        ("ledger.transfers_committed", "event", T.transaction),
        ("ledger.lookup_accounts", "command", T.transaction),
        ("ledger.set_account_flags", "command", T.transaction),
        ("loan.disbursed", "event", T.transaction),
        ("loan.payment_received", "event", T.transaction),
        ("loan.penalty_charged", "event", T.transaction),
        ("account.deposited", "event", T.transaction),
        ("payment.initiate_payment", "command", T.payment),
        ("payment.completed", "event", T.payment),
        ("payment.screening_hit", "event", T.payment),
        ("edge.auth_failed", "event", T.authentication),
        ("identity.verify_api_key", "command", T.authentication),
        ("identity.access_revoked", "event", T.authentication),
        ("identity.new_device_login", "event", T.authentication),
        ("edge.access_denied", "event", T.authorization),
        ("account.access_denied", "event", T.authorization),
        ("identity.login_succeeded", "event", T.login),
        ("identity.login_failed", "event", T.login),
        ("identity.issue_token", "command", T.login),
        ("identity.create_user", "command", T.admin),
        ("identity.disable_user", "command", T.admin),
        ("identity.enable_user", "command", T.admin),
        ("identity.user_enabled", "event", T.admin),
        ("identity.rotate_signing_key", "command", T.admin),
        ("identity.create_api_key", "command", T.admin),
        ("identity.revoke_api_key", "command", T.admin),
        ("identity.user_created", "event", T.admin),
        ("identity.key_rotated", "event", T.admin),
        ("partner.access_changed", "event", T.admin),
        ("account.update_product", "command", T.configuration),
        ("payment.set_limits", "command", T.configuration),
        ("account.config_changed", "event", T.configuration),
        ("customer.export_customer_data", "command", T.data_export),
        ("account.generate_statement", "command", T.data_export),
        ("account.statement_generated", "event", T.data_export),
        ("audit.chain_broken", "event", T.security),
        ("audit.security_event_raised", "event", T.security),
        ("identity.locked_out", "event", T.security),
        ("identity.refresh_token_reused", "event", T.security),
        ("edge.suspicious_activity", "event", T.security),
        ("account.opened", "event", T.other),
        ("customer.register_customer", "command", T.other),
        ("account.get_account", "command", T.other),
        ("identity.list_revocations", "command", T.other),
        ("notification.sent", "event", T.other),
        ("", None, T.other),
    ],
)
def test_record_type_mapping(key: str, kind: str | None, expected: RecordType) -> None:
    assert classify(key, None, kind or "event").record_type == expected


def test_message_type_stands_in_for_a_missing_routing_key() -> None:
    assert message_name("", "payment.initiated.v1") == "payment.initiated"
    assert message_name("payment.completed", "payment.initiated.v1") == "payment.completed"
    assert message_name("", None) == ""
    assert classify("", "identity.login_failed.v2", "event").record_type == T.login


@pytest.mark.parametrize("action", ["get_account", "list_customer_accounts", "lookup_transfers", "search_customers", "verify"])
def test_read_commands_are_low_short_and_data_access(action: str) -> None:
    worker = "ledger" if action in ("lookup_transfers", "verify") else "account"
    c = classify(f"{worker}.{action}", None, "command")
    assert c.is_read and c.severity == V.low and c.retention == R.short
    assert c.expires_after == timedelta(days=30)
    assert c.compliance_flags == (F.data_access, F.privacy)  # no financial/aml for a ledger lookup
    assert not c.security_followup and not c.compliance_followup


def test_an_event_is_never_a_read() -> None:
    assert not classify("account.get_account", None, "event").is_read


def test_health_is_low_and_short() -> None:
    c = classify("account.health", None, "command")
    assert (c.severity, c.retention) == (V.low, R.short)


# --- status and severity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "status"),
    [
        ("payment.initiate_payment", "command", S.pending),  # audit sees the request, not the reply
        ("payment.failed", "event", S.failure),
        ("payment.standing_order_failed", "event", S.failure),
        ("identity.login_failed", "event", S.failure),
        ("edge.auth_failed", "event", S.failure),
        ("edge.access_denied", "event", S.failure),
        ("payment.cancelled", "event", S.cancelled),
        ("ledger.transfer_pending", "event", S.pending),
        ("payment.approval_required", "event", S.pending),
        ("payment.completed", "event", S.success),
    ],
)
def test_status_derived_from_the_name(key: str, kind: str, status: Status) -> None:
    assert classify(key, None, kind).status == status  # type: ignore[arg-type]


def test_a_known_outcome_wins() -> None:
    c = classify("payment.initiate_payment", None, "command", Outcome.failure("limit_exceeded"))
    assert (c.status, c.severity, c.error_code) == (S.failure, V.high, "limit_exceeded")
    assert c.risk_score == 100  # 35 × 2 × 1.5 × 1.3 = 136.5
    ok = classify("payment.initiate_payment", None, "command", Outcome.success())
    assert (ok.status, ok.severity, ok.risk_score) == (S.success, V.medium, 35)
    partial = classify("ledger.create_transfers", None, "command", Outcome(S.partial))
    assert partial.status == S.partial and partial.severity == V.medium


def test_severity_order() -> None:
    assert classify("identity.locked_out", None, "event").severity == V.critical
    assert classify("audit.chain_broken", None, "event", Outcome.failure("x")).severity == V.critical
    assert classify("account.get_account", None, "command", Outcome.failure("not_found")).severity == V.high
    assert classify("account.get_account", None, "command").severity == V.low
    assert classify("account.open_account", None, "command").severity == V.medium
    assert classify("account.opened", None, "event").severity == V.medium


# --- retention -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "retention"),
    [
        ("audit.chain_broken", "event", R.permanent),
        ("identity.locked_out", "event", R.long),
        ("ledger.transfers_committed", "event", R.long),
        ("payment.completed", "event", R.long),
        ("loan.disbursed", "event", R.long),
        ("customer.verify_kyc_document", "command", R.long),
        ("customer.kyc_status_changed", "event", R.long),
        ("identity.disable_user", "command", R.long),
        ("account.update_product", "command", R.long),
        ("customer.export_customer_data", "command", R.long),
        ("identity.login_succeeded", "event", R.standard),
        ("edge.access_denied", "event", R.standard),
        ("edge.auth_failed", "event", R.standard),
        ("account.opened", "event", R.standard),
        ("ledger.get_balance_at", "command", R.short),
        ("payment.get_payment", "command", R.short),
    ],
)
def test_retention(key: str, kind: str, retention: Retention) -> None:
    c = classify(key, None, kind)  # type: ignore[arg-type]
    assert c.retention == retention
    assert c.expires_after == {R.short: timedelta(days=30), R.standard: timedelta(days=365),
                               R.long: timedelta(days=2555), R.permanent: None}[retention]  # fmt: skip


def test_expires_at() -> None:
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert expires_at(at, R.short) == datetime(2024, 1, 31, tzinfo=timezone.utc)
    assert expires_at(at, R.long) == at + timedelta(days=2555)
    assert expires_at(at, R.permanent) is None
    with pytest.raises(AssertionError):
        expires_at(datetime(2024, 1, 1), R.short)


# --- compliance flags and follow-ups ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "flags"),
    [
        ("ledger.create_transfers", "command", (F.aml, F.financial)),
        ("payment.completed", "event", (F.aml, F.financial)),
        ("account.transfer_between_accounts", "command", (F.aml, F.financial)),
        ("identity.login_failed", "event", (F.access_control,)),
        ("edge.access_denied", "event", (F.access_control,)),
        ("account.get_account", "command", (F.data_access, F.privacy)),
        ("customer.export_customer_data", "command", (F.data_access, F.privacy)),
        ("identity.create_user", "command", (F.sox,)),
        ("account.update_product", "command", (F.sox,)),
        ("identity.locked_out", "event", (F.immediate_review, F.incident)),
        ("account.opened", "event", ()),
    ],
)
def test_compliance_flags(key: str, kind: str, flags: tuple[ComplianceFlag, ...]) -> None:
    assert classify(key, None, kind).compliance_flags == flags  # type: ignore[arg-type]


def test_security_followups() -> None:
    assert classify("identity.locked_out", None, "event").security_followup  # security type
    assert classify("payment.failed", None, "event").security_followup  # high failure
    assert classify("edge.auth_failed", None, "event").security_followup
    assert classify("account.freeze_account", None, "command", Outcome(S.success, "unauthorized_access")).security_followup
    assert classify("edge.suspicious_activity", None, "event").security_followup
    assert not classify("payment.completed", None, "event").security_followup
    assert not classify("identity.login_succeeded", None, "event").security_followup
    # audit's own events are stored, never reprocessed
    assert not classify("audit.chain_broken", None, "event").security_followup
    assert not classify("audit.security_event_raised", None, "event").security_followup


def test_compliance_followups() -> None:
    assert classify("identity.create_user", None, "command").compliance_followup
    assert classify("account.update_product", None, "command").compliance_followup
    assert classify("customer.export_customer_data", None, "command").compliance_followup
    assert classify("customer.verify_kyc_document", None, "command").regulatory_tags == ("kyc",)
    assert classify("customer.verify_kyc_document", None, "command").compliance_followup
    assert classify("payment.screening_hit", None, "event").compliance_followup
    # the event reporting an admin action does not raise a second one
    assert not classify("identity.user_created", None, "event").compliance_followup
    # routine financial/aml flags alone raise none
    assert not classify("ledger.create_transfers", None, "command").compliance_followup
    assert not classify("audit.compliance_event_raised", None, "event").compliance_followup


def test_kind_must_be_command_or_event() -> None:
    with pytest.raises(AssertionError):
        classify("payment.completed", None, "reply")  # type: ignore[arg-type]


# --- risk score ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_type", "failed", "severity", "has_error", "score"),
    [
        (T.security, True, V.critical, False, 100),  # 80 × 2 × 2 = 320
        (T.security, False, V.critical, False, 100),  # 160
        (T.payment, True, V.high, True, 100),  # 136.5
        (T.payment, False, V.medium, False, 35),
        (T.other, False, V.low, False, 3),  # 2.5 half-up
        (T.authorization, True, V.high, False, 60),
        (T.login, True, V.medium, True, 26),  # §9
        (T.admin, False, V.low, False, 13),  # 12.5 → 13, §9
        (T.data_export, False, V.high, False, 60),  # §9
        (T.authentication, False, V.low, True, 10),  # 15 × 0.5 × 1.3 = 9.75
        (T.transaction, False, V.low, True, 20),  # 30 × 0.5 × 1.3 = 19.5 → 20
        (T.configuration, True, V.high, False, 90),
    ],
)
def test_risk_score(record_type: RecordType, failed: bool, severity: Severity, has_error: bool, score: int) -> None:
    assert risk_score(record_type, failed=failed, severity=severity, has_error=has_error) == score


@given(st.sampled_from(list(RecordType)), st.booleans(), st.sampled_from(list(Severity)), st.booleans())
def test_risk_score_bounds_and_monotone(record_type: RecordType, failed: bool, severity: Severity, has_error: bool) -> None:
    score = risk_score(record_type, failed=failed, severity=severity, has_error=has_error)
    assert 0 <= score <= 100
    assert risk_score(record_type, failed=True, severity=severity, has_error=has_error) >= score
    assert risk_score(record_type, failed=failed, severity=severity, has_error=True) >= score


def test_classify_carries_the_risk_score() -> None:
    c = classify("edge.access_denied", None, "event")  # authorization failure, high
    assert c.risk_score == 60
    assert classify("identity.locked_out", None, "event").risk_score == 100


# --- entity and actor ------------------------------------------------------------------------

P, A, C, U, SO, PY, K, TR = (uuid.uuid4() for _ in range(8))


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [
        ("payment.initiate_payment", {"payment_id": str(P), "payee_id": str(PY)}, ("payment", str(P))),
        ("payment.completed", {"payment_id": str(P), "customer_id": str(C)}, ("payment", str(P))),
        ("payment.add_payee", {"payee_id": str(PY), "customer_id": str(C)}, ("payee", str(PY))),
        ("payment.create_standing_order", {"standing_order_id": str(SO), "payer_account_id": str(A)},
         ("standing_order", str(SO))),
        ("payment.standing_order_failed", {"standing_order_id": str(SO), "payment_id": str(P)},
         ("standing_order", str(SO))),
        ("payment.list_account_payments", {"account_id": str(A)}, ("account", str(A))),
        ("account.list_customer_accounts", {"customer_id": str(C)}, ("customer", str(C))),
        ("account.opened", {"account_id": str(A), "customer_id": str(C)}, ("account", str(A))),
        ("customer.verify_kyc_document", {"customer_id": str(C)}, ("customer", str(C))),
        ("identity.create_user", {"user_id": str(U), "customer_id": str(C)}, ("user", str(U))),
        ("identity.login_succeeded", {"user_id": str(U), "customer_id": str(C)}, ("user", str(U))),
        ("identity.create_api_key", {"key_id": str(K), "user_id": str(U)}, ("api_key", str(K))),
        ("ledger.create_transfers", {"transfers": [{"id": str(TR)}, {"id": str(uuid.uuid4())}]}, ("transfer", str(TR))),
        ("ledger.transfer_posted", {"id": str(TR), "debit_account_id": str(A)}, ("transfer", str(TR))),
        ("ledger.transfers_committed", {"transfers": [{"id": str(TR)}, {"id": str(A)}]}, ("transfer", str(TR))),
        ("ledger.lookup_transfers", {"ids": [str(TR)]}, ("transfer", str(TR))),
        ("ledger.create_accounts", {"accounts": [{"id": str(A)}]}, ("account", str(A))),
        ("ledger.account_created", {"id": str(A), "owner_id": str(C)}, ("account", str(A))),
        ("ledger.set_account_flags", {"account_id": str(A)}, ("account", str(A))),
        ("notification.sent", {"customer_id": C}, ("customer", str(C))),  # a UUID object reads as str
        ("edge.auth_failed", {"username": "x"}, (None, None)),
        ("ledger.create_transfers", {"transfers": []}, (None, None)),
        ("payment.get_payment", {"payment_id": None, "account_id": ""}, (None, None)),
    ],
)
def test_entity_of(key: str, body: dict, expected: tuple[str | None, str | None]) -> None:
    assert entity_of(key, body) == expected


@given(st.text(max_size=30), st.dictionaries(st.text(max_size=20), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10), max_size=6))  # fmt: skip
def test_entity_of_never_raises(key: str, body: dict) -> None:
    entity, entity_id = entity_of(key, body)
    assert (entity is None) == (entity_id is None)


def test_actor_of_headers() -> None:
    header = json.dumps({"sub": "alice", "roles": ["admin"], "customer_id": None, "via": "token"})
    assert actor_of_headers(header) == "alice"
    assert actor_of_headers(header.encode()) == "alice"
    for bad in (None, "", "not json", "[]", '{"roles": []}', '{"sub": null}', '{"sub": ""}', '{"sub": {}}', b"\xff"):
        assert actor_of_headers(bad) is None  # type: ignore[arg-type]


@given(st.one_of(st.none(), st.text(), st.binary()))
def test_actor_of_headers_never_raises(header: str | bytes | None) -> None:
    result = actor_of_headers(header)
    assert result is None or isinstance(result, str)


# --- canonical JSON --------------------------------------------------------------------------


def test_canonical_json_shape() -> None:
    rid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    record = {"b": 1, "a": {"z": [1, 2], "y": "ü"}, "at": datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc), "id": rid}
    assert canonical_json(record) == (
        '{"a":{"y":"ü","z":[1,2]},"at":"2024-05-01T12:00:00.000000Z","b":1,'
        '"id":"12345678-1234-5678-1234-567812345678"}'
    ).encode()


def test_canonical_datetimes_are_utc_whatever_the_zone() -> None:
    utc = datetime(2024, 5, 1, 6, 30, 0, 123, tzinfo=timezone.utc)
    ist = utc.astimezone(ZoneInfo("Asia/Kolkata"))
    assert canonical_json({"t": utc}) == canonical_json({"t": ist}) == b'{"t":"2024-05-01T06:30:00.000123Z"}'
    with pytest.raises(ValueError):
        canonical_json({"t": datetime(2024, 5, 1)})


def test_canonical_other_types() -> None:
    assert canonical_json({"d": date(2024, 2, 29), "x": Decimal("1.50"), "h": b"\x00\xff", "t": (1, 2)}) == (
        b'{"d":"2024-02-29","h":"00ff","t":[1,2],"x":"1.50"}'
    )
    for bad in ({"s": {1, 2}}, {"o": object()}):
        with pytest.raises((TypeError, ValueError)):
            canonical_json(bad)
    # As pydantic's JSON mode writes them (every payload is dumped so), and as the record is stored:
    # hashed and read back, it is the same `null`.
    assert canonical_json({"f": float("nan"), "g": float("-inf")}) == b'{"f":null,"g":null}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8), st.randoms())
def test_canonical_json_ignores_key_order(record: dict, rnd) -> None:
    items = list(record.items())
    rnd.shuffle(items)
    assert canonical_json(dict(items)) == canonical_json(record)
    assert json.loads(canonical_json(record)) == record  # round-trips


# --- hash chain ------------------------------------------------------------------------------


def _chain(records: list[dict], start: bytes = GENESIS) -> list[tuple[bytes, bytes, dict]]:
    out, prev = [], start
    for record in records:
        h = chain_hash(prev, record)
        out.append((prev, h, record))
        prev = h
    return out


RECORDS = [{"seq": i, "routing_key": "payment.completed", "amount": 100 * i, "risk_score": 35} for i in range(5)]


def test_genesis_and_hash_definition() -> None:
    assert GENESIS == b"\x00" * 32
    chain = _chain(RECORDS)
    assert chain[0][0] == GENESIS
    assert chain[0][1] == hashlib.sha256(GENESIS + canonical_json(RECORDS[0])).digest()
    assert len(chain[0][1]) == 32


def test_an_intact_chain_verifies() -> None:
    chain = _chain(RECORDS)
    check = verify_chain(chain)
    assert (check.ok, check.records_checked, check.first_broken_index, check.reason) == (True, 5, None, None)
    assert check.last_hash == chain[-1][1]
    assert verify_chain([]) == verify_chain([], GENESIS)
    assert verify_chain([]).ok and verify_chain([]).last_hash == GENESIS


def test_a_record_chained_by_the_standard_librarys_encoder_still_verifies() -> None:
    """Before 2026-12-07 the chain was written by `json.dumps`, which spells a float below 1e-4
    (`1e-07`) unlike orjson (`1e-7`): such an honest old record verifies, a changed one does not."""
    old = {"seq": 0, "routing_key": "x.replied", "payload": {"result": {"tiny": 1e-7}}}
    assert canonical_json(old) != standard_sorted_json(old, ascii_only=False)
    written = hashlib.sha256(GENESIS + standard_sorted_json(old, ascii_only=False)).digest()
    assert verify_chain([(GENESIS, written, old)]).ok
    changed = {**old, "payload": {"result": {"tiny": 2e-7}}}
    assert verify_chain([(GENESIS, written, changed)]).reason == BreakReason.hash_mismatch


def test_a_paged_check_resumes_from_last_hash() -> None:
    chain = _chain(RECORDS)
    first = verify_chain(chain[:2])
    assert verify_chain(chain[2:], first.last_hash).ok
    assert not verify_chain(chain[2:]).ok  # not from GENESIS


def test_tampering_with_a_field_is_detected() -> None:
    chain = _chain(RECORDS)
    prev, h, record = chain[2]
    chain[2] = (prev, h, {**record, "amount": 1})
    check = verify_chain(chain)
    assert (check.ok, check.first_broken_index, check.reason, check.records_checked) == (
        False, 2, BreakReason.hash_mismatch, 3)  # fmt: skip
    assert check.last_hash == chain[1][1]


def test_rehashing_a_tampered_record_breaks_the_next_link() -> None:
    chain = _chain(RECORDS)
    prev, _, record = chain[2]
    forged = {**record, "amount": 1}
    chain[2] = (prev, chain_hash(prev, forged), forged)
    check = verify_chain(chain)
    assert (check.first_broken_index, check.reason) == (3, BreakReason.prev_hash_mismatch)


def test_reordering_is_detected() -> None:
    chain = _chain(RECORDS)
    chain[1], chain[2] = chain[2], chain[1]
    check = verify_chain(chain)
    assert (check.ok, check.first_broken_index, check.reason) == (False, 1, BreakReason.prev_hash_mismatch)


def test_deleting_a_record_is_detected() -> None:
    chain = _chain(RECORDS)
    del chain[1]
    assert verify_chain(chain).first_broken_index == 1
    chain = _chain(RECORDS)
    del chain[0]
    assert verify_chain(chain).first_broken_index == 0  # the first no longer starts at GENESIS


def test_a_tampered_stored_hash_is_detected() -> None:
    chain = _chain(RECORDS)
    prev, h, record = chain[4]
    chain[4] = (prev, bytes(32), record)
    assert (verify_chain(chain).first_broken_index, verify_chain(chain).reason) == (4, BreakReason.hash_mismatch)


def test_an_expired_record_is_checked_for_its_link_only() -> None:
    chain = _chain(RECORDS)
    prev, h, _ = chain[1]
    chain[1] = (prev, h, None)  # payload archived, hashes kept
    assert verify_chain(chain).ok
    chain[1] = (bytes(32), h, None)
    assert verify_chain(chain).first_broken_index == 1


def test_the_chain_hash_is_independent_of_key_order() -> None:
    record = {"a": 1, "b": {"c": 2, "d": 3}}
    assert chain_hash(GENESIS, record) == chain_hash(GENESIS, {"b": {"d": 3, "c": 2}, "a": 1})


@given(st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=4), min_size=1, max_size=8), st.data())
def test_any_single_change_is_detected(records: list[dict], data: st.DataObject) -> None:
    chain = _chain(records)
    assert verify_chain(chain).ok
    i = data.draw(st.integers(0, len(chain) - 1))
    prev, h, record = chain[i]
    changed = {**record, "__tampered__": True}
    chain[i] = (prev, h, changed)
    check = verify_chain(chain)
    assert not check.ok and check.first_broken_index == i


@given(st.lists(st.integers(), min_size=2, max_size=8, unique=True), st.data())
def test_any_reordering_is_detected(seqs: list[int], data: st.DataObject) -> None:
    chain = _chain([{"seq": s} for s in seqs])
    order = data.draw(st.permutations(range(len(chain))))
    shuffled = [chain[i] for i in order]
    assert verify_chain(shuffled).ok == (list(order) == list(range(len(chain))))


# --- archive lines, checked offline (`cbs audit verify-archive`) ----------------------------


def test_verify_archive_recomputes_each_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [{"seq": 7 + i, "prev_hash": prev.hex(), "hash": h.hex(), "record": record}
             for i, (prev, h, record) in enumerate(_chain(RECORDS))]  # fmt: skip
    good, tampered, junk = tmp_path / "good.jsonl", tmp_path / "tampered.jsonl", tmp_path / "junk.jsonl"
    good.write_text("".join(json.dumps(line) + "\n" for line in lines))
    lines[3]["record"] = {**lines[3]["record"], "amount": 1}
    tampered.write_text("".join(json.dumps(line) + "\n" for line in lines))
    junk.write_text("not an archive\n")

    def run(*paths: object) -> tuple[int, list[dict]]:
        code = cli.main(["audit", "verify-archive", *map(str, paths)])
        return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert run(good) == (0, [{"file": str(good), "records": 5, "ok": True, "broken_seqs": []}])
    assert run(good, tampered) == (1, [{"file": str(good), "records": 5, "ok": True, "broken_seqs": []},
                                       {"file": str(tampered), "records": 5, "ok": False, "broken_seqs": [10]}])  # fmt: skip
    code, out = run(junk, tmp_path / "missing.jsonl")
    assert code == 1 and [(o["ok"], o["error"].split(":")[0]) for o in out] == [
        (False, "JSONDecodeError"), (False, "FileNotFoundError")]  # fmt: skip
    with pytest.raises(SystemExit):
        cli.main(["audit", "verify-archive"])  # a file is required
