"""The supervisor restarts a process that dies and stops the rest on request (real processes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ops import supervisor
from ops.supervisor import ProcessSpec, Supervisor


async def test_a_dead_process_is_restarted_and_all_stop_on_signal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_START_S", 0.1)
    starts = tmp_path / "starts"
    crashing = ProcessSpec("crasher", (sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x')"))
    steady = ProcessSpec("steady", (sys.executable, "-c", "import time; time.sleep(60)"))
    sup = Supervisor([crashing, steady], stop_timeout_s=5)
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
    from ops.cli import up_specs
    from bus.settings import WORKERS

    specs = {s.name: dict(s.env) for s in up_specs(9101)}
    ports = [specs[f"{w}-worker"]["CBS_METRICS_PORT"] for w in WORKERS]
    assert ports == [str(9101 + i) for i in range(len(WORKERS))]
    assert "CBS_METRICS_PORT" not in specs["edge"]  # the edge serves /metrics on its own port
