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


@dataclass(frozen=True)
class Backoff:
    """When to restart a process that exited (pure: the supervisor measures, this decides).

    The wait doubles from `start_s` up to `max_s` while the process keeps dying young; a process
    that stayed up `stable_after_s` or longer was healthy, so its next restart waits `start_s`
    again (a worker killed once a day never waits 30 s for yesterday's crash loop)."""

    start_s: float = 1.0
    max_s: float = 30.0
    stable_after_s: float = 60.0

    def next_wait(self, previous_wait_s: float | None, uptime_s: float) -> float:
        """The wait before the next start; `previous_wait_s` is the wait before the start that
        just ended (None: it was the first start)."""
        if previous_wait_s is None or uptime_s >= self.stable_after_s:
            return self.start_s
        return min(previous_wait_s * 2, self.max_s)

    @classmethod
    def from_env(cls) -> Backoff:
        """`CBS_RESTART_STABLE_S` (default 60): uptime after which the backoff starts over."""
        return cls(stable_after_s=float(os.environ.get("CBS_RESTART_STABLE_S", "60")))


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # set on top of the supervisor's own environment


def cbs_process(name: str, *args: str, env: dict[str, str] | None = None) -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-m", "ops.cli", *args), tuple((env or {}).items()))


class Supervisor:
    def __init__(self, specs: list[ProcessSpec], *, stop_timeout_s: float, backoff: Backoff | None = None) -> None:
        names = [s.name for s in specs]
        assert len(set(names)) == len(names), f"process names must be unique: {names}"
        self.specs = specs
        self.stop_timeout_s = stop_timeout_s
        self.backoff = backoff or Backoff.from_env()
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
        wait_s: float | None = None
        while not self._stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(*spec.argv, env={**os.environ, **dict(spec.env)})
            self._children[spec.name] = process
            log.info("%s started (pid %d)", spec.name, process.pid)
            code = await process.wait()
            if self._stopping.is_set():
                return
            uptime_s = time.monotonic() - started
            wait_s = self.backoff.next_wait(wait_s, uptime_s)
            log.warning("%s exited with %s after %.1f s; restarting in %.1f s", spec.name, code, uptime_s, wait_s)
            try:
                await asyncio.wait_for(self._stopping.wait(), wait_s)
            except TimeoutError:
                pass

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
