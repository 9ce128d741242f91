"""JSON logs that carry the correlation and trace ids, and metrics set-up (tracing: bus/tracing.py)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Protocol

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Set by the worker runtime and the edge for the message or request being handled.
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        correlation_id = correlation_id_var.get()
        if correlation_id:
            entry["correlation_id"] = correlation_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key in ("message_id", "routing_key", "partner"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(process: str) -> None:
    level = os.environ.get("CBS_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-message "Received/Processed" lines would drown everything else at load.
    logging.getLogger("faststream").setLevel(os.environ.get("CBS_MESSAGE_LOG_LEVEL", "WARNING").upper())
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    # A line per span a message or request opens (bus/tracing.py), with its trace id: tests and
    # debugging ask for it; at load it is a line per message.
    logging.getLogger("cbs.trace").setLevel(os.environ.get("CBS_TRACE_LOG_LEVEL", "WARNING").upper())


# CBS's own metrics, beside FastStream's per-message ones. None is updated per message on the hot
# path: a group commit observes once per batch, the outbox lag once per relay poll, the inbox and
# dead-letter counters only when a repeat or a rejection happens.
GROUP_COMMIT_MESSAGES = Counter(
    "cbs_group_commit_messages", "Deliveries of a group-committed command, or of a worker's events (command="
    "'<worker>.events'), by the outcome of their batch's commit (consumed on aio-pika directly, so absent from "
    "faststream_received_*)", ["command", "outcome"], registry=None,
)  # fmt: skip
GROUP_COMMIT_SECONDS = Histogram(
    "cbs_group_commit_duration_seconds", "One group commit of a batched command (or of a worker's events): its "
    "transaction and answers",
    ["command"], registry=None, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
INBOX_DUPLICATES = Counter(
    "cbs_inbox_duplicates", "Deliveries answered from the inbox with no second effect (a redelivery or a retry "
    "under the same message_id); a retried transaction may count one twice", ["consumer"], registry=None,
)  # fmt: skip
DEAD_LETTERED = Counter(
    "cbs_dead_lettered", "Deliveries this process rejected to the dead-letter exchange (invalid messages); "
    "the broker's own dead letters (delivery limit) are counted by RabbitMQ", ["worker", "reason"], registry=None,
)  # fmt: skip
OUTBOX_LAG_SECONDS = Gauge(
    "cbs_outbox_lag_seconds", "Age of the oldest outbox row the relay found still unsent past its grace period, "
    "at its last poll (0: none; the committing process publishes its own rows at once)", registry=None,
)  # fmt: skip
OUTBOX_RELAYED = Counter(
    "cbs_outbox_relayed", "Outbox rows the relay (the safety net) published, not the committing process",
    registry=None,
)  # fmt: skip
SAGA_REASKED = Counter(
    "cbs_saga_reasked", "Saga steps asked again because no answer came (bus/saga.py): a lost command or reply, "
    "or a worker far behind; each is a warning in the log", ["worker"], registry=None,
)  # fmt: skip
DB_POOL_CONNECTIONS = Gauge(
    "cbs_db_pool_connections", "The worker's database pool, read at scrape time: connections open, idle, and "
    "its bound (CBS_DB_POOL_MAX)", ["state"], registry=None,
)  # fmt: skip
BUS_COLLECTORS = (GROUP_COMMIT_MESSAGES, GROUP_COMMIT_SECONDS, INBOX_DUPLICATES, DEAD_LETTERED, OUTBOX_LAG_SECONDS,
                  OUTBOX_RELAYED, SAGA_REASKED, DB_POOL_CONNECTIONS)  # fmt: skip


class _Pool(Protocol):
    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def get_max_size(self) -> int: ...


def watch_pool(pool: _Pool) -> None:
    """Export `pool`'s use, read when scraped (nothing done per query)."""
    DB_POOL_CONNECTIONS.labels("open").set_function(pool.get_size)
    DB_POOL_CONNECTIONS.labels("idle").set_function(pool.get_idle_size)
    DB_POOL_CONNECTIONS.labels("max").set_function(pool.get_max_size)


def metrics_registry(*collectors: object) -> CollectorRegistry:
    """A process's registry: FastStream's metrics join it, CBS's own bus metrics and `collectors` are in it."""
    registry = CollectorRegistry()
    for collector in (*BUS_COLLECTORS, *collectors):
        registry.register(collector)  # type: ignore[arg-type]
    return registry
