"""Messages of the audit worker (banking-rules §7): reading the trail, checking its hash chain,
and the security and compliance events audit raises.

Audit consumes every command and event on the bus (`#` on `cbs.commands` and `cbs.events`); the
commands below are its own, for staff holding `audit:read` (customers are refused).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AwareDatetime, Field, model_validator

from contracts.common import Command, Contract, Event, Page, cursor_field, page_size


class AuditError(StrEnum):
    """Stable refusal codes of the audit worker."""

    invalid_cursor = "invalid_cursor"
    invalid_range = "invalid_range"


class ComplianceFramework(StrEnum):
    pci_dss = "PCI_DSS"
    sox = "SOX"
    gdpr = "GDPR"
    aml = "AML"  # KYC and sanctions screening (a decision: §7 names no framework for them)


class ComplianceResult(StrEnum):
    compliant = "compliant"
    non_compliant = "non_compliant"
    warning = "warning"


# --- results ---------------------------------------------------------------------------------


class AuditRecordView(Contract):
    seq: int = Field(ge=1, description="position in the hash chain, 1 for the first record")
    event_id: str = Field(description="the message's message_id (the idempotency key)")
    exchange: str = Field(description="`cbs.commands` or `cbs.events`")
    routing_key: str
    amqp_type: str | None = Field(default=None, description="the AMQP `type`, e.g. `ledger.create_transfers.v1`")
    kind: str = Field(description="command or event")
    correlation_id: str | None = None
    causation_id: str | None = Field(default=None, description="header `x-causation-id`")
    actor: str | None = Field(
        default=None,
        description="`sub` of the `x-actor` header as claimed; trusted only when broker_user is the edge's",
    )
    broker_user: str | None = Field(default=None, description="the broker-validated AMQP `user_id`")
    entity_type: str | None = None
    entity_id: str | None = None
    record_type: str
    status: str
    severity: str
    risk_score: int = Field(ge=0, le=100)
    retention: str
    expires_at: AwareDatetime | None = None
    compliance_flags: list[str]
    regulatory_tags: list[str]
    payload: dict[str, Any] | None = Field(default=None, description="the body, secrets redacted; null when unparseable or archived")
    payload_sha256: str = Field(description="SHA-256 of the body as received, hex")
    payload_bytes: int = Field(ge=0, description="size of the body as received")
    parse_error: str | None = Field(default=None, description="why the body was not stored")
    recorded_at: AwareDatetime = Field(description="database time of the append")
    prev_hash: str = Field(description="hash of the previous record, hex (64 zeros for the first)")
    hash: str = Field(description="SHA-256(prev_hash ‖ canonical JSON of the record), hex")


AuditRecordPage = Page[AuditRecordView]


class ChainVerification(Contract):
    ok: bool = Field(description="true when every record checked links and recomputes")
    records_checked: int = Field(ge=0, description="records read, the broken one included")
    from_seq: int = Field(ge=1, description="where the walk started")
    last_seq_checked: int | None = Field(default=None, description="the last record that verified")
    complete: bool = Field(description="true when the walk reached the chain's head")
    first_broken_seq: int | None = Field(default=None, description="the first record that does not verify")
    reason: str | None = Field(
        default=None, description="prev_hash_mismatch, hash_mismatch, or head_mismatch (the tail was cut)"
    )


# --- commands --------------------------------------------------------------------------------


class ListRecords(Command):
    """Audit records, newest first, filtered. Result: `Page[AuditRecordView]`."""

    routing_key: ClassVar[str] = "audit.list_records"
    read_only: ClassVar[bool] = True

    entity_id: str | None = Field(default=None, min_length=1, max_length=200, description="records about this entity")
    actor: str | None = Field(default=None, min_length=1, max_length=200, description="records claimed by this actor")
    routing_key_prefix: str | None = Field(
        default=None, min_length=1, max_length=200, description="e.g. `payment.` or `identity.issue_token`"
    )
    since: AwareDatetime | None = Field(default=None, description="recorded at or after, UTC")
    until: AwareDatetime | None = Field(default=None, description="recorded before, UTC")
    limit: int = page_size(default=50, most=500)
    cursor: str | None = cursor_field()

    @model_validator(mode="after")
    def _range(self) -> "ListRecords":
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class VerifyChain(Command):
    """Recompute the hash chain from `from_seq`; a break raises `audit.chain_broken`.
    Result: `ChainVerification`."""

    routing_key: ClassVar[str] = "audit.verify_chain"

    from_seq: int = Field(
        default=1, ge=1, description="first record to check; past 1 the stored prev_hash of that record is trusted"
    )
    max_records: int = Field(default=100_000, ge=1, le=1_000_000, description="stop after this many records")


# --- events ----------------------------------------------------------------------------------


class ChainBroken(Event):
    """A verification found a record that does not verify: the trail was altered."""

    routing_key: ClassVar[str] = "audit.chain_broken"

    first_broken_seq: int = Field(ge=1, description="the first record that does not verify")
    reason: str = Field(description="prev_hash_mismatch, hash_mismatch or head_mismatch")
    records_checked: int = Field(ge=0)
    detected_at: AwareDatetime = Field(description="UTC time of the verification")
    requested_by: str | None = Field(default=None, description="who asked for the verification")


class _Raised(Event):
    record_seq: int = Field(ge=1, description="the audit record that raised it")
    event_id: str = Field(description="message_id of the command or event recorded")
    routing_key_seen: str = Field(description="routing key of the recorded message")
    entity_type: str | None = None
    entity_id: str | None = None
    actor: str | None = Field(default=None, description="claimed actor of the recorded message")
    broker_user: str | None = None
    risk_score: int = Field(ge=0, le=100)
    occurred_at: AwareDatetime = Field(description="when audit recorded it, UTC")


class SecurityEventRaised(_Raised):
    """A security-relevant record: a security event, a high or critical failure, or a security code."""

    routing_key: ClassVar[str] = "audit.security_event_raised"

    threat_type: str = Field(description="what was seen: the recorded message's name")
    threat_level: str = Field(description="low, medium, high or critical")
    detection_method: str = Field(default="rule", description="how: `rule` (banking-rules §7)")
    blocked: bool = Field(default=False, description="audit observes; it blocks nothing")
    investigation_status: str = Field(default="open")
    assignee: str | None = None


class ComplianceEventRaised(_Raised):
    """An admin, configuration or export command, or a record with a regulatory tag."""

    routing_key: ClassVar[str] = "audit.compliance_event_raised"

    frameworks: list[ComplianceFramework] = Field(description="the frameworks the record falls under")
    control: str = Field(description="the control: the recorded message's name")
    result: ComplianceResult = Field(default=ComplianceResult.warning, description="to be reviewed")
    remediation_deadline: AwareDatetime | None = None
    evidence: dict[str, Any] = Field(description="compliance flags, regulatory tags and the record's hash")


COMMANDS: tuple[type[Command], ...] = (ListRecords, VerifyChain)
EVENTS: tuple[type[Event], ...] = (ChainBroken, SecurityEventRaised, ComplianceEventRaised)
