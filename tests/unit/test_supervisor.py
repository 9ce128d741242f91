"""The supervisor restarts a process that dies and stops the rest on request (real processes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bus import supervisor
from bus.supervisor import ProcessSpec, Supervisor


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
