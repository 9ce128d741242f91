"""Where a bench's CPU went: seconds of CPU per process during the load, per transfer.

Throughput on a shared 2-core machine moves with whatever else runs; the CPU each process spends
per transfer moves much less, and it says where a transfer's cost is. Read from /proc (Linux):
the processes of the cluster under test (`ops.cli worker NAME`, `ops.cli edge`, the bench peer),
whose CBS_AMQP_URL is the bench's own (so a test run's cluster on the same machine is not
counted), the RabbitMQ node, the PostgreSQL backends connected to the bench's database (their
process title names it) and PostgreSQL's shared writers, and the bench client itself.
Elsewhere (no /proc) the split is simply empty.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PG_SHARED = ("walwriter", "checkpointer", "background writer", "autovacuum", "logical replication", "walsummarizer")

Snapshot = dict[str, float]  # process role -> CPU seconds so far (summed over its processes)


def _cpu_s(pid: str) -> float:
    fields = (PROC / pid / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime + stime


def _role(pid: str, amqp_url: str | None, database: str) -> str | None:
    argv = (PROC / pid / "cmdline").read_bytes().split(b"\0")
    if argv and argv[0].startswith(b"postgres:"):  # a backend's title: "postgres: [CLUSTER:] USER DATABASE HOST ..."
        title = argv[0].decode(errors="replace")
        words = [w for w in title.split() if not w.endswith(":")]  # Debian adds the cluster, "15/main:"
        if len(words) > 1 and words[1] == database:
            return "postgresql"
        return "postgresql (shared)" if any(w in title for w in PG_SHARED) else None
    if b"beam.smp" in argv[0] and b"rabbit" in b" ".join(argv):
        return "rabbitmq"
    args = [a.decode(errors="replace") for a in argv]
    if "ops.bench.baseline" in args:
        return "peer"
    if "ops.cli" not in args:
        return None
    rest = args[args.index("ops.cli") + 1 :]
    if not rest or rest[0] not in ("worker", "edge"):
        return None
    env = (PROC / pid / "environ").read_bytes().split(b"\0")
    own = next((e[len(b"CBS_AMQP_URL=") :].decode() for e in env if e.startswith(b"CBS_AMQP_URL=")), None)
    if own != amqp_url:
        return None
    return rest[1] if rest[0] == "worker" and len(rest) > 1 else "edge"


def snapshot(database_url: str) -> Snapshot:
    """CPU seconds by role now (the bench client as 'bench client'); `database_url` names the
    database whose backends count."""
    if not PROC.is_dir():
        return {}
    database = urlsplit(database_url).path.lstrip("/")
    amqp_url = os.environ.get("CBS_AMQP_URL")
    totals: dict[str, float] = defaultdict(float)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            role = _role(entry.name, amqp_url, database)
            if role is not None:
                totals[role] += _cpu_s(entry.name)
        except (OSError, IndexError, ValueError):  # gone meanwhile, or not ours to read
            continue
    times = os.times()
    totals["bench client"] = times.user + times.system
    return dict(totals)


def per_transfer_ms(before: Snapshot, after: Snapshot, transfers: int) -> list[tuple[str, float]]:
    """(role, CPU ms per transfer), largest first; roles that spent nothing noticeable are left out.
    A process that started during the load (the peer) counts from zero."""
    if transfers <= 0:
        return []
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    rows = [(role, 1000 * s / transfers) for role, s in spent.items() if s >= 0.05]
    return sorted(rows, key=lambda r: -r[1])


def rows(split: list[tuple[str, float]], per: str = "transfer") -> tuple[tuple[str, str], ...]:
    """Table rows: the total, then each process; `per` names the unit counted (a transfer, a payment)."""
    if not split:
        return ()
    total = sum(ms for _, ms in split)
    return ((f"cpu ms/{per}", f"{total:.2f} in all"),
            *((f"  {role}", f"{ms:.2f}") for role, ms in split))  # fmt: skip
