"""Messages of the audit worker (banking-rules §7): reading the trail, checking its hash chain,
and the security and compliance events audit raises.

Audit consumes every command and event on the bus (`#` on `cbs.commands` and `cbs.events`); the
commands below are its own, for staff holding `audit:read` (customers are refused).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from contracts.common import Command, Contract, Event, Page, cursor_field, page_size


class AuditError(StrEnum):
    """Stable refusal codes of the audit worker."""

    invalid_cursor = "invalid_cursor"
    invalid_range = "invalid_range"
    investigation_not_found = "investigation_not_found"  # 404
    investigation_closed = "investigation_closed"  # 409: a closed investigation changes no more
    report_needs = "report_needs"  # the report's kind needs a parameter that was not given


MAX_SEQ = 2**63 - 1  # a chain position is a PostgreSQL bigint


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


class RecordOutcome(Contract):
    """How a command ended, from its reply (a chained record of its own, kind `outcome`)."""

    result: Literal["success", "refused", "failed", "partial"] = Field(
        description="success; refused (a refusal code); failed (invalid_message, internal_error); partial (a batch "
        "some of whose items were refused)"
    )
    status: str = Field(description="banking-rules §7 status: success, failure or partial")
    code: str | None = Field(default=None, description="the refusal code; for a batch its items' most frequent one")
    outcome_seq: int = Field(ge=1, description="the outcome's own record in the chain")
    recorded_at: AwareDatetime = Field(description="when audit recorded the outcome")


class AuditRecordView(Contract):
    seq: int = Field(ge=1, description="position in the hash chain, 1 for the first record")
    event_id: str = Field(description="the message's message_id (the idempotency key)")
    exchange: str = Field(description="`cbs.commands`, `cbs.events`, or `` (the default exchange) for an outcome")
    routing_key: str
    amqp_type: str | None = Field(default=None, description="the AMQP `type`, e.g. `ledger.create_transfers.v1`")
    kind: str = Field(description="command, event, or outcome (a command's reply)")
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
    outcome: RecordOutcome | None = Field(
        default=None, description="a command's outcome once its reply was recorded; null for events, outcomes and "
        "commands still pending (`status` is what was known when the command was recorded)",
    )


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
    account_id: UUID | None = Field(
        default=None, description="an account's whole trail: every record naming it (its commands and events, and the "
        "payments and ledger transfers that moved its money, as payer, payee, debit or credit)",
    )
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
        default=1, ge=1, le=MAX_SEQ, description="first record to check; past 1 the stored prev_hash of that record is trusted"
    )
    max_records: int = Field(default=100_000, ge=1, le=1_000_000, description="stop after this many records")


ReportKind = Literal["large-value", "structuring", "security-summary", "actor-activity"]


class GetReport(Command):
    """One of audit's reports. `large-value` and `structuring` need `business_date`;
    `security-summary` and `actor-activity` a period (`since`, `until`; at most 31 days), and
    `actor-activity` the `actor`. Result: `Report`."""

    routing_key: ClassVar[str] = "audit.get_report"
    read_only: ClassVar[bool] = True

    kind: ReportKind = Field(description="large-value, structuring, security-summary or actor-activity")
    business_date: dt.date | None = Field(default=None, description="the business date (large-value, structuring)")
    since: AwareDatetime | None = Field(default=None, description="period start, inclusive (security-summary, actor-activity)")
    until: AwareDatetime | None = Field(default=None, description="period end, exclusive")
    actor: str | None = Field(default=None, min_length=1, max_length=200, description="whose activity (actor-activity)")
    limit: int = page_size(default=500, most=5_000)
    cursor: str | None = cursor_field()

    @model_validator(mode="after")
    def _range(self) -> "GetReport":
        if self.since is not None and self.until is not None:
            if self.until <= self.since:
                raise ValueError("until must be after since")
            if self.until - self.since > dt.timedelta(days=31):
                raise ValueError("a period is at most 31 days")
        return self


class Report(Contract):
    kind: str = Field(description="the report asked for")
    parameters: dict[str, Any] = Field(description="what it was computed with: the date or period, the thresholds")
    columns: list[str] = Field(description="the rows' fields, in order (the CSV's header)")
    rows: list[dict[str, Any]] = Field(description="one page of the report's rows; money in minor units")
    next_cursor: str | None = Field(default=None, description="pass back for the next page; null at the end")


class InvestigationView(Contract):
    record_seq: int = Field(ge=1, description="the audit record that raised the follow-up")
    kind: Literal["security", "compliance"]
    routing_key: str = Field(description="of the record that raised it")
    actor: str | None = None
    risk_score: int = Field(ge=0, le=100)
    status: Literal["open", "assigned", "closed"]
    assignee: str | None = None
    notes: list[dict[str, Any]] = Field(description="[{at, by, text}], oldest first")
    resolution: str | None = None
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    closed_at: AwareDatetime | None = None


InvestigationPage = Page[InvestigationView]


class ListInvestigations(Command):
    """Investigations of security and compliance follow-ups, newest first. Result: `Page[InvestigationView]`."""

    routing_key: ClassVar[str] = "audit.list_investigations"
    read_only: ClassVar[bool] = True

    status: Literal["open", "assigned", "closed"] | None = Field(default=None, description="only these")
    kind: Literal["security", "compliance"] | None = None
    limit: int = page_size(default=50, most=500)
    cursor: str | None = cursor_field()


class _InvestigationChange(Command):
    record_seq: int = Field(ge=1, le=MAX_SEQ, description="the audit record that raised the follow-up")
    kind: Literal["security", "compliance"]
    actor: str = Field(default="", max_length=200, description="who changes it: the authenticated caller")


class AssignInvestigation(_InvestigationChange):
    """Give an investigation to an investigator (again: to another). Refusals:
    investigation_not_found, investigation_closed. Result: `InvestigationView`."""

    routing_key: ClassVar[str] = "audit.assign_investigation"

    assignee: str = Field(min_length=1, max_length=200, description="the investigator")


class NoteInvestigation(_InvestigationChange):
    """Add a note. Refusals: investigation_not_found, investigation_closed. Result: `InvestigationView`."""

    routing_key: ClassVar[str] = "audit.note_investigation"

    text: str = Field(min_length=1, max_length=4_000, description="what was found or done")


class CloseInvestigation(_InvestigationChange):
    """Close it with its resolution. Refusals: investigation_not_found, investigation_closed.
    Result: `InvestigationView`."""

    routing_key: ClassVar[str] = "audit.close_investigation"

    resolution: str = Field(min_length=1, max_length=4_000, description="the finding, e.g. `false positive: …`")


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


class InvestigationChanged(Event):
    """An investigation was assigned, noted or closed (the command that did it is in the chain too)."""

    routing_key: ClassVar[str] = "audit.investigation_changed"

    record_seq: int = Field(ge=1)
    kind: Literal["security", "compliance"]
    change: Literal["assigned", "noted", "closed"]
    status: Literal["open", "assigned", "closed"]
    assignee: str | None = None
    by: str = Field(description="who changed it")
    occurred_at: AwareDatetime


COMMANDS: tuple[type[Command], ...] = (ListRecords, VerifyChain, GetReport, ListInvestigations, AssignInvestigation,
                                       NoteInvestigation, CloseInvestigation)  # fmt: skip
EVENTS: tuple[type[Event], ...] = (ChainBroken, SecurityEventRaised, ComplianceEventRaised, InvestigationChanged)
