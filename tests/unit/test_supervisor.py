"""The supervisor restarts a process that dies and stops the rest on request (real processes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import time

import pytest

from ops.cli import UsageError, parse_replicas, up_specs
from ops.supervisor import Backoff, ProcessSpec, Supervisor


async def test_a_dead_process_is_restarted_and_all_stop_on_signal(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    crashing = ProcessSpec("crasher", (sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x')"))
    steady = ProcessSpec("steady", (sys.executable, "-c", "import time; time.sleep(60)"))
    sup = Supervisor([crashing, steady], stop_timeout_s=5, backoff=Backoff(start_s=0.1))
    running = asyncio.create_task(sup.run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if starts.exists() and len(starts.read_text()) >= 3:
            break
    assert len(starts.read_text()) >= 3, "the crashing process was not restarted"
    sup._stopping.set()  # what SIGINT/SIGTERM do
    assert await asyncio.wait_for(running, 10) == 0
    assert all(p.returncode is not None for p in sup._children.values())


async def test_a_process_gets_its_own_environment_on_top_of_the_supervisors(tmp_path: Path) -> None:
    out = tmp_path / "env"
    spec = ProcessSpec("env", (sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write(os.environ['CBS_X'] + os.environ['PATH'][:1])"),
                       env=(("CBS_X", "mine"),))  # fmt: skip
    sup = Supervisor([spec], stop_timeout_s=5)
    running = asyncio.create_task(sup.run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if out.exists() and out.read_text():
            break
    sup._stopping.set()
    await asyncio.wait_for(running, 10)
    assert out.read_text().startswith("mine") and len(out.read_text()) == 5  # and PATH was kept


def test_cbs_up_gives_every_worker_its_own_metrics_port() -> None:
    from bus.settings import WORKERS

    specs = {s.name: dict(s.env) for s in up_specs(9101)}
    ports = [specs[f"{w}-worker"]["CBS_METRICS_PORT"] for w in WORKERS]
    assert ports == [str(9101 + i) for i in range(len(WORKERS))]
    assert "CBS_METRICS_PORT" not in specs["edge"]  # the edge serves /metrics on its own port


def test_the_backoff_doubles_while_a_process_dies_young_and_starts_over_once_it_stayed_up() -> None:
    policy = Backoff(start_s=1, max_s=30, stable_after_s=60)
    waits, wait = [], None
    for _ in range(7):  # killed again and again, each time within seconds of its start
        wait = policy.next_wait(wait, uptime_s=2)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert policy.next_wait(16, uptime_s=59.9) == 30  # not yet stable
    assert policy.next_wait(16, uptime_s=60) == 1  # up a minute: the next crash is a new story
    assert policy.next_wait(30, uptime_s=3600) == 1
    assert policy.next_wait(1, uptime_s=60) == 1


def test_the_stable_uptime_is_configurable(monkeypatch) -> None:
    monkeypatch.setenv("CBS_RESTART_STABLE_S", "5")
    assert Backoff.from_env().next_wait(16, uptime_s=5) == 1
    monkeypatch.delenv("CBS_RESTART_STABLE_S")
    assert Backoff.from_env().stable_after_s == 60


async def test_a_real_process_that_stayed_up_is_restarted_at_once_again(tmp_path: Path) -> None:
    """Three quick crashes push the wait to 0.8 s; the fourth run stays up 1 s (stable: 0.5 s),
    so after it exits the next start comes after 0.1 s, not 1.6 s."""
    starts = tmp_path / "starts"
    script = (f"import sys, time; f = open({str(starts)!r}, 'a'); f.write(f'{{time.time()}}\\n'); f.close(); "
              f"n = len(open({str(starts)!r}).read().split()); time.sleep(1.0 if n == 4 else 0); sys.exit(1)")
    sup = Supervisor([ProcessSpec("flaky", (sys.executable, "-c", script))], stop_timeout_s=5,
                     backoff=Backoff(start_s=0.1, max_s=10, stable_after_s=0.5))  # fmt: skip
    running = asyncio.create_task(sup.run())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not starts.exists() or len(starts.read_text().split()) < 5):
        await asyncio.sleep(0.05)
    sup._stopping.set()
    await asyncio.wait_for(running, 10)
    t = [float(x) for x in starts.read_text().split()][:5]
    assert len(t) == 5, "not restarted five times"
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert gaps[2] >= 0.4, gaps  # the third crash waited 0.4 s (plus a start)
    assert gaps[3] - 1.0 < 0.45, gaps  # after a stable run: 0.1 s, where no reset would wait 0.8 s


def test_cbs_up_replicas_are_parsed_and_each_replica_gets_its_own_process_and_port() -> None:
    from bus.settings import WORKERS

    assert parse_replicas("ledger=2, audit=3") == {"ledger": 2, "audit": 3}
    assert parse_replicas(None) == {} and parse_replicas("") == {}
    specs = up_specs(9101, {"ledger": 2, "audit": 2})
    names = [s.name for s in specs]
    assert names.count("edge") == 1 and "ledger-worker-1" in names and "ledger-worker-2" in names
    assert "ledger-worker" not in names and "audit-worker-2" in names and "customer-worker" in names
    assert len(specs) == 1 + len(WORKERS) + 2
    ports = [dict(s.env)["CBS_METRICS_PORT"] for s in specs if s.env]
    assert len(set(ports)) == len(ports)  # two replicas on one port: the second could not serve metrics
    by_name = {s.name: dict(s.env)["CBS_METRICS_PORT"] for s in specs if s.env}
    assert by_name["ledger-worker-1"] == str(9101 + WORKERS.index("ledger"))  # the first keeps its documented port
    assert [s.argv[-1] for s in specs if s.name.startswith("ledger")] == ["ledger", "ledger"]


@pytest.mark.parametrize("text, says", [
    ("ledgr=2", "unknown worker 'ledgr'"), ("ledger", "is not WORKER=COUNT"), ("ledger=", "is not WORKER=COUNT"),
    ("ledger=two", "whole number"), ("ledger=0", "within 1 and"), ("ledger=99", "within 1 and"),
    ("ledger=2,ledger=3", "named twice"),
])  # fmt: skip
def test_bad_replicas_are_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_replicas(text)


def test_cbs_up_with_bad_replicas_exits_2_with_the_reason(capsys) -> None:
    from ops.cli import main

    assert main(["up", "--replicas", "ledger=x"]) == 2
    assert "whole number" in capsys.readouterr().err
