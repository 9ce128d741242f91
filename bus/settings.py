"""Configuration from environment variables, with loopback defaults that work out of the box.

Nothing secret has a default other than the local development ones (guest broker user,
trust-auth PostgreSQL); production sets every URL explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

WORKERS: tuple[str, ...] = ("customer", "account", "ledger", "identity", "payment", "audit", "day", "loan", "notification")
# Every kind of process speaks on the bus as its own broker user (DESIGN §3): the edge, each
# worker, the operator's tools (`ops`: bench, ledger verify, partner grants) and the dead-letter
# replayer (`dlq`, which alone may resend a message under its first sender's user_id). So "the
# edge" is one identity that no worker holds, and a worker's message never passes for the edge's.
PROCESSES: tuple[str, ...] = ("edge", *WORKERS, "ops", "dlq")
ROOT = Path(__file__).resolve().parent.parent


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

    def process_amqp_url(self, process: str) -> str:
        """The broker URL a process connects with: its own user, never the administrator's.

        `CBS_<PROCESS>_AMQP_URL` names it whole (production: each process is given only its own
        secret). Otherwise it is `CBS_AMQP_URL`'s host, port and vhost with the process's user
        and its password: `CBS_<PROCESS>_BROKER_PASSWORD`, else the secret `cbs migrate`
        generated into `CBS_SECRETS_DIR` (the development default; see README).
        """
        explicit = os.environ.get(f"CBS_{process.upper()}_AMQP_URL")
        if explicit:
            return explicit
        password = broker_password(process)
        if password is None:
            raise RuntimeError(f"no broker secret for {process}: run `cbs migrate` (it creates the process users)")
        parts = urlsplit(self.amqp_url)
        host = parts.hostname or "127.0.0.1"
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{quote(broker_user(process), safe='')}:{quote(password, safe='')}@{host}{port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def admin_database_url(self, worker: str) -> str:
        """The administrative DSN of the server and database that hold the worker's schema:
        migrations create its roles and schema with it, `cbs backup` dumps it, `cbs status` reads it.

        `CBS_<WORKER>_ADMIN_DATABASE_URL` names it whole (a server whose administrator is not the
        shared one's). Otherwise, when `CBS_<WORKER>_DATABASE_URL` moves the worker to another
        server, that DSN's host, port, database and options with `CBS_DATABASE_URL`'s user and
        password; else `CBS_DATABASE_URL` itself.
        """
        explicit = os.environ.get(f"CBS_{worker.upper()}_ADMIN_DATABASE_URL")
        if explicit:
            return explicit
        moved = os.environ.get(f"CBS_{worker.upper()}_DATABASE_URL")
        if not moved:
            return self.database_url
        admin, there = urlsplit(self.database_url), urlsplit(moved)
        credentials = admin.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{there.netloc.rpartition('@')[2]}" if credentials else there.netloc.rpartition("@")[2]
        return urlunsplit((there.scheme, netloc, there.path, there.query, there.fragment))

    def worker_database_url(self, worker: str) -> str:
        """The DSN a worker connects with: its own role, so it can touch only its own schema.

        `CBS_<WORKER>_DATABASE_URL` names it whole, and so moves the worker's schema to another
        server (`admin_database_url` follows it). Otherwise the worker's administrative DSN's
        host, port and database, as role `cbs_<worker>` (password `CBS_DB_ROLE_PASSWORD`).
        """
        explicit = os.environ.get(f"CBS_{worker.upper()}_DATABASE_URL")
        if explicit:
            return explicit
        parts = urlsplit(self.admin_database_url(worker))
        host = parts.hostname or "127.0.0.1"
        port = f":{parts.port}" if parts.port else ""
        password = f":{self.db_role_password}" if self.db_role_password else ""
        netloc = f"{role_name(worker)}{password}@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def servers(self, workers: tuple[str, ...] = WORKERS) -> dict[str, tuple[str, ...]]:
        """Each administrative DSN with the workers whose schemas it holds, in `workers`' order
        (one entry when every schema shares the database of `CBS_DATABASE_URL`)."""
        found: dict[str, list[str]] = {}
        for worker in workers:
            found.setdefault(self.admin_database_url(worker), []).append(worker)
        return {dsn: tuple(names) for dsn, names in found.items()}


def broker_user_prefix() -> str:
    """Prefix of the processes' broker users (`cbs.` → `cbs.edge`, `cbs.ledger`, …). Broker users
    are per node, not per vhost: a test run takes its own prefix so runs never share a user."""
    return os.environ.get("CBS_BROKER_USER_PREFIX", "cbs.")


def broker_user(process: str) -> str:
    return f"{broker_user_prefix()}{process}"


def secrets_dir() -> Path:
    return Path(os.environ.get("CBS_SECRETS_DIR", str(ROOT / "var" / "secrets")))


def broker_secret_file(process: str) -> Path:
    return secrets_dir() / f"broker-{process}.secret"


def broker_password(process: str) -> str | None:
    """The process's broker password: from the environment, else from its secret file."""
    explicit = os.environ.get(f"CBS_{process.upper()}_BROKER_PASSWORD")
    if explicit:
        return explicit
    try:
        return broker_secret_file(process).read_text().strip() or None
    except FileNotFoundError:
        return None


def edge_users() -> frozenset[str]:
    """Broker users whose `x-actor` header workers believe: `CBS_EDGE_BROKER_USERS`, else the edge's."""
    explicit = os.environ.get("CBS_EDGE_BROKER_USERS")
    if explicit:
        return frozenset(u.strip() for u in explicit.split(",") if u.strip())
    return frozenset({broker_user("edge")})


def service_users() -> frozenset[str]:
    """Broker users of the bank's own services (the workers and the operator's tools): trusted to
    speak for who they name, because they only ever forward what the edge or a checker decided."""
    return frozenset(broker_user(p) for p in (*WORKERS, "ops"))


def publisher_of(routing_key: str) -> str | None:
    """The broker user that alone may publish this event key: `<worker>.…` the worker's, `edge.…`
    the edge's, `partner.…` the operator's tools', `ops.…` the dead-letter tool's; None when nobody
    owns it."""
    owner = routing_key.split(".", 1)[0]
    if owner in WORKERS or owner == "edge":
        return broker_user(owner)
    if owner == "partner":
        return broker_user("ops")
    if owner == "ops":
        return broker_user("dlq")
    return None


def role_name(worker: str) -> str:
    return f"cbs_{worker}"


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def server_label(dsn: str) -> str:
    """host:port/database of a DSN, without its user or password: safe to print and to record."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}/{database_name(dsn)}"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def load() -> Settings:
    return Settings()
