"""bus/tracing.py's pure pieces: which variables turn tracing on, the `traceparent` header in and out
of AMQP headers, and the shape of the spans each hop opens (an in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind

from bus import outbox, tracing
from bus.handling import each

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


def message(headers: dict[str, Any] | None = None, **extra: Any) -> SimpleNamespace:
    """What the helpers read of an aio-pika message."""
    fields = {"exchange": "cbs.commands", "routing_key": "payment.initiate_payment", "message_id": "m-1",
              "correlation_id": "c-1", "type": "payment.initiate_payment", "headers": headers or {}}  # fmt: skip
    return SimpleNamespace(**{**fields, **extra})


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


# -- which variables turn it on ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "off"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "export"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "export"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "export"),
        ({"OTEL_CONSOLE": "1"}, "export"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "off"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "off"),
        ({"CBS_TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "off"),
        ({"CBS_TRACING": "on"}, "propagate"),
        ({"CBS_TRACING": "on", "OTEL_TRACES_EXPORTER": "otlp"}, "export"),
    ],
)
def test_the_standard_variables_choose_the_mode(env: dict[str, str], expected: str) -> None:
    assert tracing.mode(env) == expected


def test_off_by_default_nothing_is_made_or_sent() -> None:
    assert tracing.setup("test", {}) is None
    assert not tracing.ON
    headers: dict[str, Any] = {"x-actor": "a"}
    assert tracing.inject(headers) == {"x-actor": "a"}
    assert tracing.extract({"traceparent": TRACEPARENT}) is None
    assert tracing.current() is None
    assert tracing.consuming(message()) is tracing.OFF
    assert tracing.publishing("k", exchange="e") is tracing.OFF
    assert tracing.batch("b", [None]) is tracing.OFF
    assert tracing.stream_batch("s", [message()]) is tracing.OFF
    assert "traceparent" not in outbox._headers("cause")


def test_propagating_without_an_exporter_passes_ids_on_and_records_nothing() -> None:
    provider = tracing.setup("test", {"CBS_TRACING": "on"})
    try:
        assert provider is not None and provider.sampler is ALWAYS_OFF
        with tracing.consuming(message({"traceparent": TRACEPARENT})) as span:
            assert span is not None and not span.is_recording()
            sent = tracing.inject({})
        trace_id = TRACEPARENT.split("-")[1]
        assert sent["traceparent"].split("-")[1] == trace_id, "the caller's trace goes on"
        assert int(sent["traceparent"].split("-")[3], 16) & 1 == 0, "marked unsampled: nothing was recorded"
    finally:
        tracing.use(None)


# -- headers --------------------------------------------------------------------------------------


def test_inject_then_extract_is_the_same_span(spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span("origin") as origin:
        headers = tracing.inject({"x-causation-id": "m-0"})
    assert headers["x-causation-id"] == "m-0"
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{origin.get_span_context().trace_id:032x}",
                                            f"{origin.get_span_context().span_id:016x}")  # fmt: skip
    assert int(flags, 16) & 1, "sampled"
    extracted = trace.get_current_span(tracing.extract(headers)).get_span_context()
    assert (extracted.trace_id, extracted.span_id) == (origin.get_span_context().trace_id, origin.get_span_context().span_id)
    assert extracted.is_remote


def test_a_header_that_arrives_as_bytes_is_read(spans: InMemorySpanExporter) -> None:
    extracted = trace.get_current_span(tracing.extract({"traceparent": TRACEPARENT.encode()})).get_span_context()
    assert f"{extracted.trace_id:032x}" == TRACEPARENT.split("-")[1]


def test_no_or_a_broken_header_extracts_no_parent(spans: InMemorySpanExporter) -> None:
    for headers in (None, {}, {"traceparent": "garbage"}, {"traceparent": 7}):
        assert not trace.get_current_span(tracing.extract(headers)).get_span_context().is_valid


# -- spans ----------------------------------------------------------------------------------------


def test_a_delivery_is_a_consumer_span_child_of_its_publish(spans: InMemorySpanExporter) -> None:
    with tracing.publishing("payment.initiate_payment", exchange="cbs.commands", message_id="m-1"):
        headers = tracing.inject({})
    with tracing.consuming(message(headers)):
        pass
    publish = named(spans, "publish payment.initiate_payment")
    consume = named(spans, "process payment.initiate_payment")
    assert publish.kind is SpanKind.PRODUCER and consume.kind is SpanKind.CONSUMER
    assert consume.parent is not None and consume.parent.span_id == publish.context.span_id
    assert consume.context.trace_id == publish.context.trace_id
    assert consume.attributes["messaging.message.id"] == "m-1"
    assert consume.attributes["messaging.rabbitmq.destination.routing_key"] == "payment.initiate_payment"


def test_an_outbox_row_keeps_its_writers_context_and_its_publish_continues_it(spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span("handler") as handler:
        stored = outbox._headers("m-0")  # as the row is written, in the handler's transaction
    assert stored["x-causation-id"] == "m-0" and "traceparent" in stored
    # Later, and in another task (the fast path or the relay after a crash): no current span.
    with tracing.publishing("payment.completed", exchange="cbs.events", parent=tracing.extract(stored)):
        pass
    publish = named(spans, "publish payment.completed")
    assert publish.parent is not None and publish.parent.span_id == handler.get_span_context().span_id


def test_a_batch_is_a_child_of_its_first_message_linked_to_every_one(spans: InMemorySpanExporter) -> None:
    contexts = []
    for n in range(3):
        with tracing.tracer().start_as_current_span(f"message {n}"):
            contexts.append(tracing.current())
    with tracing.batch("commit ledger.create_transfers", [None, *contexts]):
        pass
    batch = named(spans, "commit ledger.create_transfers")
    first = named(spans, "message 0")
    assert batch.parent is not None and batch.parent.span_id == first.context.span_id
    assert [link.context.span_id for link in batch.links] == [named(spans, f"message {n}").context.span_id for n in range(3)]
    assert batch.attributes["cbs.batch.messages"] == 4


def test_a_batch_of_untraced_messages_is_a_root_whatever_is_current(spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span("unrelated"):
        with tracing.batch("commit x", [tracing.extract({})]):
            pass
    assert named(spans, "commit x").parent is None


def test_each_message_of_a_batch_sends_in_its_own_trace(spans: InMemorySpanExporter) -> None:
    contexts, seen = [], []
    for n in range(2):
        with tracing.tracer().start_as_current_span(f"message {n}"):
            contexts.append(tracing.current())

    async def handler(ctx: Any, command: Any) -> Any:
        seen.append(tracing.inject({})["traceparent"].split("-")[2])
        return command

    run = each(handler)
    with tracing.batch("commit", contexts):
        answers = asyncio.run(run([(SimpleNamespace(trace=c), n) for n, c in enumerate(contexts)]))
    assert answers == [0, 1]
    assert seen == [f"{named(spans, f'message {n}').context.span_id:016x}" for n in range(2)]


def test_a_stream_batch_continues_each_messages_trace(spans: InMemorySpanExporter) -> None:
    sent = []
    for n in range(2):
        with tracing.publishing(f"key.{n}", exchange="cbs.events"):
            sent.append(message(tracing.inject({}), routing_key=f"key.{n}", message_id=f"m-{n}"))
    untraced = message({}, routing_key="key.x")
    with tracing.stream_batch("audit.tap.events", [*sent, untraced]):
        pass
    apply = named(spans, "apply audit.tap.events")
    processed = sorted((s for s in spans.get_finished_spans() if s.name == "process audit.tap.events"),
                       key=lambda s: s.attributes["messaging.message.id"])  # fmt: skip
    assert len(processed) == 2, "one per traced message; the untraced one has the batch span only"
    for n, span in enumerate(processed):
        publish = named(spans, f"publish key.{n}")
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None and span.parent.span_id == publish.context.span_id
        assert [link.context.span_id for link in span.links] == [apply.context.span_id]
    assert apply.parent is not None and apply.parent.span_id == named(spans, "publish key.0").context.span_id
    assert len(apply.links) == 2


def test_a_failed_stream_batch_marks_its_message_spans(spans: InMemorySpanExporter) -> None:
    with tracing.publishing("key", exchange="cbs.events"):
        sent = message(tracing.inject({}))
    with pytest.raises(RuntimeError), tracing.stream_batch("s", [sent]):
        raise RuntimeError("database away")
    assert not named(spans, "process s").status.is_ok


# -- SQL ------------------------------------------------------------------------------------------


def record(query: str, elapsed: float = 0.002, exception: BaseException | None = None) -> SimpleNamespace:
    """What asyncpg's query logger hands over (asyncpg.connection.LoggedQuery)."""
    return SimpleNamespace(query=query, args=("secret",), timeout=10, elapsed=elapsed, exception=exception,
                           conn_addr=("127.0.0.1", 5432), conn_params=SimpleNamespace(database="cbs"))  # fmt: skip


def test_a_statement_is_a_client_span_inside_the_work_that_ran_it(spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span("process x") as work:
        tracing.sql_span_of(record("  insert into outbox (a) values ($1)"))
    sql = named(spans, "INSERT")
    assert sql.kind is SpanKind.CLIENT
    assert sql.parent is not None and sql.parent.span_id == work.get_span_context().span_id
    assert sql.attributes["db.query.text"].startswith("  insert into outbox")
    assert "secret" not in str(dict(sql.attributes)), "arguments never reach a span"
    assert sql.end_time - sql.start_time == pytest.approx(2_000_000, abs=1)


def test_a_statement_outside_traced_work_makes_no_span(spans: InMemorySpanExporter) -> None:
    tracing.sql_span_of(record("SELECT 1"))  # a relay poll, a lease check
    assert spans.get_finished_spans() == ()


def test_a_failed_statement_is_an_error_span(spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span("work"):
        tracing.sql_span_of(record("COMMIT;", exception=ValueError("serialization failure")))
    sql = named(spans, "COMMIT")
    assert not sql.status.is_ok and sql.events[0].name == "exception"
