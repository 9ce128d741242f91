"""End to end: the edge and every worker as real processes (`cbs edge`, `cbs worker NAME`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from bus.settings import WORKERS
from tests.conftest import separate_infra

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".test-logs"
ADMIN_USERNAME = os.environ["CBS_ADMIN_USERNAME"]  # set by tests/conftest.py
ADMIN_PASSWORD = os.environ["CBS_ADMIN_PASSWORD"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, env: dict[str, str], logs: Path = LOGS) -> None:
        self.env = env
        self.logs = logs  # each process writes `<name>.log` here
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.base_url = f"http://127.0.0.1:{env['CBS_EDGE_PORT']}"
        self._admin_token: str | None = None
        # Each worker's Prometheus port (CBS_METRICS_PORT), kept across restarts of that worker.
        self.metrics_ports: dict[str, int] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *, worker: str | None = None, env: dict[str, str] | None = None) -> None:
        """Start the edge or a worker; `worker` and `env` start a named extra replica with its own settings."""
        args = ["edge"] if name == "edge" else ["worker", worker or name]
        log = open(self.logs / f"{name}.log", "ab")
        metrics = {"CBS_METRICS_PORT": str(self.metrics_ports[name])} if name in self.metrics_ports else {}
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", *args], env={**self.env, **metrics, **(env or {})}, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT,
        )

    def stop(self, name: str) -> None:
        """SIGTERM: a clean stop, as an operator's restart would do."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    def kill(self, name: str) -> None:
        """SIGKILL: no chance to finish anything in flight."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def token(self, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> str:
        """An access token from the edge's OAuth2 token route (password grant)."""
        response = httpx.post(f"{self.base_url}/v1/auth/token", timeout=10,
                              data={"grant_type": "password", "username": username, "password": password})  # fmt: skip
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def client(self, timeout: float = 10, token: str | None = None) -> httpx.Client:
        """An HTTP client authenticated as the first admin (or with the token given)."""
        if token is None:
            if self._admin_token is None:
                self._admin_token = self.token()
            token = self._admin_token
        return httpx.Client(base_url=self.base_url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def wait_ready(self, timeout_s: float = 60) -> dict:
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}"
            try:
                response = httpx.get(f"{self.base_url}/health/ready", timeout=3)
                last = response.json()
                if response.status_code == 200:
                    return last  # type: ignore[return-value]
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError(f"cluster not ready in {timeout_s} s: {last}")


# Run last in the package: it leaves 700 loans running (more than a round of the loan worker's
# close, so that a kill can land between two rounds), which every later close of business in the
# package would accrue, collect and age (test_loan_journey closes a hundred days).
LAST = ("test_loan_crash.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`LAST`'s tests moved behind this package's others (the hook sees the whole run's items)."""
    here = Path(__file__).parent
    ours = [n for n, item in enumerate(items) if item.path.parent == here]
    if not ours:
        return
    package = items[ours[0] : ours[-1] + 1]
    late = [item for item in package if item.path.name in LAST]
    items[ours[0] : ours[-1] + 1] = [item for item in package if item.path.name not in LAST] + late


# The package's own vhost, database and broker users, instead of the run's (tests/conftest.py):
# what these tests leave (hundreds of running loans from test_loan_crash, test_loan_journey's, the
# bench's) would otherwise be accrued, collected and aged at every later close of business in the
# run, the integration tests' hundreds of closes among them. Dropped when the package ends.
@pytest.fixture(scope="package")
def infra() -> Iterator[dict[str, str]]:
    with separate_infra("e2e") as made:
        yield made


@pytest.fixture(scope="package")
async def admin_db(infra: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A superuser pool on the package's database, for assertions across schemas."""
    pool = await asyncpg.create_pool(infra["database_url"], min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@contextlib.contextmanager
def every_process(logs: Path, *, metrics_ports: bool = False, ready_timeout_s: float = 60) -> Iterator[Cluster]:
    """The edge and every worker as real processes, on the infrastructure `os.environ` names, each
    logging to `logs` (emptied first: this run's logs only); all stopped at the end."""
    shutil.rmtree(logs, ignore_errors=True)
    # The auth class allows 10 requests a minute per address; these tests log in more often.
    env = {**os.environ, "CBS_EDGE_PORT": str(_free_port()), "CBS_REQUEST_TIMEOUT_S": "5",
           "CBS_RATE_AUTH_PER_MIN": "1000", "CBS_RATE_ADMIN_PER_MIN": "100000",
           # No quiet hours unless a test stores them: an SMS must not wait for 07:00 because CI runs at night.
           "CBS_NOTIFY_QUIET_HOURS": "00:00-00:00"}  # fmt: skip
    c = Cluster(env, logs=logs)
    if metrics_ports:
        c.metrics_ports = {worker: _free_port() for worker in WORKERS}
    for name in ("edge", *WORKERS):
        c.start(name)
    try:
        c.wait_ready(timeout_s=ready_timeout_s)
        yield c
    finally:
        c.stop_all()


# Package scope: the processes are gone before the integration tests start their in-process workers.
@pytest.fixture(scope="package")
def cluster(infra: dict[str, str]) -> Iterator[Cluster]:
    with every_process(LOGS, metrics_ports=True) as c:
        yield c
