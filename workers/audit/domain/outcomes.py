"""How a command ended, from its reply (pure).

A reply is `{"ok": true, "result": …}` or `{"ok": false, "error": {"code", …}}` (DESIGN §3).
Audit keeps four results (decisions):
- `success`: ok, and no item of a batch refused;
- `refused`: a business or access refusal (`ok: false` with its stable code), or a batch whose
  every item was refused (the code is the items' most frequent one);
- `failed`: the message itself was wrong (`invalid_message`: answered and dead-lettered) or the
  worker failed (`internal_error`);
- `partial`: a batch (`ledger.create_transfers`, `ledger.create_accounts`) some of whose items
  were refused; the counts by code are kept.
In banking-rules §7's statuses: success → success, refused and failed → failure, partial → partial.

Only the payload `outcome_payload` makes is stored, never the reply's result (it can hold a
token or an API key's secret) or its message (which can quote the input).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from workers.audit.domain.classification import Classification, Outcome, Status, SECURITY_CODES, classify

FAILURE_CODES = frozenset({"invalid_message", "internal_error"})
ITEM_OK = frozenset({"ok", "exists"})  # a batch item that is in the ledger (banking §3 idempotency)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    result: str  # success, refused, failed, partial
    code: str | None
    item_codes: dict[str, int] | None = None  # a batch's results by code

    @property
    def status(self) -> Status:
        return {"success": Status.success, "partial": Status.partial}.get(self.result, Status.failure)

    def as_outcome(self) -> Outcome:
        return Outcome(self.status, self.code)


def _item_codes(result: Any) -> dict[str, int] | None:
    """A batch's per-item result codes (`{"results": [{"result": code}, …]}`), or None."""
    if not isinstance(result, dict) or not isinstance(result.get("results"), list):
        return None
    codes = [item.get("result") for item in result["results"] if isinstance(item, dict)]
    if not codes or not all(isinstance(c, str) for c in codes):
        return None
    return dict(sorted(Counter(codes).items()))


def outcome_of_reply(reply: Any) -> CommandOutcome | None:
    """The outcome a reply body (parsed JSON) says, or None when it is no reply envelope."""
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return None
    if not reply["ok"]:
        error = reply.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, str) or not code:
            return None
        return CommandOutcome("failed" if code in FAILURE_CODES else "refused", code[:200])
    items = _item_codes(reply.get("result"))
    if items is None:
        return CommandOutcome("success", None)
    refused = {code: n for code, n in items.items() if code not in ITEM_OK}
    if not refused:
        return CommandOutcome("success", None, items)
    most = max(refused.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return CommandOutcome("refused" if len(refused) == len(items) and not set(items) & ITEM_OK else "partial",
                          most[:200], items)  # fmt: skip


def outcome_payload(outcome: CommandOutcome, command_id: str, command_key: str) -> dict[str, Any]:
    """What the chained outcome record keeps of the reply."""
    payload: dict[str, Any] = {"command_id": command_id, "command": command_key, "result": outcome.result,
                               "code": outcome.code}  # fmt: skip
    if outcome.item_codes is not None:
        payload["items"] = outcome.item_codes
    return payload


def classify_outcome(command_key: str, outcome: CommandOutcome | None) -> Classification:
    """§7's classification of the command, now that its outcome is known. Follow-ups (decision):
    only a security code raises one. A business refusal is the asker's answer, not an incident;
    access refusals already raise theirs through the `<worker>.access_denied` events; and the
    command's own record raised its compliance event when it arrived."""
    k = classify(command_key, None, "command",
                 outcome.as_outcome() if outcome is not None else Outcome(Status.failure, "unreadable_reply"))  # fmt: skip
    return Classification(
        name=k.name, record_type=k.record_type, severity=k.severity, status=k.status, retention=k.retention,
        expires_after=k.expires_after, compliance_flags=k.compliance_flags, regulatory_tags=k.regulatory_tags,
        risk_score=k.risk_score, error_code=k.error_code, is_read=k.is_read,
        security_followup=outcome is not None and outcome.code in SECURITY_CODES, compliance_followup=False,
    )  # fmt: skip
