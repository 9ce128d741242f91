"""The audit worker's contract sheet.

Its own commands (staff only: customers are refused here whatever the edge allowed; partners
are refused unless granted, which the operator never does for audit):
  audit.list_records, audit.verify_chain, audit.get_report, audit.list_investigations,
  audit.assign_investigation, audit.note_investigation, audit.close_investigation
  (+ audit.get_operation, like every worker)
Its taps, two streams read in batches by one replica at a time (bus/streams.py, handlers/taps.py):
  audit.tap.commands  bound `#` on cbs.commands
  audit.tap.events    bound `#` on cbs.events (partner.access_changed included: audit learns grants there)
  audit.tap.replies   every command's reply, by the BCC header workers' replies carry (its outcome)
Its duty: retention (handlers/retention.py).
Audit records its own events (`publishes`) like any other, and raises no follow-up for them
(banking-rules §7).
"""

from __future__ import annotations

from bus import topology
from bus.actor import staff_only
from bus.handling import Duty, Routes, StreamRoute
from contracts import audit
from workers.audit.handlers import investigations, records, reports, retention

ROUTES = Routes(
    worker="audit",
    commands={
        audit.ListRecords: staff_only(records.list_records),
        audit.VerifyChain: staff_only(records.verify_chain),
        audit.GetReport: staff_only(reports.get_report),
        audit.ListInvestigations: staff_only(investigations.list_investigations),
        audit.AssignInvestigation: staff_only(investigations.assign),
        audit.NoteInvestigation: staff_only(investigations.note),
        audit.CloseInvestigation: staff_only(investigations.close),
    },
    # Records past retention go to CBS_AUDIT_ARCHIVE_DIR, checksummed, then leave the table.
    duties=(Duty("retention", retention.archive_duty, retention.RETENTION_SWEEP_S),),
    streams=(
        StreamRoute(topology.AUDIT_COMMANDS_TAP, records.record_tap(topology.COMMANDS.name, "command")),
        StreamRoute(topology.AUDIT_EVENTS_TAP, records.record_tap(topology.EVENTS.name, "event")),
        # Every command's reply (its outcome), copied to the stream by the broker (bus/runtime.py).
        StreamRoute(topology.AUDIT_REPLIES_TAP, records.record_replies),
    ),
    publishes=audit.EVENTS,
)
