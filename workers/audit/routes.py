"""The audit worker's contract sheet.

Its own commands (staff only: customers are refused here whatever the edge allowed; partners
are refused unless granted, which the operator never does for audit):
  audit.list_records, audit.verify_chain  (+ audit.get_operation, like every worker)
Its taps, two streams read in batches by one replica at a time (bus/streams.py, handlers/taps.py):
  audit.tap.commands  bound `#` on cbs.commands
  audit.tap.events    bound `#` on cbs.events (partner.access_changed included: audit learns grants there)
Its duty: retention (handlers/retention.py).
Audit records its own events (`publishes`) like any other, and raises no follow-up for them
(banking-rules §7).
"""

from __future__ import annotations

from bus import topology
from bus.actor import staff_only
from bus.handling import Duty, Routes, StreamRoute
from contracts import audit
from workers.audit.handlers import records, retention

ROUTES = Routes(
    worker="audit",
    commands={
        audit.ListRecords: staff_only(records.list_records),
        audit.VerifyChain: staff_only(records.verify_chain),
    },
    # Records past retention go to CBS_AUDIT_ARCHIVE_DIR, checksummed, then leave the table.
    duties=(Duty("retention", retention.archive_duty, retention.RETENTION_SWEEP_S),),
    streams=(
        StreamRoute(topology.AUDIT_COMMANDS_TAP, records.record_tap(topology.COMMANDS.name, "command")),
        StreamRoute(topology.AUDIT_EVENTS_TAP, records.record_tap(topology.EVENTS.name, "event")),
    ),
    publishes=audit.EVENTS,
)
