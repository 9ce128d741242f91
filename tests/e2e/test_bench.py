"""`cbs bench --baseline` against a running cluster: the bare peer (ops/bench/baseline.py) and CBS
under the same load, and the ratio. What is checked is that the yardstick works and keeps its own
books, not a speed (targets are benchmark figures, never timed tests)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import asyncpg
import pytest

from tests.e2e.conftest import ROOT, Cluster


# 50 transfers a command over 20 accounts: concurrent commands overlap on every account (the peer
# once deadlocked there, locking pair by pair).
# Two interleaved rounds at 1 a command: each round's ratio, then their median and lowest.
@pytest.mark.parametrize(("batch", "rounds"), [(1, 2), (50, 1)])
def test_the_baseline_bench_runs_the_peer_then_cbs_and_prints_the_ratio(cluster: Cluster, batch: int, rounds: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench", "--baseline", "--seconds", "2", "--accounts", "20",
         "--concurrency", "4", "--batch", str(batch), "--rounds", str(rounds)],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    peer, cbs = done.stdout.split("\n\n")[:2]

    def row(table: str, key: str) -> str:
        found = re.search(rf"^{re.escape(key)}\s+(.+)$", table, re.M)
        assert found is not None, f"no {key!r} row in:\n{table}"
        return found.group(1)

    assert (row(peer, "via"), row(peer, "peer check"), row(peer, "errors")) == ("peer (classic queue)", "ok", "none")
    assert (row(cbs, "via"), row(cbs, "ledger.verify")) == ("bus", "ok")
    # Where the CPU went, per transfer: the broker, and the peer's process or the ledger worker's.
    for table, server in ((peer, "peer"), (cbs, "ledger")):
        assert float(row(table, "  rabbitmq")) > 0 and float(row(table, f"  {server}")) > 0
    ratios = [float(r) for r in re.findall(r"per peer transfers/s \(bus\), same load: ([0-9.]+)", done.stdout)]
    assert len(ratios) == rounds and all(r > 0 for r in ratios)
    summary = re.search(r"^ratios by round: (.+); median ([0-9.]+), lowest ([0-9.]+)$", done.stdout, re.M)
    if rounds == 1:
        assert summary is None
    else:
        assert summary is not None and float(summary.group(3)) == min(float(r) for r in summary.group(1).split(", "))
    for table in (peer, cbs):
        moved = re.search(r"^transfers\s+(\d+)$", table, re.M)
        assert moved is not None and int(moved.group(1)) > 0
    # The peer leaves nothing behind: its schema is dropped (and its queue deleted) after the run.
    assert not asyncio.run(_schema_exists(cluster.env["CBS_DATABASE_URL"], "bench_peer"))


async def _schema_exists(database_url: str, schema: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema))
    finally:
        await conn.close()



def test_the_loan_repayment_bench_collects_every_instalment_it_set_up_and_the_ledger_verifies(cluster: Cluster) -> None:
    """A small `cbs bench --kind loan-repayment`: its loans disbursed, the days before their first
    instalment closed, then the close that collects them measured."""
    loans = 20
    done = subprocess.run([sys.executable, "-m", "ops.cli", "bench", "--kind", "loan-repayment", "--loans", str(loans)],
                          env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    collected = re.search(r"^instalments collected\s+(\d+) \(paid (\d+), partly paid (\d+)\)$", done.stdout, re.M)
    assert collected is not None, done.stdout
    assert int(collected.group(2)) >= loans  # the step's report: other tests' loans due that day count too
    assert re.search(rf"^bench loans paid\s+{loans} of {loans} ", done.stdout, re.M), done.stdout
    assert re.search(r"^ledger.verify\s+ok$", done.stdout, re.M), done.stdout
    seconds = re.search(r"^step seconds\s+([0-9.]+) ", done.stdout, re.M)
    assert seconds is not None and float(seconds.group(1)) > 0


def test_the_payment_bench_waits_for_a_quiet_cluster_and_splits_the_cpu_per_payment(cluster: Cluster) -> None:
    """`cbs bench --kind payment --against-raw`, small: raw transfers through the edge, then payment
    orders on accounts it opened, once the set-up's work has drained; each table says where the
    CPU went, and the ratio is printed."""
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench", "--kind", "payment", "--against-raw", "--seconds", "2",
         "--accounts", "10", "--concurrency", "4"],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    raw, payments = done.stdout.split("\n\n")[:2]
    setup = re.search(r"^set-up\s+(.+)$", payments, re.M)
    assert setup is not None and re.search(r"the cluster quiet [0-9.]+ s later", setup.group(1)), payments
    completed = re.search(r"^payments completed\s+(\d+)$", payments, re.M)
    assert completed is not None and int(completed.group(1)) > 0, payments
    assert re.search(r"^cpu ms/transfer\s+[0-9.]+ in all$", raw, re.M), raw
    assert re.search(r"^cpu ms/payment\s+[0-9.]+ in all$", payments, re.M), payments
    for worker in ("payment", "ledger", "edge"):
        spent = re.search(rf"^  {worker}\s+([0-9.]+)$", payments, re.M)
        assert spent is not None and float(spent.group(1)) > 0, f"no CPU of {worker} in:\n{payments}"
    ratio = re.search(r"payments completed/s per raw transfer/s \(both via the edge\): ([0-9.]+)", done.stdout)
    assert ratio is not None and float(ratio.group(1)) > 0
