"""One OpenTelemetry trace per request, across every hop (issue 14).

The trace context travels in each message's AMQP headers as W3C `traceparent` (the propagators
of OTEL_PROPAGATORS, tracecontext and baggage by default), and every hop that publishes or
consumes opens its span here:

  edge     `POST /v1/payments` (SERVER, api_edge/tracing.py), `publish <command>` (PRODUCER)
  worker   `process <routing key>` per delivery (CONSUMER: commands, events, saga replies),
           `commit <command>` per group-committed batch (a child of its first message, linked to
           every message of it), one span per SQL statement (CLIENT, from asyncpg's query logger),
           `publish <key>` per outbox row as it leaves (a child of the context stored with the row:
           the fast path and the relay's republish continue the same trace), `reply <command>`
  streams  `apply <stream>` per batch (linked to each message), `process <stream>` per message
           (a child of its publish)

Off unless spans go somewhere (an exporter set by the standard OTEL_* variables) or CBS_TRACING=on:
then `ON` is False and every helper returns at once, before touching a header or a context, so a
message pays one attribute check per hop; no span, context or header is made, and nothing is
patched into asyncpg (its query logger is not installed). CBS_TRACING=on with no exporter
propagates without recording (sampler ALWAYS_OFF): trace ids in headers and logs, no spans kept.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context as TraceContext  # noqa: F401 (re-exported: the type callers hold)
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, Span, SpanKind, Tracer

# Set by `use`: every helper below checks it first.
ON = False
_tracer: Tracer | None = None

# One line per span a message or request opens, at INFO, with its trace id (observability's
# JsonFormatter adds it). Quiet unless CBS_TRACE_LOG_LEVEL=INFO: at load it is a line per message.
log = logging.getLogger("cbs.trace")

Mode = Literal["off", "propagate", "export"]
MAX_LINKS = 128  # the SDK's default OTEL_SPAN_LINK_COUNT_LIMIT: a batch links this many messages at most
MAX_QUERY_CHARS = 2_000  # of a statement's text on its span (never its arguments)
_NOTHING: AbstractContextManager[None] = nullcontext()
OFF = _NOTHING  # for a call site that skips even building a span's name while tracing is off
H = TypeVar("H", bound=MutableMapping[str, Any])


# -- configuration ----------------------------------------------------------------------------


def exporter(env: Mapping[str, str]) -> Literal["otlp", "console"] | None:
    """Where spans go, by the standard variables: OTEL_TRACES_EXPORTER (otlp, console, none), or
    an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT); OTEL_CONSOLE=1 as before.
    OTEL_SDK_DISABLED=true turns it all off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        first = named.split(",")[0].strip()
        return "otlp" if first == "otlp" else "console" if first == "console" else None
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return "console" if env.get("OTEL_CONSOLE") == "1" else None


def mode(env: Mapping[str, str]) -> Mode:
    """CBS_TRACING: `auto` (default) traces when spans are exported; `on` also without an exporter
    (ids propagated and logged, nothing recorded); `off` never."""
    wanted = env.get("CBS_TRACING", "auto").strip().lower()
    if wanted == "off":
        return "off"
    if exporter(env) is not None:
        return "export"
    return "propagate" if wanted == "on" else "off"


def setup(service_name: str, env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A process's tracing, from its environment; None (and `ON` False) when it is off."""
    env = os.environ if env is None else env
    chosen = mode(env)
    if chosen == "off":
        use(None)
        return None
    # Exporting: the SDK's sampler from OTEL_TRACES_SAMPLER (default parentbased_always_on).
    # Propagating only: nothing is recorded, but every span still has valid ids to pass on.
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              sampler=None if chosen == "export" else ALWAYS_OFF)  # fmt: skip
    if exporter(env) == "otlp":
        # OTLP over HTTP/protobuf; it reads its own variables (endpoint, headers, timeout, TLS).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_BSP_* bound its queue
    elif exporter(env) == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)  # for libraries that ask the global one
    use(provider)
    return provider


def use(provider: trace.TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: off). `setup` calls it; tests give their own."""
    global ON, _tracer
    _tracer = provider.get_tracer("cbs") if provider is not None else None
    ON = _tracer is not None


def tracer() -> Tracer:
    """The process's tracer, for a span of its own kind (the edge's request span)."""
    assert _tracer is not None, "tracing is off"
    return _tracer


def shutdown() -> None:
    """Flush what is still queued (a process's last spans), if tracing is on."""
    provider = trace.get_tracer_provider()
    if ON and isinstance(provider, TracerProvider):
        provider.shutdown()


# -- headers ------------------------------------------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """AMQP headers as a carrier: a value may arrive as bytes (a longstr the client did not decode)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("ascii", "replace")
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def inject(headers: H, context: TraceContext | None = None) -> H:
    """Put the current trace context (or `context`) into `headers`; nothing when tracing is off."""
    if ON:
        propagate.inject(headers, context=context)
    return headers


def extract(headers: Mapping[str, Any] | None) -> TraceContext | None:
    """The trace context `headers` carry (an empty one if none); None when tracing is off."""
    if not ON:
        return None
    return propagate.extract(headers or {}, getter=_GETTER)


def current() -> TraceContext | None:
    """The current context, to hand to work done later in another task; None when off."""
    return otel_context.get_current() if ON else None


def activated(context: TraceContext | None) -> AbstractContextManager[Any]:
    """Make `context` current within the block (a message's own, inside a batch's transaction)."""
    if context is None:
        return _NOTHING
    return _attached(context)


@contextmanager
def _attached(context: TraceContext) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def _span_of(context: TraceContext | None) -> trace.SpanContext | None:
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


# -- spans ----------------------------------------------------------------------------------------


def message_attributes(message: Any, operation: str) -> dict[str, Any]:
    """Messaging attributes of an aio-pika message (incoming or outgoing)."""
    attributes: dict[str, Any] = {"messaging.system": "rabbitmq", "messaging.operation.type": operation}
    for key, value in (
        ("messaging.destination.name", getattr(message, "exchange", None)),
        ("messaging.rabbitmq.destination.routing_key", getattr(message, "routing_key", None)),
        ("messaging.message.id", getattr(message, "message_id", None)),
        ("messaging.message.conversation_id", getattr(message, "correlation_id", None)),
        ("cbs.message_type", getattr(message, "type", None)),
    ):
        if value:
            attributes[key] = str(value)
    return attributes


def consuming(message: Any, name: str | None = None) -> AbstractContextManager[Span | None]:
    """A CONSUMER span for one delivery (an aio-pika incoming message), the child of the context
    its headers carry, current within the block."""
    if not ON:
        return _NOTHING
    return _consuming(message, name or f"process {message.routing_key or message.exchange}")


@contextmanager
def _consuming(message: Any, name: str) -> Iterator[Span]:
    assert _tracer is not None
    with _tracer.start_as_current_span(name, context=extract(message.headers), kind=SpanKind.CONSUMER,
                                       attributes=message_attributes(message, "process")) as span:  # fmt: skip
        log.info("%s", name, extra={"message_id": message.message_id, "routing_key": message.routing_key})
        yield span


def publishing(routing_key: str, *, exchange: str, message_id: str | None = None, correlation_id: str | None = None,
               parent: TraceContext | None = None, verb: str = "publish", what: str | None = None,
               ) -> AbstractContextManager[Span | None]:  # fmt: skip
    """A PRODUCER span `<verb> <what>` (default: `publish <routing_key>`) around one publish,
    current within the block: `inject` the headers inside it, so the consumer's span is its child.
    `parent`: the context the message was written in (an outbox row's), else the current one."""
    if not ON:
        return _NOTHING
    name = f"{verb} {what or routing_key}"
    attributes = {"messaging.system": "rabbitmq", "messaging.operation.type": "send",
                  "messaging.destination.name": exchange or "(default)",
                  "messaging.rabbitmq.destination.routing_key": routing_key}  # fmt: skip
    if message_id:
        attributes["messaging.message.id"] = message_id
    if correlation_id:
        attributes["messaging.message.conversation_id"] = correlation_id
    return _publishing(name, attributes, parent)


@contextmanager
def _publishing(name: str, attributes: dict[str, Any], parent: TraceContext | None) -> Iterator[Span]:
    assert _tracer is not None
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes) as span:
        log.info("%s", name, extra={"message_id": attributes.get("messaging.message.id"),
                                    "routing_key": attributes["messaging.rabbitmq.destination.routing_key"]})  # fmt: skip
        yield span


def batch(name: str, contexts: Sequence[TraceContext | None]) -> AbstractContextManager[Span | None]:
    """An INTERNAL span for work done once for many messages (a group commit): the child of the
    first message's span, linked to every message's (up to MAX_LINKS), current within the block.

    Why a child of the first and not a root with links only: a lone message, the quiet case and
    the one someone follows, then gets one unbroken tree down to its SQL; in a busy batch the
    others reach it by their link."""
    if not ON:
        return _NOTHING
    return _batch(name, contexts)


@contextmanager
def _batch(name: str, contexts: Sequence[TraceContext | None]) -> Iterator[Span]:
    assert _tracer is not None
    spans = [s for s in map(_span_of, contexts) if s is not None]
    parent = next((c for c in contexts if _span_of(c) is not None), None)
    links = [Link(s) for s in spans[:MAX_LINKS]]
    with _tracer.start_as_current_span(name, context=parent or TraceContext(), links=links,
                                       attributes={"cbs.batch.messages": len(contexts)}) as span:  # fmt: skip
        yield span


def stream_batch(stream: str, messages: Sequence[Any]) -> AbstractContextManager[Span | None]:
    """A stream's batch (bus/streams.py): an `apply <stream>` span for the batch (a child of the
    first traced message, linked to each), and a `process <stream>` CONSUMER span for each message
    that carries a trace, the child of its publish, open until the batch commits."""
    if not ON:
        return _NOTHING
    return _stream_batch(stream, messages)


@contextmanager
def _stream_batch(stream: str, messages: Sequence[Any]) -> Iterator[Span]:
    assert _tracer is not None
    contexts = [extract(m.headers) for m in messages]
    with _batch(f"apply {stream}", contexts) as applying:
        applying.set_attribute("messaging.destination.name", stream)
        batch_link = [Link(applying.get_span_context())]
        name = f"process {stream}"
        opened: list[Span] = []
        for message, context in zip(messages, contexts):
            if _span_of(context) is None:
                continue  # no trace to join: the batch span stands for it
            span = _tracer.start_span(name, context=context, kind=SpanKind.CONSUMER, links=batch_link,
                                      attributes=message_attributes(message, "process"))  # fmt: skip
            opened.append(span)
            with trace.use_span(span):
                log.info("%s", name, extra={"message_id": message.message_id, "routing_key": message.routing_key})
        try:
            yield applying
        except BaseException as exc:
            for span in opened:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR)
            raise
        finally:
            for span in opened:
                span.end()


# -- SQL --------------------------------------------------------------------------------------------


def sql_span_of(record: Any) -> None:
    """asyncpg's query logger (installed on each pooled connection only when tracing is on): one
    CLIENT span per statement, in the context the statement ran in (asyncpg calls this with
    `call_soon`, which carries the caller's context). Its end is when the logger runs, a loop
    iteration after the statement. A statement outside any traced work (a relay poll, a lease
    check, a duty) makes no span: it would be a trace of its own every few seconds."""
    if _tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return
    end_ns = time.time_ns()
    query = str(record.query)
    operation = query.lstrip().split(None, 1)[0].upper().rstrip(";") if query.strip() else "SQL"
    attributes: dict[str, Any] = {"db.system.name": "postgresql", "db.operation.name": operation,
                                  "db.query.text": query[:MAX_QUERY_CHARS]}  # fmt: skip
    params = getattr(record, "conn_params", None)
    if params is not None and getattr(params, "database", None):
        attributes["db.namespace"] = params.database
    span = _tracer.start_span(operation, kind=SpanKind.CLIENT, attributes=attributes,
                              start_time=end_ns - int(record.elapsed * 1e9))  # fmt: skip
    if record.exception is not None:
        span.record_exception(record.exception)
        span.set_status(trace.StatusCode.ERROR, type(record.exception).__name__)
    span.end(end_time=end_ns)
