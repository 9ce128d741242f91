"""Audit's reports (issue 13), the decisions in them, pure.

- **large-value**: the completed payment orders of one business date whose amount is at least
  the threshold (`ReportConfig.large_value_minor`; a threshold is reached at equality, like
  banking-rules §0's inclusive limits).
- **structuring**: one customer's completed payment orders of one business date that each fall
  *just below* the threshold — at least `threshold − band` (the band is `structuring_band_bps`
  of the threshold, rounded down to the minor unit) and below the threshold — when there are
  *several*: at least `structuring_min_count` of them. Orders with no customer known (none
  today: a cash deposit names its payee's customer) cannot be grouped and are left out.
- **security-summary**: failed logins (`identity.login_failed`, `edge.auth_failed`), lockouts
  (`identity.locked_out`), refused or failed commands (their outcomes) and access refusals
  (`edge.access_denied`, `<worker>.access_denied`), counted by actor and by UTC hour.
- **actor-activity**: one actor's records over a period, each command with its outcome.

A "transaction" of these reports is a completed payment order (every kind: cash, internal,
rails, incoming credits, refunds): the customer's money movement, with its customer. Back-office
ledger transfers carry no customer; they are in the accounts' trails.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

KINDS = ("large-value", "structuring", "security-summary", "actor-activity")


@dataclass(frozen=True, slots=True)
class ReportConfig:
    large_value_minor: int = 100_000_000  # 1,000,000.00 at exponent 2
    structuring_band_bps: int = 1_000  # just below = within 10% under the threshold
    structuring_min_count: int = 3  # several = three or more in a business day

    def __post_init__(self) -> None:
        assert self.large_value_minor > 0, "the threshold is a positive amount"
        assert 0 < self.structuring_band_bps < 10_000, "the band is a part of the threshold"
        assert self.structuring_min_count >= 2, "structuring needs several movements"

    @property
    def structuring_floor(self) -> int:
        """The least amount that is just below the threshold."""
        return self.large_value_minor - self.large_value_minor * self.structuring_band_bps // 10_000


def is_large(amount: int, config: ReportConfig) -> bool:
    return amount >= config.large_value_minor


def is_just_below(amount: int, config: ReportConfig) -> bool:
    return config.structuring_floor <= amount < config.large_value_minor


@dataclass(frozen=True, slots=True)
class Movement:
    payment_id: str
    seq: int
    business_date: date
    customer_id: str | None
    kind: str
    amount: int
    currency: str
    occurred_at: datetime
    payer_account_id: str | None = None
    payee_account_id: str | None = None


def structuring_cases(movements: Iterable[Movement], config: ReportConfig) -> list[dict[str, Any]]:
    """Each (customer, business date, currency) with several just-below movements: the customer,
    the count, the total and the payments, in (date, customer) order."""
    groups: dict[tuple[date, str, str], list[Movement]] = defaultdict(list)
    for m in movements:
        if m.customer_id is not None and is_just_below(m.amount, config):
            groups[(m.business_date, m.customer_id, m.currency)].append(m)
    cases = []
    for (day, customer, currency), found in sorted(groups.items()):
        if len(found) >= config.structuring_min_count:
            found.sort(key=lambda m: m.seq)
            cases.append({
                "business_date": day.isoformat(), "customer_id": customer, "currency": currency, "count": len(found),
                "total": sum(m.amount for m in found), "payment_ids": [m.payment_id for m in found],
                "record_seqs": [m.seq for m in found],
            })  # fmt: skip
    return cases


# --- security summary --------------------------------------------------------------------------

SECURITY_COLUMNS = ("failed_logins", "lockouts", "refusals", "access_denied")


def security_category(routing_key: str, kind: str, result: str | None) -> str | None:
    """Which column of the security summary a record counts in, or None."""
    if kind == "outcome":
        return "refusals" if result in ("refused", "failed") else None
    if kind != "event":
        return None
    if routing_key in ("identity.login_failed", "edge.auth_failed"):
        return "failed_logins"
    if routing_key == "identity.locked_out":
        return "lockouts"
    if routing_key.endswith(".access_denied"):
        return "access_denied"
    return None


def actor_in(routing_key: str, payload: Mapping[str, Any] | None, recorded_actor: str | None,
             broker_user: str | None) -> str:  # fmt: skip
    """Whom a security record is about: the login name tried, the subject refused, else the
    record's actor, else its broker user, else `unknown`."""
    body = payload if isinstance(payload, Mapping) else {}
    for field in ("username", "subject"):
        if isinstance(body.get(field), str) and body[field]:
            return str(body[field])[:200]
    if routing_key == "edge.auth_failed" and isinstance(body.get("client"), str) and body["client"]:
        return f"client:{body['client']}"[:200]
    return recorded_actor or broker_user or "unknown"


def hour_of(at: datetime) -> str:
    """The UTC hour a moment falls in, e.g. `2026-12-06T14:00:00Z`."""
    assert at.tzinfo is not None, "an aware time"
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")


@dataclass(frozen=True, slots=True)
class SecurityFact:
    recorded_at: datetime
    routing_key: str
    kind: str
    result: str | None
    actor: str


def security_summary(facts: Iterable[SecurityFact]) -> dict[str, list[dict[str, Any]]]:
    """Counts by actor and by hour, each row with every column (zeros included), sorted."""
    by_actor: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SECURITY_COLUMNS, 0))
    by_hour: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SECURITY_COLUMNS, 0))
    for fact in facts:
        column = security_category(fact.routing_key, fact.kind, fact.result)
        if column is None:
            continue
        by_actor[fact.actor][column] += 1
        by_hour[hour_of(fact.recorded_at)][column] += 1
    return {
        "by_actor": [{"actor": a, **counts, "total": sum(counts.values())} for a, counts in sorted(by_actor.items())],
        "by_hour": [{"hour": h, **counts, "total": sum(counts.values())} for h, counts in sorted(by_hour.items())],
    }
