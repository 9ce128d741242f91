"""`cbs up`: the edge and every worker as separate processes under one small supervisor.

It restarts a process that dies (with backoff, and says so), forwards SIGINT/SIGTERM to all,
and waits for them to finish their in-flight messages before it exits.
"""

from __future__ import annotations

import asyncio
import os
import logging
import signal
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("cbs.supervisor")

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a process up this long has its backoff reset


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # set on top of the supervisor's own environment


def cbs_process(name: str, *args: str, env: dict[str, str] | None = None) -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-m", "ops.cli", *args), tuple((env or {}).items()))


class Supervisor:
    def __init__(self, specs: list[ProcessSpec], *, stop_timeout_s: float) -> None:
        self.specs = specs
        self.stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._children: dict[str, asyncio.subprocess.Process] = {}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        keepers = [asyncio.create_task(self._keep(spec)) for spec in self.specs]
        await self._stopping.wait()
        log.info("stopping %d processes", len(self._children))
        await self._stop_all()
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        return 0

    async def _keep(self, spec: ProcessSpec) -> None:
        backoff_s = BACKOFF_START_S
        while not self._stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(*spec.argv, env={**os.environ, **dict(spec.env)})
            self._children[spec.name] = process
            log.info("%s started (pid %d)", spec.name, process.pid)
            code = await process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff_s = BACKOFF_START_S
            log.warning("%s exited with %s; restarting in %.0f s", spec.name, code, backoff_s)
            try:
                await asyncio.wait_for(self._stopping.wait(), backoff_s)
            except TimeoutError:
                pass
            backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)

    async def _stop_all(self) -> None:
        alive = [p for p in self._children.values() if p.returncode is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), self.stop_timeout_s)
        except TimeoutError:
            for process in alive:
                if process.returncode is None:
                    log.warning("pid %d did not stop in %.0f s; killing it", process.pid, self.stop_timeout_s)
                    process.kill()
