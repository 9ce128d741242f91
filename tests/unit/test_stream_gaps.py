"""A stream's offsets skip one at each segment start (the stream's own entry): only a skip of two or
more is a loss (bus/streams.py), and audit chains a record of it that says so."""

from __future__ import annotations

from bus.streams import Gap, gap_between
from workers.audit.domain import chain
from workers.audit.handlers.taps import TAP_GAP_KEY, gap_draft


def test_a_skip_of_one_offset_is_the_streams_own_entry() -> None:
    assert gap_between(10, 10) is None
    assert gap_between(10, 11) is None


def test_a_skip_of_two_or_more_is_a_gap_with_a_bound_on_what_was_lost() -> None:
    assert gap_between(10, 12) == Gap(10, 11)
    assert gap_between(0, 465).at_most_messages == 464  # type: ignore[union-attr]


def test_a_gap_is_chained_as_a_permanent_critical_record() -> None:
    draft = gap_draft(Gap(0, 464), stream="audit.tap.events", exchange="cbs.events", kind="event")
    assert draft.routing_key == TAP_GAP_KEY and draft.event_id == "gap:audit.tap.events:0-464"
    assert draft.payload == {"stream": "audit.tap.events", "first_offset": 0, "last_offset": 464, "at_most_messages": 464}
    assert draft.classification.severity.value == "critical" and draft.classification.retention.value == "permanent"
    assert draft.payload_bytes == len(chain.canonical_json(draft.payload))
    assert "up to 464 messages" in (draft.parse_error or "")


def test_audit_taps_are_streams_that_refuse_no_publisher() -> None:
    from bus import topology

    for queue, _exchange in topology.audit_tap_queues(declare=True):
        args = queue.arguments or {}
        assert args["x-queue-type"] == "stream" and queue.durable
        assert "x-overflow" not in args and "x-max-length" not in args, "a bound that refuses would stop the bank"
        assert args["x-max-length-bytes"] == topology.AUDIT_TAP_MAX_BYTES[queue.name] >= 32 * 1024**3
