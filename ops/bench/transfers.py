"""`cbs bench --kind transfers`: the ledger's throughput and latency, through the bus or the edge.

Set-up: N customer-style ledger accounts, each funded from the bank's vault. Load: transfers
between random pairs (uniform, Zipf-skewed, or all touching one hot account), each command
carrying `--batch` transfers, for `--seconds`, closed-loop (`--concurrency` senders, each
waiting for its reply) or open-loop (`--rate` commands a second, latency counted from the
scheduled send time so a stall is not hidden). Then `ledger.verify`. Prints one table.
The load driver, account picker, edge client and table serve `--kind payment` too
(ops/bench/payments.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import aiohttp

from bus import topology
from bus.correlator import Correlator
from ops.bench import cpu, quiet
from contracts import ledger as c
from contracts.common import Reply

MAX_SECONDS = 600  # a bench never runs unbounded
OPENING_BALANCE = 10_000_000_00  # minor units per account: room for any run
CURRENCY = "INR"


def vault_id(currency: str) -> uuid.UUID:
    return c.bank_account_id("cash_vault", currency)


@dataclass
class Options:
    via: str = "bus"
    accounts: int = 1000
    seconds: float = 10.0
    concurrency: int = 32
    batch: int = 1
    rate: float | None = None  # commands/s; None = closed loop
    zipf: float | None = None
    hot: bool = False
    edge_url: str = "http://127.0.0.1:8080"


class Outcome(NamedTuple):
    text: str  # the table
    ok: bool  # verified, no errors
    per_second: float  # the table's throughput row


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Sender:
    """Sends a CreateTransfers and returns the per-transfer result codes."""

    def __init__(self, options: Options, amqp_url: str) -> None:
        self.options = options
        self.amqp_url = amqp_url
        self.correlator: Correlator | None = None
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Sender":
        # As the operator's tools' broker user (`amqp_url` is ops's): a command says who sent it.
        self.correlator = Correlator(self.amqp_url, user_id=unquote(urlsplit(self.amqp_url).username or ""),
                                     reply_queue=topology.ops_reply_queue(uuid.uuid4().hex[:12]))  # fmt: skip
        await self.correlator.start()
        if self.options.via == "edge":
            # aiohttp, not httpx: at bench rates the client's own CPU must not be the bottleneck.
            connector = aiohttp.TCPConnector(limit=self.options.concurrency)
            self.http = aiohttp.ClientSession(self.options.edge_url, connector=connector,
                                              timeout=aiohttp.ClientTimeout(total=30))  # fmt: skip
            self.http.headers["Authorization"] = f"Bearer {await self._login()}"
        return self

    async def _login(self) -> str:
        from ops.bench.register import admin_login_form

        assert self.http is not None
        async with self.http.post("/v1/auth/token", data=admin_login_form()) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["access_token"])

    async def __aexit__(self, *exc: Any) -> None:
        if self.http:
            await self.http.close()
        if self.correlator:
            await self.correlator.stop()

    async def bus(self, command: Any, timeout_s: float = 30) -> Reply:
        assert self.correlator is not None
        return await self.correlator.send(command, message_id=uuid.uuid4().hex, timeout_s=timeout_s)

    async def post(self, path: str, body: Any, key: str | None = None) -> tuple[int, Any]:
        """POST a JSON body through the edge with a fresh (or given) Idempotency-Key: (status, JSON or None)."""
        assert self.http is not None
        data = body.model_dump_json() if hasattr(body, "model_dump_json") else json.dumps(body)
        async with self.http.post(path, data=data, headers={
            "Idempotency-Key": key or uuid.uuid4().hex, "Content-Type": "application/json",
        }) as response:  # fmt: skip
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def transfers(self, command: c.CreateTransfers) -> list[str]:
        if self.options.via == "bus":
            reply = await self.bus(command)
            if not reply.ok:
                return [f"refused:{reply.error.code if reply.error else '?'}"]
            return [r["result"] for r in (reply.result or {})["results"]]
        status, answer = await self.post("/v1/ledger/transfers", command)
        if status != 200:
            return [f"http_{status}"]
        return [r["result"] for r in answer["results"]]


class Picker:
    def __init__(self, options: Options, accounts: list[uuid.UUID], rng: random.Random) -> None:
        self.accounts = accounts
        self.rng = rng
        self.options = options
        if options.zipf:
            weights = [1 / (rank**options.zipf) for rank in range(1, len(accounts) + 1)]
            total = sum(weights)
            self.cumulative = [sum(weights[: i + 1]) / total for i in range(len(weights))]

    def pair(self) -> tuple[uuid.UUID, uuid.UUID]:
        if self.options.hot:
            other = self.rng.choice(self.accounts[1:])
            return (self.accounts[0], other) if self.rng.random() < 0.5 else (other, self.accounts[0])
        while True:
            a, b = self._one(), self._one()
            if a != b:
                return a, b

    def _one(self) -> uuid.UUID:
        if not self.options.zipf:
            return self.rng.choice(self.accounts)
        import bisect

        return self.accounts[min(bisect.bisect_left(self.cumulative, self.rng.random()), len(self.accounts) - 1)]


async def set_up(sender: Sender, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    for start in range(0, count, c.MAX_BATCH):
        chunk = ids[start : start + c.MAX_BATCH]
        new = [c.NewAccount(id=i, currency=CURRENCY, code="customer_deposit",
                            flags=c.AccountFlags(debits_must_not_exceed_credits=True, history=True)) for i in chunk]  # fmt: skip
        reply = await sender.bus(c.CreateAccounts(accounts=new))
        assert reply.ok and all(r["result"] == "ok" for r in reply.result["results"]), reply  # type: ignore[index]
        funding = [c.NewTransfer(id=uuid.uuid4(), debit_account_id=vault_id(CURRENCY), credit_account_id=i,
                                 amount=OPENING_BALANCE, currency=CURRENCY, code="deposit") for i in chunk]  # fmt: skip
        reply = await sender.bus(c.CreateTransfers(transfers=funding))
        assert reply.ok and all(r["result"] == "ok" for r in reply.result["results"]), reply  # type: ignore[index]
    return ids


def command(picker: Picker, batch: int, rng: random.Random) -> c.CreateTransfers:
    transfers = []
    for _ in range(batch):
        debit, credit = picker.pair()
        transfers.append(c.NewTransfer(id=uuid.uuid4(), debit_account_id=debit, credit_account_id=credit,
                                       amount=rng.randint(1, 10_000), currency=CURRENCY, code="internal_transfer"))  # fmt: skip
    return c.CreateTransfers(transfers=transfers)


Request = Callable[[], Awaitable[list[str]]]  # builds one request (synchronously) and sends it: result codes


async def _one(request: Awaitable[list[str]], tally: Tally, started: float) -> None:
    try:
        codes = await request
    except Exception as exc:  # a bench reports failures, it does not stop on them
        tally.errors[type(exc).__name__] += 1
        return
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
    tally.results.update(codes)


async def drive(options: Options, request: Request) -> tuple[Tally, float]:
    """Closed loop (`concurrency` senders) or open loop (`rate`/s) of `request` for `seconds`."""
    tally = Tally()
    seconds = min(options.seconds, MAX_SECONDS)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    if options.rate is None:

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await _one(request(), tally, time.perf_counter())

        await asyncio.gather(*(loop() for _ in range(options.concurrency)))
    else:
        interval = 1 / options.rate
        in_flight: set[asyncio.Task[None]] = set()
        n = 0
        while (scheduled := t0 + n * interval) < deadline:
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            task = asyncio.create_task(_one(request(), tally, scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            n += 1
        await asyncio.gather(*in_flight)
    return tally, time.perf_counter() - t0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def load_text(options: Options, per_command: str) -> str:
    mode = f"open loop {options.rate:g}/s" if options.rate else f"closed loop x{options.concurrency}"
    skew = "hot account" if options.hot else (f"zipf {options.zipf:g}" if options.zipf else "uniform")
    return f"{mode}, {per_command}, {skew}, {options.accounts} accounts"


def table(options: Options, tally: Tally, elapsed: float, verify: dict[str, Any], *, per_command: str = "",
          counted: tuple[str, int] | None = None, before: tuple[tuple[str, str], ...] = (),
          checked_by: str = "ledger.verify", after: tuple[tuple[str, str], ...] = ()) -> str:  # fmt: skip
    """One table; `counted` = (what, how many) for the throughput row (default: every transfer result)."""
    what, done = counted or ("transfers", sum(tally.results.values()))
    rows = [
        ("via", options.via),
        ("load", load_text(options, per_command or f"{options.batch} transfer(s)/command")),
        *before,
        ("seconds", f"{elapsed:.1f}"),
        ("commands", str(len(tally.latencies_ms))),
        (what, str(done)),
        (f"{what}/s", f"{done / elapsed:.0f}"),
        ("latency p50 ms", f"{percentile(tally.latencies_ms, 50):.1f}"),
        ("latency p95 ms", f"{percentile(tally.latencies_ms, 95):.1f}"),
        ("latency p99 ms", f"{percentile(tally.latencies_ms, 99):.1f}"),
        ("results", ", ".join(f"{k}: {v}" for k, v in tally.results.most_common()) or "-"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in tally.errors.most_common()) or "none"),
        (checked_by, "ok" if verify.get("ok") else f"FAILED: {verify.get('mismatches')}"),
        ("verified", f"{verify.get('accounts_checked')} accounts, {verify.get('transfers_checked')} transfers"),
        *after,
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


async def verify_ledger(sender: Sender) -> dict[str, Any]:
    verify = await sender.bus(c.Verify(), timeout_s=300)
    return verify.result if verify.ok and isinstance(verify.result, dict) else {"ok": False, "mismatches": verify.error}


async def run(options: Options, amqp_url: str, database_url: str = "") -> Outcome:
    async with Sender(options, amqp_url) as sender:
        accounts = await set_up(sender, options.accounts)
        await quiet.wait_until_quiet(amqp_url)  # the set-up's (and any earlier run's) work is not this load's
        rng = random.Random(7)
        picker = Picker(options, accounts, rng)
        before = cpu.snapshot(database_url)
        tally, elapsed = await drive(options, lambda: sender.transfers(command(picker, options.batch, rng)))
        split = cpu.per_transfer_ms(before, cpu.snapshot(database_url), sum(tally.results.values()))
        result = await verify_ledger(sender)
    done = sum(tally.results.values())
    text = table(options, tally, elapsed, result, after=cpu.rows(split))
    return Outcome(text, bool(result.get("ok")) and not tally.errors, done / elapsed)
