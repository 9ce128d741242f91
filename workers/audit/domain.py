"""Audit rules (banking-rules §7): what a command or event record is (type, severity, status,
retention, compliance flags, risk score, follow-ups), what it is about, who asked, and the hash
chain that makes the trail append-only.

Pure: no I/O, no clock, no random. Audit binds `#` on `cbs.commands` and `cbs.events`; the worker
classifies each message with `classify`, finds its subject with `entity_of` and its actor with
`actor_of_headers`, and chains the stored record with `chain_hash`. Bodies arrive already redacted
by the contracts (`model_dump(mode="json", context={"redact": True})`), so nothing here masks.

Decisions the rules leave open:
- The name is the routing key `<worker>.<action>`; when it is empty or has no dot, the AMQP
  `type` (`<worker>.<action>.v<N>`) minus its version stands in. A name that is neither is `other`.
- Mapping, first match wins:
  1. security: `audit.chain_broken`, `audit.security_event_raised`, `identity.locked_out`,
     `identity.refresh_token_reused`, and any action `suspicious_activity`, `intrusion_detected`,
     `security_alert`.
  2. authentication: `edge.auth_failed`, `identity.verify_api_key`, `identity.revoke_refresh_token`,
     `identity.access_revoked` (access ended by a disable, a logout, a reused refresh token or a
     revoked key: the admin action that caused it is recorded as admin on its own).
     login: `identity.issue_token` (the login request) and `identity.login_*`.
     authorization: `edge.access_denied` and any worker's `*.access_denied`.
  3. admin: `identity.` create_user, disable_user, enable_user, create_api_key, revoke_api_key,
     rotate_signing_key and their events (user_created, user_disabled, user_enabled,
     api_key_created, api_key_revoked, key_rotated); `partner.access_changed`; any
     `*.grant_role`/`revoke_role`.
  4. `ledger.*` → transaction (reads included: the type says the domain, the severity says read).
  5. configuration: actions starting `configure_`, `set_config`, `update_config`, `set_limit`,
     `update_limit`, `create_product`, `update_product`, `retire_product`, `set_rate`,
     `update_rate`, `set_fee`, `update_fee`, `set_holiday`, `add_holiday`, `remove_holiday`, and the
     events `*.config_changed`, `*.settings_changed`, `*.product_changed`, `*.limits_changed`,
     `*.rates_changed`, `*.holidays_changed`.
  6. data_export: actions starting `export_` and `generate_statement`, `download_statement`,
     `generate_report`; events `*.exported`, `*.export_completed`, `*.statement_generated`,
     `*.report_generated`.
  7. transaction: the loan money events (`loan.disbursed`, `payment_received`, `penalty_charged`,
     `written_off`) and the account money events (`account.deposited`, `withdrawn`, `transferred`,
     `interest_credited`, `fee_charged`): money moves, so they score like ledger records.
  8. `payment.*` → payment. 9. everything else → other.
- Reads are commands whose action starts `get_`, `list_`, `lookup_`, `search_`, or is `verify`.
  Health is an action `health`, `healthcheck`, `heartbeat`, `ping`, or `health_*`.
- Status: the `Outcome` when the caller knows it. Else a command is `pending` (audit sees the
  request, not the reply) and an event is derived from its action: `*failed`/`*access_denied` →
  failure, `*cancelled` → cancelled, `*_pending`/`*approval_required` → pending, else success.
- Severity, first match: security type → critical; failure → high; read or health → low; else medium.
- Retention, first match: `audit.chain_broken` → permanent; security → long; reads and health →
  short; transaction, payment, admin, configuration, data export, KYC → long (an export raises a
  compliance event, so its evidence is kept as long); login, authentication, authorization →
  standard; everything else → standard.
- Compliance flags: reads carry only `data_access`, `privacy` (a ledger lookup moves no money).
  Otherwise transaction, payment or an action naming a transfer → `financial`, `aml`; login,
  authentication, authorization → `access_control` (the rule names login; the other two are the
  same control); data export → `data_access`, `privacy`; admin and configuration → `sox`
  (configuration is change management under the same control); security → `incident`,
  `immediate_review`. Flags are sorted, so a stored record hashes the same whatever the order.
- Regulatory tags: `kyc` for the customer KYC actions (`*kyc*`, `customer.risk_changed`) and
  `sanctions_screening` for `payment.screening_hit`. A tag raises a compliance event.
- Follow-ups: a security event for a security-type record, any failure of high or critical
  severity, or the code `auth_failed`, `unauthorized_access`, `suspicious_activity` as the error
  code or the action; a compliance event for admin, configuration and export *commands* (the
  action, carrying its actor: the event that reports it raises none, so one action raises one) and
  for any record with a regulatory tag. `audit.*` records never raise follow-ups: audit stores its
  own events without reprocessing them.
- The risk score `has_error` is "an error code is recorded": the `Outcome`'s, never guessed from
  the key.
- Hash chain: `hash = SHA-256(prev_hash ‖ canonical_json(record))`, `GENESIS` = 32 zero bytes.
  Canonical JSON: keys sorted by code point, no whitespace, UTF-8, `ensure_ascii=False`, no NaN or
  infinity; aware datetimes in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always 6 fraction digits, the
  precision of a Postgres timestamptz, so a record read back hashes the same); naive datetimes are
  refused; dates ISO; UUIDs and Decimals as `str`; bytes as lower-case hex; tuples as lists; sets
  are refused (no order). An expired record keeps its hashes but loses its payload: `verify_chain`
  then checks its link only.
- `entity_of`: the entity the action names first (`add_payee` → payee, `disable_user` → user),
  then the worker's own aggregate (`payment.*` → payment, `identity.*` → user, ...), then the
  general order payment, transfer, account, customer, user, standing order, payee, api key, loan,
  loan application. A batch names its first item (`ledger.create_transfers` → the first
  transfer's id; the record's payload keeps the others). On the ledger a bare `id` is the transfer
  or account the action names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

# --- codes -----------------------------------------------------------------------------------


class RecordType(StrEnum):
    login = "login"
    authentication = "authentication"
    authorization = "authorization"
    admin = "admin"
    transaction = "transaction"
    configuration = "configuration"
    payment = "payment"
    data_export = "data_export"
    security = "security"
    other = "other"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Status(StrEnum):
    success = "success"
    failure = "failure"
    partial = "partial"
    pending = "pending"
    cancelled = "cancelled"


class Retention(StrEnum):
    short = "short"
    standard = "standard"
    long = "long"
    permanent = "permanent"


class ComplianceFlag(StrEnum):
    financial = "financial"
    aml = "aml"
    access_control = "access_control"
    data_access = "data_access"
    privacy = "privacy"
    sox = "sox"
    incident = "incident"
    immediate_review = "immediate_review"


class BreakReason(StrEnum):
    prev_hash_mismatch = "prev_hash_mismatch"  # the link to the previous record does not hold
    hash_mismatch = "hash_mismatch"  # the record does not recompute to its stored hash


T, S, R, F = RecordType, Status, Retention, ComplianceFlag

RETENTION_PERIOD: dict[Retention, timedelta | None] = {
    R.short: timedelta(days=30),
    R.standard: timedelta(days=365),
    R.long: timedelta(days=2_555),
    R.permanent: None,
}

BASE_RISK: dict[RecordType, int] = {
    T.login: 10, T.authentication: 15, T.authorization: 20, T.admin: 25, T.transaction: 30,
    T.configuration: 30, T.payment: 35, T.data_export: 40, T.security: 80, T.other: 5,
}  # fmt: skip
SEVERITY_FACTOR: dict[Severity, Decimal] = {
    Severity.low: Decimal("0.5"), Severity.medium: Decimal(1), Severity.high: Decimal("1.5"),
    Severity.critical: Decimal(2),
}  # fmt: skip
FAILURE_FACTOR = Decimal(2)
ERROR_FACTOR = Decimal("1.3")
MAX_RISK = 100

# --- mapping tables --------------------------------------------------------------------------

SECURITY_KEYS = frozenset({
    "audit.chain_broken", "audit.security_event_raised", "identity.locked_out", "identity.refresh_token_reused",
})  # fmt: skip
SECURITY_ACTIONS = frozenset({"suspicious_activity", "intrusion_detected", "security_alert"})
AUTHENTICATION_KEYS = frozenset({
    "edge.auth_failed", "identity.verify_api_key", "identity.revoke_refresh_token", "identity.access_revoked",
})  # fmt: skip
LOGIN_KEYS = frozenset({"identity.issue_token"})
LOGIN_PREFIX = "identity.login_"
AUTHORIZATION_ACTIONS = frozenset({"access_denied"})
ADMIN_KEYS = frozenset({
    "identity.create_user", "identity.disable_user", "identity.enable_user", "identity.create_api_key",
    "identity.revoke_api_key", "identity.rotate_signing_key",
    "identity.user_created", "identity.user_disabled", "identity.user_enabled", "identity.api_key_created",
    "identity.api_key_revoked", "identity.key_rotated",
    "partner.access_changed",
})  # fmt: skip
ADMIN_ACTIONS = frozenset({"grant_role", "revoke_role", "role_granted", "role_revoked"})
CONFIGURATION_PREFIXES = (
    "configure_", "set_config", "update_config", "set_limit", "update_limit", "create_product", "update_product",
    "retire_product", "set_rate", "update_rate", "set_fee", "update_fee", "set_holiday", "add_holiday",
    "remove_holiday",
)  # fmt: skip
CONFIGURATION_EVENTS = frozenset({
    "config_changed", "settings_changed", "product_changed", "limits_changed", "rates_changed", "holidays_changed",
})  # fmt: skip
EXPORT_PREFIXES = ("export_",)
EXPORT_ACTIONS = frozenset({"generate_statement", "download_statement", "generate_report"})
EXPORT_EVENTS = frozenset({"exported", "export_completed", "statement_generated", "report_generated"})
MONEY_EVENT_KEYS = frozenset({
    "loan.disbursed", "loan.payment_received", "loan.penalty_charged", "loan.written_off",
    "account.deposited", "account.withdrawn", "account.transferred", "account.interest_credited",
    "account.fee_charged",
})  # fmt: skip
READ_PREFIXES = ("get_", "list_", "lookup_", "search_")
READ_ACTIONS = frozenset({"verify"})
HEALTH_ACTIONS = frozenset({"health", "healthcheck", "heartbeat", "ping"})
CHAIN_BREAK_KEYS = frozenset({"audit.chain_broken"})
KYC_KEYS = frozenset({"customer.risk_changed"})
SCREENING_KEYS = frozenset({"payment.screening_hit"})
SECURITY_CODES = frozenset({"auth_failed", "unauthorized_access", "suspicious_activity"})
LONG_TYPES = frozenset({T.transaction, T.payment, T.admin, T.configuration, T.data_export})
STANDARD_TYPES = frozenset({T.login, T.authentication, T.authorization})
ACCESS_TYPES = frozenset({T.login, T.authentication, T.authorization})
COMPLIANCE_TYPES = frozenset({T.admin, T.configuration, T.data_export})

# --- classification --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the caller knows of how a message ended (a reply, a dead letter, an event's reason)."""

    status: Status
    error_code: str | None = None

    @classmethod
    def success(cls) -> Outcome:
        return cls(S.success)

    @classmethod
    def failure(cls, error_code: str | None = None) -> Outcome:
        return cls(S.failure, error_code)


@dataclass(frozen=True, slots=True)
class Classification:
    name: str  # `<worker>.<action>` the rules matched, "" when none could be read
    record_type: RecordType
    severity: Severity
    status: Status
    retention: Retention
    expires_after: timedelta | None  # from the record time; None for permanent
    compliance_flags: tuple[ComplianceFlag, ...]  # sorted
    regulatory_tags: tuple[str, ...]  # sorted
    risk_score: int
    error_code: str | None
    is_read: bool
    security_followup: bool
    compliance_followup: bool


def message_name(routing_key: str, message_type: str | None = None) -> str:
    """`<worker>.<action>`: the routing key, else the AMQP type minus `.v<N>`, else ""."""
    if routing_key and "." in routing_key:
        return routing_key
    if message_type and "." in message_type:
        head, _, last = message_type.rpartition(".")
        if last[:1] == "v" and last[1:].isdigit() and "." in head:
            return head
        return message_type
    return ""


def _split(name: str) -> tuple[str, str]:
    worker, _, action = name.partition(".")
    return worker, action.rsplit(".", 1)[-1] if action else ""


def is_read(action: str, kind: Literal["command", "event"]) -> bool:
    return kind == "command" and (action.startswith(READ_PREFIXES) or action in READ_ACTIONS)


def is_health(action: str) -> bool:
    return action in HEALTH_ACTIONS or action.startswith("health_")


def record_type_of(name: str) -> RecordType:
    """The §7 mapping (see the module docstring for the order)."""
    worker, action = _split(name)
    if name in SECURITY_KEYS or action in SECURITY_ACTIONS:
        return T.security
    if name in AUTHENTICATION_KEYS:
        return T.authentication
    if name in LOGIN_KEYS or name.startswith(LOGIN_PREFIX):
        return T.login
    if action in AUTHORIZATION_ACTIONS:
        return T.authorization
    if name in ADMIN_KEYS or action in ADMIN_ACTIONS:
        return T.admin
    if worker == "ledger":
        return T.transaction
    if action.startswith(CONFIGURATION_PREFIXES) or action in CONFIGURATION_EVENTS:
        return T.configuration
    if action.startswith(EXPORT_PREFIXES) or action in EXPORT_ACTIONS or action in EXPORT_EVENTS:
        return T.data_export
    if name in MONEY_EVENT_KEYS:
        return T.transaction
    if worker == "payment":
        return T.payment
    return T.other


def _derived_status(action: str, kind: Literal["command", "event"]) -> Status:
    if kind == "command":
        return S.pending
    if action.endswith("failed") or action.endswith("access_denied"):
        return S.failure
    if action.endswith("cancelled"):
        return S.cancelled
    if action.endswith("_pending") or action.endswith("approval_required"):
        return S.pending
    return S.success


def regulatory_tags_of(name: str) -> tuple[str, ...]:
    worker, action = _split(name)
    tags = set()
    if (worker == "customer" and "kyc" in action) or name in KYC_KEYS:
        tags.add("kyc")
    if name in SCREENING_KEYS:
        tags.add("sanctions_screening")
    return tuple(sorted(tags))


def compliance_flags_of(record_type: RecordType, action: str, *, read: bool) -> tuple[ComplianceFlag, ...]:
    if read:
        return (F.data_access, F.privacy)
    flags: set[ComplianceFlag] = set()
    if record_type in (T.transaction, T.payment) or "transfer" in action:
        flags |= {F.financial, F.aml}
    if record_type in ACCESS_TYPES:
        flags.add(F.access_control)
    if record_type == T.data_export:
        flags |= {F.data_access, F.privacy}
    if record_type in (T.admin, T.configuration):
        flags.add(F.sox)
    if record_type == T.security:
        flags |= {F.incident, F.immediate_review}
    return tuple(sorted(flags))


def retention_of(name: str, record_type: RecordType, *, read_or_health: bool, kyc: bool) -> Retention:
    if name in CHAIN_BREAK_KEYS:
        return R.permanent
    if record_type == T.security:
        return R.long
    if read_or_health:
        return R.short
    if record_type in LONG_TYPES or kyc:
        return R.long
    return R.standard


def classify(
    routing_key: str,
    message_type: str | None,
    kind: Literal["command", "event"],
    outcome: Outcome | None = None,
) -> Classification:
    """Everything §7 decides about one command or event, from its name and (if known) its outcome."""
    assert kind in ("command", "event"), f"kind is command or event, not {kind!r}"
    name = message_name(routing_key, message_type)
    worker, action = _split(name)
    record_type = record_type_of(name)
    read = is_read(action, kind)
    health = is_health(action)
    status = outcome.status if outcome is not None else _derived_status(action, kind)
    error_code = outcome.error_code if outcome is not None else None
    failed = status == S.failure

    if record_type == T.security:
        severity = Severity.critical
    elif failed:
        severity = Severity.high
    elif read or health:
        severity = Severity.low
    else:
        severity = Severity.medium

    tags = regulatory_tags_of(name)
    retention = retention_of(name, record_type, read_or_health=read or health, kyc="kyc" in tags)
    own = worker == "audit"
    security_followup = not own and (
        record_type == T.security
        or (failed and severity in (Severity.high, Severity.critical))
        or action in SECURITY_CODES
        or error_code in SECURITY_CODES
    )
    compliance_followup = not own and (
        (kind == "command" and record_type in COMPLIANCE_TYPES) or bool(tags)
    )
    return Classification(
        name=name,
        record_type=record_type,
        severity=severity,
        status=status,
        retention=retention,
        expires_after=RETENTION_PERIOD[retention],
        compliance_flags=compliance_flags_of(record_type, action, read=read),
        regulatory_tags=tags,
        risk_score=risk_score(record_type, failed=failed, severity=severity, has_error=error_code is not None),
        error_code=error_code,
        is_read=read,
        security_followup=security_followup,
        compliance_followup=compliance_followup,
    )


def expires_at(recorded_at: datetime, retention: Retention) -> datetime | None:
    """When the record's payload is archived; None for permanent records."""
    assert recorded_at.tzinfo is not None, "recorded_at must be aware"
    period = RETENTION_PERIOD[retention]
    return None if period is None else recorded_at + period


def risk_score(record_type: RecordType, *, failed: bool, severity: Severity, has_error: bool) -> int:
    """The §7 risk score, 0–100.

    In `Decimal`, in this order: base by type; × 2 when failed; × 0.5 / 1 / 1.5 / 2 for severity
    low / medium / high / critical; × 1.3 when an error is recorded; capped at 100; then rounded
    half-up to an integer, once, at the end (no intermediate rounding; capping first or last gives
    the same result since 100 is whole). E.g. 5 × 0.5 = 2.5 → 3; 35 × 2 × 1.5 × 1.3 = 136.5 → 100.
    """
    score = Decimal(BASE_RISK[record_type])
    if failed:
        score *= FAILURE_FACTOR
    score *= SEVERITY_FACTOR[severity]
    if has_error:
        score *= ERROR_FACTOR
    score = min(score, Decimal(MAX_RISK))
    return int(score.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- who and what ----------------------------------------------------------------------------

# (entity type, body field) in the general order.
ENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("payment", "payment_id"),
    ("transfer", "transfer_id"),
    ("account", "account_id"),
    ("customer", "customer_id"),
    ("user", "user_id"),
    ("standing_order", "standing_order_id"),
    ("payee", "payee_id"),
    ("api_key", "key_id"),
    ("loan", "loan_id"),
    ("loan_application", "application_id"),
)
WORKER_ENTITY: dict[str, str] = {
    "payment": "payment", "account": "account", "customer": "customer", "identity": "user", "loan": "loan",
}  # fmt: skip
_FIELD = dict(ENTITY_FIELDS)


def _id_text(value: Any) -> str | None:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _first_item_id(body: Mapping[str, Any], list_field: str) -> str | None:
    items = body.get(list_field)
    if isinstance(items, (list, tuple)) and items:
        first = items[0]
        return _id_text(first.get("id")) if isinstance(first, Mapping) else _id_text(first)
    return None


def _entity_id(entity: str, worker: str, action: str, body: Mapping[str, Any]) -> str | None:
    found = _id_text(body.get(_FIELD[entity]))
    if found is not None or worker != "ledger" or entity not in ("transfer", "account"):
        return found
    # Ledger: a bare `id` or a batch names the transfer or account its action names.
    if entity in action:
        found = _id_text(body.get("id")) or _first_item_id(body, entity + "s") or _first_item_id(body, "ids")
    return found


def entity_of(routing_key: str, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(entity type, entity id) the record is about, or (None, None); never raises."""
    if not isinstance(body, Mapping):
        return None, None
    worker, action = _split(message_name(routing_key))
    named = [e for e, _ in ENTITY_FIELDS if e in action]
    own = [WORKER_ENTITY[worker]] if worker in WORKER_ENTITY else []
    for entity in (*named, *own, *(e for e, _ in ENTITY_FIELDS)):
        found = _entity_id(entity, worker, action, body)
        if found is not None:
            return entity, found
    return None, None


def actor_of_headers(x_actor: str | bytes | None) -> str | None:
    """`sub` of the edge's `x-actor` JSON header; None when absent or unreadable. Never raises.

    Whether the header is to be believed (it came through the edge's broker user) is the caller's
    check (`bus.actor.actor_of`); audit records it either way, next to the broker `user_id`.
    """
    if not isinstance(x_actor, (str, bytes, bytearray)) or not x_actor:
        return None
    try:
        claims = json.loads(x_actor)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if isinstance(sub, (str, int)) and not isinstance(sub, bool) and str(sub).strip():
        return str(sub)
    return None


# --- hash chain ------------------------------------------------------------------------------

GENESIS = bytes(32)


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
    """Sorted keys, no whitespace, UTF-8 without escapes, UTC datetimes with 'Z' (module docstring)."""
    return json.dumps(
        record, default=_canonical_default, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")  # fmt: skip


def chain_hash(prev_hash: bytes, record: Mapping[str, Any]) -> bytes:
    """SHA-256(prev_hash ‖ canonical JSON of the record), 32 bytes."""
    assert len(prev_hash) == 32, "prev_hash is 32 bytes"
    return hashlib.sha256(bytes(prev_hash) + canonical_json(record)).digest()


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
        if record is not None and (len(prev_hash) != 32 or chain_hash(prev_hash, record) != bytes(stored_hash)):
            return ChainCheck(False, checked, index, BreakReason.hash_mismatch, expected_prev)
        expected_prev = bytes(stored_hash)
    return ChainCheck(True, checked, None, None, expected_prev)


# --- compliance frameworks -------------------------------------------------------------------


def compliance_frameworks(flags: Iterable[str], tags: Iterable[str]) -> tuple[str, ...]:
    """The frameworks a compliance event names (decision): `sox` → SOX; `data_access`/`privacy`
    → GDPR; `financial` → PCI_DSS; a regulatory tag (KYC, sanctions screening) → AML. Sorted."""
    flags, tags = set(flags), set(tags)
    found = set()
    if F.sox in flags:
        found.add("SOX")
    if flags & {F.data_access, F.privacy}:
        found.add("GDPR")
    if F.financial in flags:
        found.add("PCI_DSS")
    if tags:
        found.add("AML")
    return tuple(sorted(found))
