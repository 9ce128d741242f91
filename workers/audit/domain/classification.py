"""What an audit record is (banking-rules §7): type, severity, status, retention, compliance
flags, regulatory tags, risk score and follow-ups, from the message's name and, when known, how
it ended. The tables below are the mapping; `record_type_of` applies them in order, first match
wins; the parametrized cases in tests/unit/test_audit_domain.py pin it.

Decisions the rules leave open:
- The name is the routing key `<worker>.<action>`; without one, the AMQP type minus `.v<N>`.
- `identity.access_revoked` is authentication (access ended); the admin action that caused it is
  recorded as admin on its own. `identity.new_device_login` is authentication too: a login that
  succeeded from a device new to it (the customer is told; it is no security event by itself). Ledger reads are transaction records (the type says the domain,
  the severity says read). Loan and account money events are transaction records: money moves.
- A read is a command, never an event. A command's record is chained `pending` when it arrives;
  its reply comes later as a record of its own, classified with its `Outcome` (domain/outcomes.py).
- Retention: security records are kept long, `audit.chain_broken` and `audit.tap_gap` (messages a
  tap lost to its retention before audit read them) permanently; exports and KYC
  records long (an export raises a compliance event, so its evidence is kept as long).
- Flags: a read carries only `data_access`, `privacy` (a ledger lookup moves no money);
  authentication and authorization are `access_control` like login; configuration is `sox`
  (change management under the same control). Flags are sorted, so a record hashes the same.
- Follow-ups: a compliance event for admin, configuration and export *commands* (the event that
  reports the action raises none, so one action raises one) and for any regulatory tag; no
  follow-up for audit's own records. `has_error` is the `Outcome`'s error code, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Literal

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
    "audit.chain_broken", "audit.tap_gap", "audit.security_event_raised", "identity.locked_out", "identity.refresh_token_reused",
})  # fmt: skip
SECURITY_ACTIONS = frozenset({"suspicious_activity", "intrusion_detected", "security_alert"})
AUTHENTICATION_KEYS = frozenset({
    "edge.auth_failed", "identity.verify_api_key", "identity.revoke_refresh_token", "identity.access_revoked",
    "identity.new_device_login",
})  # fmt: skip
LOGIN_KEYS = frozenset({"identity.issue_token"})
LOGIN_PREFIX = "identity.login_"
AUTHORIZATION_ACTIONS = frozenset({"access_denied"})
ADMIN_KEYS = frozenset({
    "identity.create_user", "identity.disable_user", "identity.enable_user", "identity.create_api_key",
    "identity.revoke_api_key", "identity.rotate_signing_key",
    "identity.user_created", "identity.user_disabled", "identity.user_enabled", "identity.api_key_created",
    "identity.api_key_revoked", "identity.key_rotated",
    "partner.access_changed", "ops.dead_letters_replayed", "ops.dead_letters_purged",
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
CHAIN_BREAK_KEYS = frozenset({"audit.chain_broken", "audit.tap_gap"})
KYC_KEYS = frozenset({"customer.risk_changed"})
SCREENING_KEYS = frozenset({"payment.screening_hit"})
SECURITY_CODES = frozenset({"auth_failed", "unauthorized_access", "suspicious_activity"})
LONG_TYPES = frozenset({T.transaction, T.payment, T.admin, T.configuration, T.data_export})
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


def split_name(name: str) -> tuple[str, str]:
    """(worker, action) of a `<worker>.<action>` name."""
    worker, _, action = name.partition(".")
    return worker, action.rsplit(".", 1)[-1] if action else ""


def is_read(action: str, kind: Literal["command", "event"]) -> bool:
    return kind == "command" and (action.startswith(READ_PREFIXES) or action in READ_ACTIONS)


def is_health(action: str) -> bool:
    return action in HEALTH_ACTIONS or action.startswith("health_")


def record_type_of(name: str) -> RecordType:
    """The §7 mapping: the tables above, first match wins."""
    worker, action = split_name(name)
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
    worker, action = split_name(name)
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
    worker, action = split_name(name)
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
