"""`cbs status`: every worker at a glance, from the broker and the database (issue 14).

Per worker: replicas and consumers, queue depth and rates, dead letters, outbox lag (rows unsent,
the oldest one's age), its last error when one is known; and the bank's business date.

Sources, each read-only:
- the broker's queues from the management HTTP API (`CBS_RABBITMQ_API_URL`, else port 15672 on
  the broker's host, with the administrator's credentials of `CBS_AMQP_URL`), which also gives
  publish and deliver rates; when it does not answer, `rabbitmqctl list_queues` (no rates in a
  single look: the live view derives them from the depth between two looks);
- dead letters by peeking at `cbs.dead` (ops/dlq.py: every letter is returned untouched);
- each worker schema's `outbox`, and the day worker's `business_day`, over the administrative DSN.

"Replicas" is the most consumers on one of the worker's command queues: each replica consumes
every command queue of its worker once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import asyncpg
import httpx

from bus import topology
from bus.settings import WORKERS, Settings, server_label
from ops import dlq

STREAMS = frozenset(topology.AUDIT_TAPS)  # depth = retained log, not backlog
API_TIMEOUT_S = 5.0
LETTERS_PEEKED = 1_000


@dataclass(frozen=True)
class QueueStat:
    name: str
    messages: int
    consumers: int
    publish_rate: float | None = None  # messages/s in, per the management API
    deliver_rate: float | None = None  # messages/s out


@dataclass(frozen=True)
class Outbox:
    unsent: int
    oldest_age_s: float | None
    last_error: str | None


@dataclass
class WorkerStatus:
    worker: str
    replicas: int
    consumers: int
    queues: int
    queues_without_consumers: list[str]
    depth: int
    publish_rate: float | None
    deliver_rate: float | None
    dead_letters: int
    outbox_unsent: int | None
    outbox_oldest_age_s: float | None
    last_error: str | None


@dataclass
class Snapshot:
    at: str
    vhost: str
    broker_source: str
    business_day: dict[str, Any] | None
    dead_letters: dict[str, Any]
    edges: int  # edge instances: each owns one exclusive `edge.replies.*` queue
    workers: list[WorkerStatus]
    errors: list[str] = field(default_factory=list)  # a source that could not be read, and why

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def worker_of(queue: str) -> str | None:
    head = queue.split(".", 1)[0]
    return head if head in WORKERS else None


def worker_rows(queues: list[QueueStat], letters: list[dlq.DeadLetter],
                outboxes: dict[str, Outbox | None]) -> list[WorkerStatus]:  # fmt: skip
    """Everything per worker, from what the sources said (pure)."""
    rows = []
    commands = {w: set(topology.command_keys(w)) for w in WORKERS}
    for w in WORKERS:
        mine = [q for q in queues if worker_of(q.name) == w]
        backlog = [q for q in mine if q.name not in STREAMS]
        dead = [d for d in letters if worker_of(d.queue or d.routing_key) == w]
        newest_dead = max(dead, key=lambda d: d.died_at or dt.datetime.min.replace(tzinfo=dt.UTC), default=None)
        outbox = outboxes.get(w)
        last_error = outbox.last_error if outbox and outbox.last_error else None
        if last_error is None and newest_dead is not None:
            why = newest_dead.diagnosis or newest_dead.reason
            last_error = f"dead letter {newest_dead.message_id} ({newest_dead.queue}): {why}"
        rows.append(WorkerStatus(
            worker=w,
            replicas=max((q.consumers for q in mine if q.name in commands[w]), default=0),
            consumers=sum(q.consumers for q in mine),
            queues=len(mine),
            queues_without_consumers=sorted(q.name for q in mine if q.consumers == 0),
            depth=sum(q.messages for q in backlog),
            publish_rate=_sum_rate(q.publish_rate for q in backlog),
            deliver_rate=_sum_rate(q.deliver_rate for q in backlog),
            dead_letters=len(dead),
            outbox_unsent=outbox.unsent if outbox else None,
            outbox_oldest_age_s=outbox.oldest_age_s if outbox else None,
            last_error=last_error,
        ))  # fmt: skip
    return rows


def _sum_rate(rates: Any) -> float | None:
    known = [r for r in rates if r is not None]
    return round(sum(known), 2) if known else None


# -- the broker ----------------------------------------------------------------------------------


def vhost_of(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _api_url(amqp_url: str) -> str:
    return os.environ.get("CBS_RABBITMQ_API_URL") or f"http://{urlsplit(amqp_url).hostname or '127.0.0.1'}:15672"


def queues_from_api(amqp_url: str) -> list[QueueStat]:
    parts = urlsplit(amqp_url)
    columns = "name,messages,consumers,message_stats.publish_details.rate,message_stats.deliver_get_details.rate"
    response = httpx.get(f"{_api_url(amqp_url).rstrip('/')}/api/queues/{quote(vhost_of(amqp_url), safe='')}",
                         params={"columns": columns}, timeout=API_TIMEOUT_S,
                         auth=(unquote(parts.username or "guest"), unquote(parts.password or "guest")))  # fmt: skip
    response.raise_for_status()
    stats = []
    for q in response.json():
        rates = q.get("message_stats") or {}
        stats.append(QueueStat(
            name=q["name"], messages=int(q.get("messages") or 0), consumers=int(q.get("consumers") or 0),
            # No stats yet: nothing went through it since the broker started.
            publish_rate=(rates.get("publish_details") or {}).get("rate", 0.0),
            deliver_rate=(rates.get("deliver_get_details") or {}).get("rate", 0.0),
        ))  # fmt: skip
    return stats


def queues_from_rabbitmqctl(amqp_url: str) -> list[QueueStat]:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost_of(amqp_url), "name", "messages", "consumers",
                          "--formatter", "json"], check=True, capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    return [QueueStat(q["name"], int(q.get("messages") or 0), int(q.get("consumers") or 0))
            for q in json.loads(out or "[]")]  # fmt: skip


def broker_queues(amqp_url: str) -> tuple[list[QueueStat], str, str | None]:
    """(queues, source, why the management API was not used)."""
    try:
        return queues_from_api(amqp_url), "management", None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        why = f"management API: {type(exc).__name__}: {exc}"[:300]
    return queues_from_rabbitmqctl(amqp_url), "rabbitmqctl", why


# -- the database --------------------------------------------------------------------------------


async def outboxes(conn: asyncpg.Connection, workers: tuple[str, ...] = WORKERS) -> dict[str, Outbox | None]:
    have = {r["table_schema"] for r in await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox' AND table_schema = ANY($1::text[])",
        list(workers))}  # fmt: skip
    found: dict[str, Outbox | None] = {}
    for w in workers:
        if w not in have:
            found[w] = None
            continue
        row = await conn.fetchrow(
            f"SELECT count(*) AS unsent, extract(epoch FROM now() - min(created_at)) AS age, "  # noqa: S608 - w is one of WORKERS
            f"(SELECT last_error FROM {w}.outbox WHERE published_at IS NULL AND last_error IS NOT NULL "
            f" ORDER BY id DESC LIMIT 1) AS last_error FROM {w}.outbox WHERE published_at IS NULL")  # fmt: skip
        found[w] = Outbox(int(row["unsent"]), float(row["age"]) if row["age"] is not None else None, row["last_error"])
    return found


async def business_day(conn: asyncpg.Connection) -> dict[str, Any] | None:
    if not await conn.fetchval("SELECT to_regclass('day.business_day') IS NOT NULL"):
        return None
    row = await conn.fetchrow("SELECT business_date, status, last_closed FROM day.business_day")
    if row is None:
        return None
    return {"business_date": row["business_date"].isoformat(), "status": row["status"],
            "last_closed": row["last_closed"].isoformat() if row["last_closed"] else None}  # fmt: skip


# -- all of it -----------------------------------------------------------------------------------


def _letters_url(settings: Settings) -> str:
    """The dead-letter tool's own user when its secret is here (it alone reads `cbs.dead`), else
    the administrator's."""
    try:
        return settings.process_amqp_url("dlq")
    except RuntimeError:
        return settings.amqp_url


class LetterCache:
    """The live view peeks at `cbs.dead` again only when its depth changed: a peek fetches and
    returns every letter, which is no thing to do every two seconds to a long queue."""

    def __init__(self) -> None:
        self.depth: int | None = None
        self.letters: list[dlq.DeadLetter] = []

    async def letters_at(self, depth: int, url: str) -> list[dlq.DeadLetter]:
        if depth != self.depth:
            self.letters = await dlq.list_dead(url, LETTERS_PEEKED) if depth else []
            self.depth = depth
        return self.letters


async def snapshot(settings: Settings, cache: LetterCache | None = None) -> Snapshot:
    errors: list[str] = []
    queues, source, why = await asyncio.to_thread(broker_queues, settings.amqp_url)
    if why:
        errors.append(why)
    dead_depth = next((q.messages for q in queues if q.name == topology.DEAD_LETTER_QUEUE_NAME), 0)
    letters = await (cache or LetterCache()).letters_at(dead_depth, _letters_url(settings))
    day, boxes = None, {}
    for dsn, here in settings.servers().items():  # each schema read where it lives (CBS_<WORKER>_DATABASE_URL)
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                boxes.update(await outboxes(conn, here))
                if "day" in here:
                    day = await business_day(conn)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"database {server_label(dsn)}: {type(exc).__name__}: {exc}"[:300])
    by_queue: dict[str, int] = {}
    for letter in letters:
        by_queue[letter.queue or "?"] = by_queue.get(letter.queue or "?", 0) + 1
    return Snapshot(
        at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), vhost=vhost_of(settings.amqp_url),
        broker_source=source, business_day=day,
        dead_letters={"total": dead_depth, "peeked": len(letters), "by_queue": dict(sorted(by_queue.items()))},
        edges=sum(1 for q in queues if q.name.startswith("edge.replies.")),
        workers=worker_rows(queues, letters, boxes), errors=errors,
    )  # fmt: skip


def with_depth_rates(now: Snapshot, before: Snapshot | None, seconds: float) -> Snapshot:
    """Without the management API's rates, the depth's change per second between two looks."""
    if before is None or now.broker_source == "management" or seconds <= 0:
        return now
    previous = {w.worker: w.depth for w in before.workers}
    for w in now.workers:
        if w.worker in previous:
            w.publish_rate = round((w.depth - previous[w.worker]) / seconds, 2)  # net: in minus out
    return now


# -- the terminal --------------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render(snap: Snapshot) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    day = snap.business_day
    head = Text.assemble(
        ("CBS ", "bold"), f"vhost {snap.vhost}  ", ("business date ", "dim"),
        (f"{day['business_date']} ({day['status']})" if day else "unknown", "bold cyan"),
        ("  dead letters ", "dim"), (str(snap.dead_letters["total"]), "bold red" if snap.dead_letters["total"] else "green"),
        ("  edges ", "dim"), (str(snap.edges), "bold" if snap.edges else "bold red"),
        ("  broker via ", "dim"), snap.broker_source, ("  at ", "dim"), snap.at,
    )  # fmt: skip
    table = Table(expand=False)
    for column in ("worker", "replicas", "consumers", "depth", "in/s", "out/s", "dead", "outbox unsent", "oldest",
                   "last error"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("worker", "last error") else "right",
                         overflow="fold", max_width=60 if column == "last error" else None)  # fmt: skip
    for w in snap.workers:
        down = w.replicas == 0
        table.add_row(
            Text(w.worker, style="bold red" if w.replicas == 0 else "bold"),
            Text(str(w.replicas), style="red" if down else ""), str(w.consumers), str(w.depth), _rate(w.publish_rate),
            _rate(w.deliver_rate), Text(str(w.dead_letters), style="red" if w.dead_letters else ""),
            "-" if w.outbox_unsent is None else str(w.outbox_unsent), _age(w.outbox_oldest_age_s), w.last_error or "",
        )  # fmt: skip
    parts: list[Any] = [head, table]
    parts += [Text(f"! {e}", style="yellow") for e in snap.errors]
    return Group(*parts)


def print_once(snap: Snapshot, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(snap.as_dict(), indent=2))
        return
    from rich.console import Console

    Console(width=max(160, Console().width)).print(render(snap))


async def live(settings: Settings, interval_s: float) -> None:
    """Refresh in place until Ctrl-C."""
    from rich.live import Live

    loop = asyncio.get_running_loop()
    cache = LetterCache()
    snap = await snapshot(settings, cache)
    before, before_at = snap, loop.time()
    with Live(render(snap), refresh_per_second=4, screen=False) as view:
        while True:
            await asyncio.sleep(interval_s)
            now_at = loop.time()
            snap = with_depth_rates(await snapshot(settings, cache), before, now_at - before_at)
            before, before_at = snap, now_at
            view.update(render(snap))
