"""One payment, one trace, across real processes (issue 14).

The edge and the workers a payment crosses run as processes, each with OTEL_EXPORTER_OTLP_ENDPOINT
pointed at an OTLP/HTTP receiver in this test (the in-memory exporter of a test whose processes are
separate: it decodes each `ExportTraceServiceRequest` and keeps its spans). One internal transfer
is placed through the edge; its trace must hold the whole journey, each hop the child of the one
that sent it:

  POST /v1/payments (edge) → publish payment.initiate_payment (edge) → process (payment) →
  publish ledger.create_transfers (payment, through its outbox) → process (ledger) →
  reply (ledger) → process payment.replies (payment) → publish payment.completed (payment's outbox)
  → audit's `process audit.tap.events` (its stream), and every other consumer of the events

with the SQL of each worker inside, and the trace id in the JSON logs of every process it crossed.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.conftest import separate_infra
from tests.e2e.conftest import LOGS, Cluster, _free_port
from tests.e2e.test_flows import post, verified_customer
from tests.e2e.test_payments import deposit, internal, payable_account, wait_for

pytestmark = pytest.mark.e2e

# The processes a payment needs (identity for the staff token, customer and account to open the
# accounts); account also consumes payment.completed, as a queue consumer beside audit's stream.
PROCESSES = ("edge", "identity", "customer", "account", "ledger", "payment", "audit")
TRACE_LOGS = LOGS / "tracing"


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    service: str
    attributes: dict[str, Any]
    links: tuple[str, ...]  # the span ids it links to


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(Span(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex() or None,
                    name=s.name, kind=ProtoSpan.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                    service=str(resource.get("service.name")), attributes={a.key: _value(a.value) for a in s.attributes},
                    links=tuple(link.span_id.hex() for link in s.links),
                ))  # fmt: skip
    return spans


@dataclass
class Receiver:
    """What every process exported, as it arrives."""

    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of_trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def find(self, check: Callable[[Span], bool]) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if check(s)]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            spans = decode(body)
            with received.lock:
                received.spans.extend(spans)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def infra() -> Iterator[dict[str, str]]:
    """A vhost and database of this module's own: its processes export spans, the package's do not."""
    with separate_infra("trace") as made:
        yield made


@pytest.fixture(scope="module")
def traced(infra: dict[str, str], receiver: tuple[Receiver, str]) -> Iterator[Cluster]:
    _, endpoint = receiver
    env = {**os.environ, "CBS_EDGE_PORT": str(_free_port()), "CBS_RATE_AUTH_PER_MIN": "1000",
           "CBS_RATE_ADMIN_PER_MIN": "100000",
           "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
           "CBS_TRACE_LOG_LEVEL": "INFO"}  # a log line per span: what the log check below greps  # fmt: skip
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "CBS_TRACING", "OTEL_TRACES_SAMPLER"):
        env.pop(name, None)
    cluster = Cluster(env, logs=TRACE_LOGS)
    for log in TRACE_LOGS.glob("*.log"):
        log.unlink()  # this run's lines only
    for name in PROCESSES:
        cluster.start(name)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                cluster.token()
                break
            except (httpx.HTTPError, AssertionError):
                for name, process in cluster.processes.items():
                    assert process.poll() is None, f"{name} exited; see {TRACE_LOGS / (name + '.log')}"
                assert time.monotonic() < deadline, "edge and identity not up in 60 s"
                time.sleep(0.5)
        yield cluster
    finally:
        cluster.stop_all()


# test_payments.wait_for, the package's one poll, with this module's longer default wait.
eventually = functools.partial(wait_for, timeout_s=30)


class Tree:
    """One trace's spans, by id."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self.by_id = {s.span_id: s for s in spans}

    def one(self, name: str, service: str | None = None, **attributes: Any) -> Span:
        found = [s for s in self.spans if s.name == name and (service is None or s.service == service)
                 and all(s.attributes.get(k) == v for k, v in attributes.items())]  # fmt: skip
        assert len(found) == 1, f"{len(found)} spans {name!r} ({service}, {attributes}) in {self.names()}"
        return found[0]

    def every(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def parent(self, span: Span) -> Span:
        assert span.parent_id is not None, f"{span.name} has no parent"
        assert span.parent_id in self.by_id, f"{span.name}'s parent {span.parent_id} is not in the trace"
        return self.by_id[span.parent_id]

    def ancestors(self, span: Span) -> list[Span]:
        chain = []
        while span.parent_id is not None and span.parent_id in self.by_id:
            span = self.by_id[span.parent_id]
            chain.append(span)
        return chain

    def names(self) -> list[str]:
        return sorted(f"{s.service}:{s.name}" for s in self.spans)


def child_of(tree: Tree, child: Span, parent: Span) -> None:
    assert tree.parent(child) == parent, f"{child.name} ({child.service}) is a child of " \
                                         f"{tree.parent(child).name}, not of {parent.name}"  # fmt: skip


def descends_from(tree: Tree, span: Span, ancestor: Span) -> None:
    assert ancestor in tree.ancestors(span), f"{span.name} ({span.service}) does not descend from {ancestor.name}: " \
                                             f"{[a.name for a in tree.ancestors(span)]}"  # fmt: skip


def logged_trace_ids(name: str) -> set[str]:
    ids = set()
    for line in (TRACE_LOGS / f"{name}.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line that is not ours (a library printing to stderr)
        if isinstance(entry, dict) and "trace_id" in entry:
            ids.add(entry["trace_id"])
    return ids


# The spans the trace must hold before it is checked (service, name): exports arrive in any order.
EXPECTED = {
    ("edge", "POST /v1/payments"), ("edge", "publish payment.initiate_payment"),
    ("payment-worker", "process payment.initiate_payment"), ("payment-worker", "commit payment.initiate_payment"),
    ("payment-worker", "publish ledger.create_transfers"), ("ledger-worker", "process ledger.create_transfers"),
    ("ledger-worker", "reply ledger.create_transfers"), ("ledger-worker", "publish ledger.transfers_committed"),
    ("payment-worker", "process payment.replies"), ("payment-worker", "publish payment.completed"),
    ("payment-worker", "reply payment.initiate_payment"), ("account-worker", "process payment.completed"),
    ("audit-worker", "process audit.tap.commands"), ("audit-worker", "process audit.tap.events"),
    ("audit-worker", "process audit.tap.replies"), ("ledger-worker", "copy ledger.create_transfers"),
}  # fmt: skip


def events_of(tree: Tree) -> list[Span]:
    return [s for s in tree.spans if s.kind == "PRODUCER" and s.attributes.get("messaging.destination.name") == "cbs.events"]


def missing_from(tree: Tree) -> list[str]:
    """What the trace still lacks: an expected span, or audit's record of one of its events."""
    present = {(s.service, s.name) for s in tree.spans}
    audited = {s.parent_id for s in tree.every("process audit.tap.events")}
    return sorted(f"{service}:{name}" for service, name in EXPECTED - present) + [
        f"audit's record of {e.name}" for e in events_of(tree) if e.span_id not in audited]


def test_a_payment_is_one_trace_from_the_edge_to_audit(traced: Cluster, receiver: tuple[Receiver, str]) -> None:
    received, _ = receiver
    with traced.client() as staff:
        alice = payable_account(staff, verified_customer(staff))
        bob = payable_account(staff, verified_customer(staff))
        deposit(staff, alice, 1_000_000)
        # Audit's tap batches linger 0.1 s: the deposit's are committed before the payment starts, so
        # each of the payment's batches opens with a message of its own trace (and its SQL is in it).
        time.sleep(1)
        key = uuid.uuid4().hex
        paid = post(staff, "/v1/payments", internal(alice, bob, 25_000), key=key)
        assert paid.status_code == 201 and paid.json()["status"] == "completed", paid.text

    # The command the edge sent under the request's Idempotency-Key names the trace.
    [sent] = eventually(lambda: received.find(lambda s: s.service == "edge" and s.kind == "PRODUCER"
                                              and s.attributes.get("messaging.message.id") == key),
                        what="the edge's publish of the payment")  # fmt: skip
    trace_id = sent.trace_id

    deadline = time.monotonic() + 30
    while missing := missing_from(tree := Tree(received.of_trace(trace_id))):
        assert time.monotonic() < deadline, f"the payment's trace lacks {missing} after 30 s; it has {tree.names()}"
        time.sleep(0.2)

    # edge: the request, and the command it sent
    request = tree.one("POST /v1/payments", "edge")
    assert request.kind == "SERVER" and request.parent_id is None, "the request starts the trace"
    assert request.attributes["http.route"] == "/v1/payments" and request.attributes["http.response.status_code"] == 201
    child_of(tree, sent, request)
    assert sent.name == "publish payment.initiate_payment"

    # payment: the order, group-committed, and the ledger command through its outbox
    order = tree.one("process payment.initiate_payment", "payment-worker")
    assert order.kind == "CONSUMER"
    child_of(tree, order, sent)
    commit = tree.one("commit payment.initiate_payment", "payment-worker")
    assert order.span_id in commit.links, "a batch's commit links to each of its messages"
    to_ledger = tree.one("publish ledger.create_transfers", "payment-worker")
    descends_from(tree, to_ledger, order)

    # ledger: the transfers, their SQL, the reply and the ledger's event
    transfers = tree.one("process ledger.create_transfers", "ledger-worker")
    child_of(tree, transfers, to_ledger)
    ledger_sql = [s for s in tree.spans if s.service == "ledger-worker" and s.kind == "CLIENT"]
    assert ledger_sql and all(s.attributes["db.system.name"] == "postgresql" for s in ledger_sql)
    assert "COMMIT" in {s.name for s in ledger_sql}, [s.name for s in ledger_sql]
    for statement in ledger_sql:
        descends_from(tree, statement, transfers)
    reply = tree.one("reply ledger.create_transfers", "ledger-worker")
    child_of(tree, reply, transfers)
    committed = tree.one("publish ledger.transfers_committed", "ledger-worker")
    descends_from(tree, committed, transfers)

    # payment again: the ledger's answer continues the saga, which completes the payment
    answered = tree.one("process payment.replies", "payment-worker")
    child_of(tree, answered, reply)
    completed = tree.one("publish payment.completed", "payment-worker")
    descends_from(tree, completed, answered)
    final = tree.one("reply payment.initiate_payment", "payment-worker")
    descends_from(tree, final, answered)
    payment_sql = [s for s in tree.spans if s.service == "payment-worker" and s.kind == "CLIENT"]
    assert any(order in tree.ancestors(s) for s in payment_sql), "the order's SQL is in its trace"
    assert any(answered in tree.ancestors(s) for s in payment_sql), "the continuation's SQL too"

    # every consumer of the events: audit's stream record of each, and the account worker's queue
    for event in events_of(tree):
        [audited] = [s for s in tree.every("process audit.tap.events") if s.parent_id == event.span_id]
        assert audited.service == "audit-worker" and audited.kind == "CONSUMER"
        assert audited.attributes["messaging.message.id"] == event.attributes["messaging.message.id"]
    child_of(tree, tree.one("process payment.completed", "account-worker"), completed)
    # ... and audit's copies of the commands and replies, each the child of its publish
    commands_tapped = {s.parent_id for s in tree.every("process audit.tap.commands")}
    assert {sent.span_id, to_ledger.span_id} <= commands_tapped
    # A group commit's replies reach audit as one copy of the batch's (bus/replies.py), traced as
    # the batch is: below the first message's span, here the only one. The order's reply, which a
    # saga step gave later, took its own copy.
    copied = tree.one("copy ledger.create_transfers", "ledger-worker")
    descends_from(tree, copied, transfers)
    replies_tapped = {s.parent_id for s in tree.every("process audit.tap.replies")}
    assert {copied.span_id, final.span_id} <= replies_tapped
    audit_sql = [s for s in tree.spans if s.service == "audit-worker" and s.kind == "CLIENT"]
    assert audit_sql, "audit's stream batches write in the trace too"

    # One trace: every span of it reaches the request, and names its process.
    for span in tree.spans:
        assert span == request or request in tree.ancestors(span), f"{span.service}:{span.name} is cut off the tree"
    services = {s.service for s in tree.spans}
    assert {"edge", "payment-worker", "ledger-worker", "audit-worker", "account-worker"} <= services, services

    # The trace id is in the JSON logs of every process the trace crossed.
    for process in ("edge", "payment", "ledger", "audit", "account"):
        assert trace_id in eventually(lambda: trace_id in logged_trace_ids(process) and logged_trace_ids(process),
                                      what=f"{process}'s log lines of trace {trace_id}")  # fmt: skip
