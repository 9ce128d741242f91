"""Configuration from environment variables, with loopback defaults that work out of the box.

Nothing secret has a default other than the local development ones (guest broker user,
trust-auth PostgreSQL); production sets every URL explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

WORKERS: tuple[str, ...] = ("customer", "account", "ledger", "identity", "payment", "audit")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    amqp_url: str = field(default_factory=lambda: _env("CBS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    # The administrative DSN: migrations create the database, roles and schemas with it.
    database_url: str = field(
        default_factory=lambda: _env("CBS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cbs")
    )
    edge_host: str = field(default_factory=lambda: _env("CBS_EDGE_HOST", "127.0.0.1"))
    edge_port: int = field(default_factory=lambda: int(_env("CBS_EDGE_PORT", "8080")))
    request_timeout_s: float = field(default_factory=lambda: float(_env("CBS_REQUEST_TIMEOUT_S", "5")))
    # In-flight deliveries per channel; kept near the pool size so work never queues in memory.
    prefetch: int = field(default_factory=lambda: int(_env("CBS_PREFETCH", "16")))
    db_pool_max: int = field(default_factory=lambda: int(_env("CBS_DB_POOL_MAX", "8")))
    graceful_timeout_s: float = field(default_factory=lambda: float(_env("CBS_GRACEFUL_TIMEOUT_S", "20")))
    outbox_poll_ms: int = field(default_factory=lambda: int(_env("CBS_OUTBOX_POLL_MS", "200")))
    # Big enough for the largest contract (1,000 transfers with full user_data), and no more.
    max_body_bytes: int = field(default_factory=lambda: int(_env("CBS_MAX_BODY_BYTES", str(8 * 1024 * 1024))))
    # Group commit: how long a batch waits for company, and how many deliveries it may gather.
    group_commit_window_ms: float = field(default_factory=lambda: float(_env("CBS_GROUP_COMMIT_WINDOW_MS", "2")))
    batch_prefetch: int = field(default_factory=lambda: int(_env("CBS_BATCH_PREFETCH", "256")))
    # A worker's Prometheus metrics (GET /metrics) on this port; unset: not served. `cbs up`
    # gives each worker its own, from CBS_METRICS_PORT_BASE (the edge serves /metrics itself).
    metrics_port: int | None = field(default_factory=lambda: int(_env("CBS_METRICS_PORT", "0")) or None)
    metrics_host: str = field(default_factory=lambda: _env("CBS_METRICS_HOST", "127.0.0.1"))
    # Password for the per-worker database roles; unset with local trust auth.
    db_role_password: str | None = field(default_factory=lambda: os.environ.get("CBS_DB_ROLE_PASSWORD"))

    def worker_database_url(self, worker: str) -> str:
        """The DSN a worker connects with: its own role, so it can touch only its own schema.

        `CBS_<WORKER>_DATABASE_URL` moves one worker's schema to another server.
        """
        explicit = os.environ.get(f"CBS_{worker.upper()}_DATABASE_URL")
        if explicit:
            return explicit
        parts = urlsplit(self.database_url)
        host = parts.hostname or "127.0.0.1"
        port = f":{parts.port}" if parts.port else ""
        password = f":{self.db_role_password}" if self.db_role_password else ""
        netloc = f"{role_name(worker)}{password}@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def role_name(worker: str) -> str:
    return f"cbs_{worker}"


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def load() -> Settings:
    return Settings()
