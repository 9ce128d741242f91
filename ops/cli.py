"""`cbs`: run, migrate and operate the cluster."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import os
import subprocess
import sys
from typing import Any

from bus import observability, topology
from ops import dlq
from bus.migrate import migrate, upkeep_warnings
from bus.settings import WORKERS, load
from ops.supervisor import ProcessSpec, Supervisor, cbs_process


def _run(coro: object) -> object:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def cmd_migrate(args: argparse.Namespace) -> int:
    from ops import broker_users, partners

    settings = load()
    applied = _run(migrate(settings, WORKERS))
    _run(topology.declare_on(settings.amqp_url))
    users = broker_users.ensure_users(partners.vhost_of(settings.amqp_url), settings.amqp_url)
    warnings = _run(upkeep_warnings(settings, WORKERS))
    for warning in warnings:
        print(f"cbs migrate: warning: {warning}", file=sys.stderr)
    print(json.dumps({"migrated": applied, "topology": "declared", "broker_users": users, "warnings": warnings}))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    if args.name not in WORKERS:
        print(f"unknown worker {args.name!r}; known: {', '.join(WORKERS)}", file=sys.stderr)
        return 2
    if not 1 <= args.replicas <= MAX_REPLICAS:
        print(f"cbs worker: --replicas must be within 1 and {MAX_REPLICAS}", file=sys.stderr)
        return 2
    if args.replicas > 1:
        specs = [cbs_process(f"{args.name}-{i}", "worker", args.name) for i in range(args.replicas)]
        return _supervise(specs)
    module = importlib.import_module(f"workers.{args.name}.app")
    _run(module.app.run())
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load()
    observability.configure_logging("edge")
    uvicorn.run(
        "api_edge.app:app",
        host=settings.edge_host,
        port=settings.edge_port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
    )
    return 0


def _supervise(specs: list) -> int:
    observability.configure_logging("supervisor")
    settings = load()
    return int(_run(Supervisor(specs, stop_timeout_s=settings.graceful_timeout_s + 10).run()))  # type: ignore[arg-type]


MAX_REPLICAS = 16  # per worker on one machine; past it, more machines (DESIGN §1)


class UsageError(ValueError):
    """A command line that cannot be acted on; the message says why."""


def parse_replicas(text: str | None) -> dict[str, int]:
    """`ledger=2,audit=2` → {"ledger": 2, "audit": 2}; every worker not named runs one."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, count = item.partition("=")
        name = name.strip()
        if not sep or not count.strip():
            raise UsageError(f"--replicas: {item!r} is not WORKER=COUNT (e.g. ledger=2,audit=2)")
        if name not in WORKERS:
            raise UsageError(f"--replicas: unknown worker {name!r}; known: {', '.join(WORKERS)}")
        if name in counts:
            raise UsageError(f"--replicas: {name} is named twice")
        try:
            n = int(count)
        except ValueError:
            raise UsageError(f"--replicas: {name}={count.strip()!r}: the count must be a whole number") from None
        if not 1 <= n <= MAX_REPLICAS:
            raise UsageError(f"--replicas: {name}={n}: the count must be within 1 and {MAX_REPLICAS}")
        counts[name] = n
    return counts


def up_specs(metrics_base: int, replicas: dict[str, int] | None = None) -> list[ProcessSpec]:
    """The edge and the processes of every worker (one each, or as `replicas` says). Each process
    serves its metrics on a port of its own: a worker's first at `metrics_base` + its place in
    WORKERS, its extra replicas on the ports after the last worker's, in order."""
    replicas = replicas or {}
    specs = [cbs_process("edge", "edge")]
    extra_port = metrics_base + len(WORKERS)
    for i, w in enumerate(WORKERS):
        n = replicas.get(w, 1)
        for r in range(n):
            port = metrics_base + i if r == 0 else extra_port
            extra_port += r > 0
            name = f"{w}-worker" if n == 1 else f"{w}-worker-{r + 1}"
            specs.append(cbs_process(name, "worker", w, env={"CBS_METRICS_PORT": str(port)}))
    return specs


def cmd_up(args: argparse.Namespace) -> int:
    settings = load()
    try:
        replicas = parse_replicas(args.replicas)
    except UsageError as exc:
        print(f"cbs up: {exc}", file=sys.stderr)
        return 2
    metrics_base = int(os.environ.get("CBS_METRICS_PORT_BASE", "9101"))
    specs = up_specs(metrics_base, replicas)
    base = f"http://{settings.edge_host}:{settings.edge_port}"
    print(f"CBS edge: {base}  (API docs: {base}/docs, ready: {base}/health/ready)", flush=True)
    ports = {s.name: dict(s.env)["CBS_METRICS_PORT"] for s in specs if s.env}
    print("Worker metrics: " + ", ".join(f"{name} :{port}" for name, port in ports.items())
          + f" (http://{settings.metrics_host}:PORT/metrics)", flush=True)  # fmt: skip
    if "CBS_ADMIN_PASSWORD" not in os.environ:
        # Development only: documented in the README; set CBS_ADMIN_PASSWORD anywhere else.
        print("First admin: admin / cbs-dev-admin-password (development default; set CBS_ADMIN_PASSWORD)", flush=True)
        print(f"  curl -d grant_type=password -d username=admin -d password=cbs-dev-admin-password {base}/v1/auth/token",
              flush=True)
    return _supervise(specs)


def _selection(args: argparse.Namespace) -> dlq.Selection:
    return dlq.Selection(ids=frozenset(args.id or ()), type=args.type, queue=args.queue, reason=args.reason,
                         everything=args.all)  # fmt: skip


def _letters_table(letters: list[dlq.DeadLetter]) -> str:
    rows = [("MESSAGE_ID", "TYPE", "QUEUE", "REASON", "DIED_AT", "FIRST SENDER", "ERROR")]
    for d in letters:
        rows.append((d.message_id or "-", d.message_type or "-", d.queue or "-", d.reason or "-",
                     d.died_at.isoformat(timespec="seconds") if d.died_at else "-", d.user_id or "-",
                     (d.diagnosis or "-")[:120]))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def cmd_dlq(args: argparse.Namespace) -> int:
    """`cbs dlq list|show|replay|purge`: dead letters (ops/dlq.py)."""
    url = load().process_amqp_url("dlq")
    if args.message_id:
        args.id = [*(args.id or ()), args.message_id]
    if args.action == "list":
        selection = _selection(args)
        letters = _run(dlq.list_dead(url, args.limit, None if selection.empty else selection))
        if args.json:
            for letter in letters:  # type: ignore[union-attr]
                print(json.dumps(letter.as_dict()))
        else:
            print(_letters_table(letters) if letters else "no dead letters")  # type: ignore[arg-type]
        return 0
    if args.action == "show":
        if len(args.id or ()) != 1 or args.type or args.queue or args.reason or args.all:
            print("cbs dlq show needs one message id: cbs dlq show ID", file=sys.stderr)
            return 2
        letters = _run(dlq.show(url, args.id[0]))
        for letter in letters:  # type: ignore[union-attr]
            print(json.dumps(letter.as_dict(whole=True), indent=2))
        if not letters:
            print(f"no dead letter has message_id {args.id[0]!r}", file=sys.stderr)
        return 0 if letters else 1
    selection = _selection(args)
    if selection.empty:
        print(f"cbs dlq {args.action} needs --id ID (repeatable), --type, --queue, --reason (patterns such as "
              "'account.*') or --all", file=sys.stderr)  # fmt: skip
        return 2
    if args.action == "replay":
        outcome = _run(dlq.replay_selected(url, selection, args.limit))
        print(json.dumps({"replayed": outcome.message_ids, "recorded_as": outcome.recorded_as}))  # type: ignore[union-attr]
        return 0
    if not args.yes:
        chosen = _run(dlq.list_dead(url, args.limit, selection))
        if not chosen:
            print(json.dumps({"purged": [], "recorded_as": None}))
            return 0
        print(_letters_table(chosen), file=sys.stderr)  # type: ignore[arg-type]
        print(f"Purge these {len(chosen)} dead letters for good? [y/N] ", end="", file=sys.stderr, flush=True)  # type: ignore[arg-type]
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing purged", file=sys.stderr)
            return 1
        # Only what was shown: a letter that arrived while the operator read is not purged unseen.
        selection = dataclasses.replace(selection, everything=False,
                                        ids=frozenset(d.message_id for d in chosen if d.message_id))  # type: ignore[union-attr]
    outcome = _run(dlq.purge(url, selection, args.limit))
    print(json.dumps({"purged": outcome.message_ids, "recorded_as": outcome.recorded_as}))  # type: ignore[union-attr]
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """`cbs status`: every worker at a glance, refreshing (ops/status.py); `--once [--json]` for scripts."""
    from ops import status

    settings = load()
    if args.once or args.json:
        snap = _run(status.snapshot(settings))
        status.print_once(snap, as_json=args.json)  # type: ignore[arg-type]
        return 0
    try:
        _run(status.live(settings, args.interval))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.rounds > 1 and not (args.baseline and args.kind == "transfers"):
        print("cbs bench --rounds: only with --baseline (transfers)", file=sys.stderr)
        return 2
    settings = load()
    for warning in _run(upkeep_warnings(settings, WORKERS)):  # the figures would not be the code's
        print(f"cbs bench: warning: {warning}", file=sys.stderr)
    url = args.url or f"http://{settings.edge_host}:{settings.edge_port}"
    if args.kind == "register":
        from ops.bench import register as bench

        figures = bench.bench_register(url, args.count)
        print(figures.table())
        return 0 if set(figures.statuses) <= {200, 201} else 1
    if args.kind == "loan-repayment":
        from ops.bench import loans

        outcome = _run(loans.run(args.loans, settings.process_amqp_url("ops"), settings.admin_database_url("day"),
                                 parallel=args.concurrency))  # fmt: skip
        print(outcome.text)  # type: ignore[union-attr]
        return 0 if outcome.ok else 1  # type: ignore[union-attr]
    from ops.bench import transfers as bt

    if args.kind == "payment" and (args.via == "bus" or args.batch != 1):
        print("cbs bench --kind payment: payments go through the edge, one order a request (no --via bus, --batch)",
              file=sys.stderr)  # fmt: skip
        return 2
    options = bt.Options(
        via="edge" if args.kind == "payment" else args.via or "bus", accounts=args.accounts, seconds=args.seconds,
        concurrency=args.concurrency, batch=args.batch, rate=args.rate, zipf=args.zipf, hot=args.hot, edge_url=url,
    )  # fmt: skip
    from ops.bench import payments as bench_payments

    if args.kind != "payment":
        if not args.baseline:
            outcome = _run(bt.run(options, settings.process_amqp_url("ops"), settings.database_url))
            print(outcome.text)
            return 0 if outcome.ok else 1
        from ops.bench import baseline

        ok, ratios = True, []
        for round_no in range(args.rounds):
            if round_no:
                print(f"\n--- round {round_no + 1} of {args.rounds}\n")
            peer = _run(baseline.run_peer(options, settings.amqp_url, settings.database_url, args.peer_queue))
            print(peer.text, end="\n\n", flush=True)
            outcome = _run(bt.run(options, settings.process_amqp_url("ops"), settings.database_url))
            print(outcome.text)
            print("\n" + baseline.ratio_line(outcome, peer, options.via), flush=True)
            ok, ratios = ok and outcome.ok and peer.ok, [*ratios, outcome.per_second / peer.per_second]
        if args.rounds > 1:
            print("\n" + baseline.rounds_line(ratios))
        return 0 if ok else 1
    raw = None
    if args.against_raw:
        # The yardstick: raw ledger transfers through the same edge, measured just before.
        raw = _run(bt.run(dataclasses.replace(options, via="edge"), settings.process_amqp_url("ops"), settings.database_url))
        print(raw.text, end="\n\n", flush=True)
    outcome = _run(bench_payments.run(options, settings.process_amqp_url("ops"), settings.database_url))
    print(outcome.text)
    if raw is not None:
        print(f"\npayments completed/s per raw transfer/s (both via the edge): {outcome.per_second / raw.per_second:.2f}")
    return 0 if outcome.ok and (raw is None or raw.ok) else 1


def cmd_ledger(args: argparse.Namespace) -> int:
    """`cbs ledger verify`: recompute every balance from the transfers, through the bus.
    `cbs ledger trial-balance --date D`: the books as business date D closed.
    `cbs ledger journal --date D`: that day's journal, as CSV."""
    import datetime as dt

    from contracts import ledger as c
    from ops.ask import ask_once

    if args.action == "trial-balance":
        if not args.date:
            print("trial-balance needs --date YYYY-MM-DD (a closed business date)", file=sys.stderr)
            return 2
        command = c.GetTrialBalance(business_date=dt.date.fromisoformat(args.date))
        answer = _run(ask_once(command, load().process_amqp_url("ops"), timeout_s=args.timeout))
        print(json.dumps(answer.model_dump(mode="json"), indent=2))  # type: ignore[union-attr]
        return 0 if answer.ok else 1  # type: ignore[union-attr]

    if args.action == "journal":
        if not args.date:
            print("journal needs --date YYYY-MM-DD (a closed business date)", file=sys.stderr)
            return 2
        return _journal_csv(dt.date.fromisoformat(args.date), args.timeout)

    async def verify() -> dict:
        reply = await ask_once(c.Verify(), load().process_amqp_url("ops"), timeout_s=args.timeout)
        return reply.model_dump(mode="json")

    reply = _run(verify())
    print(json.dumps(reply, indent=2))
    return 0 if reply["ok"] and reply["result"]["ok"] else 1  # type: ignore[index]


def _journal_csv(business_date: object, timeout_s: float) -> int:
    """`cbs ledger journal --date D`: the day's journal as CSV on stdout, page after page."""
    import csv

    from contracts import ledger as c
    from ops.ask import ask_once

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("seq", "at", "transfer_id", "account_id", "side", "amount_minor", "currency", "code"))
    after: int | None = None
    while True:
        reply = _run(ask_once(c.GetJournal(business_date=business_date, after=after), load().process_amqp_url("ops"),
                              timeout_s=timeout_s))  # fmt: skip
        if not reply.ok:  # type: ignore[union-attr]
            print(json.dumps(reply.model_dump(mode="json")), file=sys.stderr)  # type: ignore[union-attr]
            return 1
        page = c.Journal.model_validate(reply.result)  # type: ignore[union-attr]
        for line in page.lines:
            writer.writerow((line.seq, line.at.isoformat(), line.transfer_id, line.account_id, line.side, line.amount,
                             line.currency, line.code))  # fmt: skip
        if page.next_after is None:
            return 0
        after = page.next_after


def cmd_day(args: argparse.Namespace) -> int:
    """`cbs day status | close [--date D] [--wait]`: the business date and its close of business."""
    import datetime as dt
    import time

    from contracts import day as c
    from ops.ask import ask_once

    url = load().process_amqp_url("ops")

    def ask(command: c.Command) -> dict:
        return _run(ask_once(command, url, timeout_s=args.timeout)).model_dump(mode="json")  # type: ignore[union-attr]

    status = ask(c.GetBusinessDay())
    if args.action == "status" or not status["ok"]:
        print(json.dumps(status, indent=2))
        return 0 if status["ok"] else 1
    business_date = dt.date.fromisoformat(args.date) if args.date else dt.date.fromisoformat(status["result"]["business_date"])
    reply = ask(c.CloseDay(business_date=business_date))
    deadline = time.monotonic() + args.timeout
    while args.wait and reply["ok"] and time.monotonic() < deadline:
        reply = ask(c.GetBusinessDay())
        last = reply["result"]["last_closed"] if reply["ok"] else None
        if last is not None and dt.date.fromisoformat(last) >= business_date:
            break
        time.sleep(0.2)
    print(json.dumps(reply, indent=2))
    return 0 if reply["ok"] else 1


def cmd_notify(args: argparse.Namespace) -> int:
    """`cbs notify test --to ADDRESS`: one test message through the notification worker (email to an
    address, SMS to an E.164 number), sent at once as a critical system message; prints the reply.
    `--wait` follows it until it was sent or given up."""
    import time
    import uuid

    from contracts import notification as c
    from ops.ask import ask_once

    url = load().process_amqp_url("ops")
    channel = c.NotificationChannel.sms if args.to.startswith("+") else c.NotificationChannel.email
    command = c.SendMessage(send_id=uuid.uuid4(), channels=[channel], to=args.to, template="test_message",
                            data={"note": args.note or ""}, category=c.NotificationCategory.system,
                            priority=c.NotificationPriority.critical)  # fmt: skip
    reply = _run(ask_once(command, url, timeout_s=args.timeout))
    print(json.dumps(reply.model_dump(mode="json"), indent=2))
    if not reply.ok or not args.wait:
        return 0 if reply.ok else 1
    notification_id = reply.result["notification_ids"][0]  # type: ignore[index,call-overload]
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        found = _run(ask_once(c.GetNotification(notification_id=notification_id), url, timeout_s=args.timeout))
        status = (found.result or {}).get("status") if found.ok else None  # type: ignore[union-attr]
        if status not in ("pending", "sending", "retry"):
            print(json.dumps(found.model_dump(mode="json"), indent=2))
            return 0 if status in ("sent", "delivered") else 1
        time.sleep(0.5)
    return 1


def cmd_partner(args: argparse.Namespace) -> int:
    """`cbs partner ...`: partner systems' broker users (ops/partners.py). Prints JSON lines."""
    from ops import partners

    settings = load()
    amqp_url = settings.amqp_url
    vhost = getattr(args, "vhost", None) or partners.vhost_of(amqp_url)
    try:
        if args.action == "list":
            for partner in partners.list_partners(vhost):
                print(json.dumps(partner.as_dict()))
            return 0
        if args.action == "clearing-sim":
            return cmd_clearing_sim(args, amqp_url)
        vhost_url = partners.url_for_vhost(amqp_url, vhost)
        if args.action == "add":
            print(json.dumps(partners.add(vhost_url, vhost, args.name, args.may_send, args.events or ())))
        elif args.action == "rotate-secret":
            print(json.dumps(partners.rotate(args.name, close_connections=args.close_connections)))
        elif args.action == "sync-grants":
            for line in partners.sync_grants(vhost_url, vhost):
                print(json.dumps(line))
        else:
            print(json.dumps(partners.remove(vhost_url, args.name, keep_queues=args.keep_queues)))
        return 0
    except partners.PartnerError as exc:
        print(f"cbs partner {args.action}: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:  # its command line and output never hold a secret
        failed = " ".join(exc.cmd[2:])
        print(f"cbs partner {args.action}: rabbitmqctl {failed} failed: {(exc.stderr or '').strip()}", file=sys.stderr)
        return 1


CLEARING_SIM_HELP = """Run a simulated clearing house as partner NAME: settle (or reject) every
payment.submitted on partner.NAME.events; `credit` sends one incoming credit instead.
Credentials: CBS_PARTNER_URL (the partner's full amqp:// URL), or the password `cbs partner add`
printed, from --secret-file FILE or CBS_PARTNER_SECRET, with host and vhost taken from
CBS_AMQP_URL. Never on the command line (ps shows it). Set it up once with
  cbs partner add clearing --events payment.submitted --may-send payment.settle_payment
      payment.reject_external_payment payment.incoming_credit"""


def _partner_amqp_url(args: argparse.Namespace, amqp_url: str, name: str) -> str:
    from ops import partners

    if os.environ.get("CBS_PARTNER_URL"):
        return os.environ["CBS_PARTNER_URL"]
    secret_file = getattr(args, "secret_file", None)
    if secret_file:
        with open(secret_file, encoding="utf-8") as f:
            password = f.read().strip()
    else:
        password = os.environ.get("CBS_PARTNER_SECRET", "")
    if not password:
        raise partners.PartnerError("set CBS_PARTNER_URL, CBS_PARTNER_SECRET or --secret-file (see --help)")
    return partners.partner_url(amqp_url, name, password)


def cmd_clearing_sim(args: argparse.Namespace, amqp_url: str) -> int:
    import signal

    from ops import partners
    from ops.sim import clearing as clearing_sim

    import aiormq

    name = partners.check_name(getattr(args, "name", None) or "clearing")
    url = _partner_amqp_url(args, amqp_url, name)
    if getattr(args, "sim_action", None) == "credit":
        try:
            reply = _run(clearing_sim.send_incoming_credit(
                url, name, partner_reference=args.reference, rail=args.rail, payee_account_number=args.account_number,
                payer_name=args.payer_name, amount=args.amount, currency=args.currency, timeout_s=args.timeout,
            ))  # fmt: skip
        except (TimeoutError, aiormq.exceptions.AMQPError) as exc:
            print(f"cbs partner clearing-sim credit: {exc!r}", file=sys.stderr)
            return 1
        print(json.dumps(reply))
        return 0 if reply.get("ok") else 1  # type: ignore[union-attr]
    if not 0.0 <= args.reject_rate <= 1.0:
        raise partners.PartnerError("--reject-rate must be within 0 and 1")

    async def simulate() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await clearing_sim.run(url, name, settle_delay_s=args.delay_s, reject_rate=args.reject_rate, seed=args.seed,
                               stop_event=stop)  # fmt: skip

    try:
        _run(simulate())
    except aiormq.exceptions.AMQPError as exc:  # refused login or permission, a missing queue
        print(f"cbs partner clearing-sim: {exc!r}", file=sys.stderr)
        return 1
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """`cbs audit verify-archive FILE…`: check audit's retention archive offline (ops/audit_archive.py).
    `cbs audit verify [--from-seq N]`: the audit worker recomputes its hash chain (outcomes
    included), through the bus; non-zero exit on a break (which also raises `audit.chain_broken`).
    `cbs audit report --kind K [--date D | --since T --until T] [--actor A] [--format json|csv]`:
    one of audit's reports, every page, on stdout."""
    if args.action == "verify-archive":
        from ops import audit_archive

        return audit_archive.verify_files(args.files, sys.stdout)
    if args.action == "verify":
        return _audit_verify(args)
    return _audit_report(args)


def _audit_verify(args: argparse.Namespace) -> int:
    from contracts import audit as c
    from ops.ask import ask_once

    url = load().process_amqp_url("ops")
    seq, checked, answer = args.from_seq, 0, None
    while True:  # a walk stops after max_records: the next one takes up from where it stopped
        answer = _run(ask_once(c.VerifyChain(from_seq=seq), url, timeout_s=args.timeout))
        if not answer.ok:  # type: ignore[union-attr]
            print(json.dumps(answer.model_dump(mode="json"), indent=2))  # type: ignore[union-attr]
            return 1
        result = c.ChainVerification.model_validate(answer.result)  # type: ignore[union-attr]
        checked += result.records_checked
        if not result.ok or result.complete or result.last_seq_checked is None:
            break
        seq = result.last_seq_checked + 1
    print(json.dumps({**result.model_dump(mode="json"), "records_checked": checked, "from_seq": args.from_seq}, indent=2))
    return 0 if result.ok else 1


def _audit_report(args: argparse.Namespace) -> int:
    import csv
    import datetime as dt

    from contracts import audit as c
    from ops.ask import ask_once

    url = load().process_amqp_url("ops")
    when = {"business_date": dt.date.fromisoformat(args.date) if args.date else None,
            "since": dt.datetime.fromisoformat(args.since) if args.since else None,
            "until": dt.datetime.fromisoformat(args.until) if args.until else None}  # fmt: skip
    rows: list[dict] = []
    cursor, report = None, None
    while True:
        try:
            command = c.GetReport(kind=args.kind, actor=args.actor, cursor=cursor, limit=5_000, **when)
        except ValueError as exc:
            print(f"cbs audit report: {exc}", file=sys.stderr)
            return 2
        answer = _run(ask_once(command, url, timeout_s=args.timeout))
        if not answer.ok:  # type: ignore[union-attr]
            print(json.dumps(answer.model_dump(mode="json"), indent=2), file=sys.stderr)  # type: ignore[union-attr]
            return 1
        report = c.Report.model_validate(answer.result)  # type: ignore[union-attr]
        rows += report.rows
        if not (cursor := report.next_cursor):
            break
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(report.columns)
        for row in rows:
            writer.writerow([" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                             for v in (row.get(k) for k in report.columns)])  # fmt: skip
    else:
        print(json.dumps({"kind": report.kind, "parameters": report.parameters, "rows": rows}, indent=2))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """`cbs backup DIR`: every worker's schema, pg_dump'd from its own server, with a manifest (ops/backup.py)."""
    from pathlib import Path

    from ops import backup

    try:
        manifest = _run(backup.backup(load(), Path(args.folder), tuple(args.worker or WORKERS)))
    except backup.BackupError as exc:
        print(f"cbs backup: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"backup": args.folder, "created_at": manifest.created_at, "pg_dump": manifest.pg_dump,  # type: ignore[union-attr]
                      "schemas": [{k: getattr(e, k) for k in ("worker", "server", "latest_migration", "bytes", "sha256")}
                                  for e in manifest.entries]}))  # type: ignore[union-attr]  # fmt: skip
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """`cbs restore DIR`: the backup's schemas into databases that lack them, each checked (ops/backup.py)."""
    from pathlib import Path

    from ops import backup

    try:
        restored = _run(backup.restore(load(), Path(args.folder), tuple(args.worker) if args.worker else None))
    except backup.BackupError as exc:
        print(f"cbs restore: {exc}", file=sys.stderr)
        return 1
    for r in restored:  # type: ignore[union-attr]
        print(json.dumps({"worker": r.worker, "server": r.server, "ok": r.ok, "latest_migration": r.latest_migration,
                          "tables": r.tables, "rows": r.rows, "checks": r.checks, "applied_after": r.applied_after}))  # fmt: skip
    return 0 if all(r.ok for r in restored) else 1  # type: ignore[union-attr]


def cmd_docs(args: argparse.Namespace) -> int:
    """`cbs docs asyncapi`: write the bus's AsyncAPI document (commit it: a test compares)."""
    from bus.asyncapi import asyncapi_yaml

    text = asyncapi_yaml()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(json.dumps({"written": args.output, "bytes": len(text.encode())}))
    return 0


def _partner_parser(sub: Any) -> None:
    pa = sub.add_parser("partner", help="partner systems' broker users and their permissions")
    actions = pa.add_subparsers(dest="action", required=True)
    vhost_help = "vhost (default: the path of CBS_AMQP_URL)"
    add = actions.add_parser("add", help="create the partner's user and queues; prints its password once")
    add.add_argument("name", help="partner name; its broker user is partner.NAME")
    add.add_argument("--may-send", nargs="+", required=True, metavar="ROUTING_KEY", help="command keys it may publish")
    add.add_argument("--events", nargs="+", metavar="EVENT_KEY",
                     help="event keys bound to partner.NAME.events on cbs.events, e.g. payment.submitted")
    add.add_argument("--vhost", help=vhost_help)
    ls = actions.add_parser("list", help="every partner and the routing keys it may send")
    ls.add_argument("--vhost", help=vhost_help)
    rm = actions.add_parser("remove", help="delete the partner's user (and its queues)")
    rm.add_argument("name")
    rm.add_argument("--vhost", help=vhost_help)
    rm.add_argument("--keep-queues", action="store_true", help="keep partner.NAME.replies/.events")
    rot = actions.add_parser("rotate-secret", help="a new password; the old one stops working for new connections")
    rot.add_argument("name")
    rot.add_argument("--close-connections", action="store_true", help="also drop its open connections (after a leak)")
    sync = actions.add_parser("sync-grants", help="publish every partner's grant to the workers (partner.access_changed)")
    sync.add_argument("--vhost", help=vhost_help)
    _clearing_sim_parser(actions)
    pa.set_defaults(func=cmd_partner)


def _clearing_sim_parser(actions: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        # SUPPRESS: accepted before or after `credit` without one overwriting the other.
        p.add_argument("--name", default=argparse.SUPPRESS, help="partner name (default: clearing)")
        p.add_argument("--secret-file", default=argparse.SUPPRESS, help="file holding the partner's password")

    sim = actions.add_parser("clearing-sim", help="run a simulated clearing house as a partner",
                             description=CLEARING_SIM_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(sim)
    sim.add_argument("--delay-s", type=float, default=2.0, help="seconds before settling each payment")
    sim.add_argument("--reject-rate", type=float, default=0.1, help="share of payments rejected, 0 to 1")
    sim.add_argument("--seed", type=int, default=1, help="seed and payment id fix which are rejected")
    credit = sim.add_subparsers(dest="sim_action").add_parser("credit", help="send one incoming credit")
    common(credit)
    credit.add_argument("--reference", required=True, help="the partner's reference; the same one credits once")
    credit.add_argument("--rail", default="neft", choices=("neft", "rtgs", "imps", "upi"))
    credit.add_argument("--account-number", required=True, help="the CBS account number credited")
    credit.add_argument("--amount", type=int, required=True, help="minor units")
    credit.add_argument("--payer-name", required=True)
    credit.add_argument("--currency", default="INR")
    credit.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cbs", description="CBS core banking cluster")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database, roles, schemas and topology").set_defaults(func=cmd_migrate)
    up = sub.add_parser("up", help="run the edge and every worker, supervised")
    up.add_argument("--replicas", metavar="WORKER=N[,…]",
                    help=f"more processes of some workers, e.g. ledger=2,audit=2 (1 to {MAX_REPLICAS}; others run one)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("edge", help="run the HTTP edge").set_defaults(func=cmd_edge)
    w = sub.add_parser("worker", help="run one worker (N replicas compete on its queues)")
    w.add_argument("name", choices=WORKERS)
    w.add_argument("--replicas", type=int, default=1)
    w.set_defaults(func=cmd_worker)
    d = sub.add_parser("dlq", help="dead letters: list, show, replay, purge (each replay and purge is audited)")
    d.add_argument("action", choices=("list", "show", "replay", "purge"))
    d.add_argument("message_id", nargs="?", help="show: the dead letter's message_id")
    d.add_argument("--id", action="append", help="a message_id (repeatable)")
    d.add_argument("--type", help="message type pattern, e.g. 'account.*' or account.get_account.v1")
    d.add_argument("--queue", help="pattern of the queue it died in, e.g. 'ledger.*'")
    d.add_argument("--reason", help="why it died: rejected, delivery_limit, expired, maxlen")
    d.add_argument("--all", action="store_true", help="replay/purge: every dead letter")
    d.add_argument("--yes", action="store_true", help="purge without asking (scripts)")
    d.add_argument("--json", action="store_true", help="list: one JSON object a line")
    d.add_argument("--limit", type=int, default=dlq.MAX_LISTED)
    d.set_defaults(func=cmd_dlq)
    st = sub.add_parser("status", help="every worker: replicas, consumers, queues, dead letters, outbox lag, business date")
    st.add_argument("--once", action="store_true", help="print one look and exit (default: refresh until Ctrl-C)")
    st.add_argument("--json", action="store_true", help="one look as JSON (implies --once)")
    st.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    st.set_defaults(func=cmd_status)
    b = sub.add_parser("bench", help="measure through the running edge and print a table")
    b.add_argument("--kind", choices=("transfers", "payment", "register", "loan-repayment"), default="transfers",
                   help="ledger transfers, internal payment orders (through the edge), registrations, or close of "
                        "business's loan repayments")  # fmt: skip
    b.add_argument("--via", choices=("bus", "edge"), help="transfers: straight onto the bus (default) or over HTTP")
    b.add_argument("--accounts", type=int, default=1000, help="payment: current accounts opened through the edge")
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--concurrency", type=int, default=32, help="closed loop: senders waiting for their reply; loan-repayment: set-up chains at a time")
    b.add_argument("--batch", type=int, default=1, help="transfers per create_transfers command")
    b.add_argument("--rate", type=float, help="open loop: commands a second (instead of closed loop)")
    b.add_argument("--zipf", type=float, help="skew the account choice (Zipf exponent, e.g. 1.1)")
    b.add_argument("--hot", action="store_true", help="every transfer touches one hot account")
    b.add_argument("--count", type=int, default=1000, help="register: sequential requests")
    b.add_argument("--loans", type=int, default=10_000, help="loan-repayment: loans disbursed, each with an instalment due")
    b.add_argument("--url", help="edge base URL (default from CBS_EDGE_HOST/PORT)")
    b.add_argument("--against-raw", action="store_true",
                   help="payment: first the raw ledger through the edge, same load; then print the ratio")  # fmt: skip
    b.add_argument("--peer-queue", choices=("classic", "quorum"), default="classic",
                   help="--baseline: the peer's queue type (CBS's command queues are quorum queues)")
    b.add_argument("--baseline", action="store_true",
                   help="transfers: first the bare peer (ops/bench/baseline.py), same load, same broker and database; "
                        "then CBS, and the ratio")  # fmt: skip
    b.add_argument("--rounds", type=int, default=1, choices=range(1, 11), metavar="N",
                   help="--baseline: N rounds of the peer then CBS, interleaved so both meet the machine's same "
                        "drift; each round's ratio, then their median and lowest")  # fmt: skip
    b.set_defaults(func=cmd_bench)
    dy = sub.add_parser("day", help="the business date and close of business")
    dy.add_argument("action", choices=("status", "close"))
    dy.add_argument("--date", help="close: the business date to close (default: the open one)")
    dy.add_argument("--wait", action="store_true", help="close: wait until that date is closed")
    dy.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (and --wait)")
    dy.set_defaults(func=cmd_day)

    nt = sub.add_parser("notify", help="notifications: send a test message")
    nt.add_argument("action", choices=("test",))
    nt.add_argument("--to", required=True, help="an email address, or an E.164 number (+…) for SMS")
    nt.add_argument("--note", help="a line added to the test message")
    nt.add_argument("--wait", action="store_true", help="wait until it is sent (or failed) and print it")
    nt.add_argument("--timeout", type=float, default=30.0)
    nt.set_defaults(func=cmd_notify)

    lg = sub.add_parser("ledger", help="ledger operations")
    lg.add_argument("action", choices=("verify", "trial-balance", "journal"))
    lg.add_argument("--date", help="trial-balance, journal: the closed business date (YYYY-MM-DD)")
    lg.add_argument("--timeout", type=float, default=300)
    lg.set_defaults(func=cmd_ledger)
    _partner_parser(sub)
    bk = sub.add_parser("backup", help="pg_dump every worker's schema from its own server into a folder, with a manifest")
    bk.add_argument("folder", help="a new or empty folder")
    bk.add_argument("--worker", action="append", choices=WORKERS, help="only this worker's schema (repeatable)")
    bk.set_defaults(func=cmd_backup)
    rs = sub.add_parser("restore", help="restore a backup into databases without those schemas, then check it")
    rs.add_argument("folder", help="a folder `cbs backup` wrote")
    rs.add_argument("--worker", action="append", choices=WORKERS, help="only this worker's schema (repeatable)")
    rs.set_defaults(func=cmd_restore)
    dc = sub.add_parser("docs", help="generate documents")
    dc.add_argument("kind", choices=("asyncapi",))
    dc.add_argument("-o", "--output", default="docs/asyncapi.yaml", help="file to write, or - for stdout")
    dc.set_defaults(func=cmd_docs)
    au = sub.add_parser("audit", help="audit operations")
    au_actions = au.add_subparsers(dest="action", required=True)
    va = au_actions.add_parser("verify-archive", help="check archived audit records offline; non-zero exit on a mismatch")
    va.add_argument("files", nargs="+", metavar="FILE", help="archive files (audit-<first>-<last>.jsonl)")
    vc = au_actions.add_parser("verify", help="the audit worker recomputes its hash chain; non-zero exit on a break")
    vc.add_argument("--from-seq", type=int, default=1, help="first record to check (past 1 its stored prev_hash is trusted)")
    vc.add_argument("--timeout", type=float, default=300)
    rp = au_actions.add_parser("report", help="one of audit's reports (every page), as JSON or CSV")
    rp.add_argument("--kind", required=True, choices=("large-value", "structuring", "security-summary", "actor-activity"))
    rp.add_argument("--date", help="large-value, structuring: the business date (YYYY-MM-DD)")
    rp.add_argument("--since", help="security-summary, actor-activity: from (ISO 8601 with a zone)")
    rp.add_argument("--until", help="until, exclusive (ISO 8601 with a zone)")
    rp.add_argument("--actor", help="actor-activity: whose")
    rp.add_argument("--format", choices=("json", "csv"), default="json")
    rp.add_argument("--timeout", type=float, default=60)
    au.set_defaults(func=cmd_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per bench request is noise
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
