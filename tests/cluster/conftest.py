"""CBS on a three-node RabbitMQ cluster (issue 14): the nodes, a balancer in front of them, the
package's own vhost, database and broker users on that cluster, and the edge and every worker
as real processes connected through the balancer.

Run by `make test-cluster` (marker `cluster`); `make test` leaves these out (see README, Tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.cluster.rabbit import RabbitCluster
from tests.conftest import RUN_ID, separate_infra
from tests.e2e.conftest import ROOT, Cluster, every_process

LOGS = ROOT / ".test-logs-cluster"


@pytest.fixture(scope="package")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """Three nodes, clustered; stopped and their files deleted at the end, whatever happened."""
    # Named after the run (`cbs-<run>-1@localhost`), on free ports: two runs never share a node.
    cluster = RabbitCluster(size=3, prefix=f"cbs-{RUN_ID}-")
    try:
        cluster.start()
        yield cluster
    finally:
        if os.environ.get("CBS_TEST_KEEP_CLUSTER_LOGS") and cluster.home is not None:
            shutil.copytree(cluster.home, LOGS / "rabbit", ignore=shutil.ignore_patterns("mnesia"), dirs_exist_ok=True)
        cluster.stop()


class Balancer:
    """tests/cluster/proxy.py as a process: where each client connection went, as it reports."""

    def __init__(self, upstreams: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.proxy", "0", *upstreams], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert self.process.stdout is not None
        first = self.process.stdout.readline().split()
        assert first[:1] == ["listening"], f"the balancer did not start: {first}"
        self.address = f"127.0.0.1:{first[1]}"
        self.placed: Counter[str] = Counter()  # upstream -> connections sent there
        self.refused = 0  # connections no node took
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("to "):
                self.placed[line.split()[1]] += 1
            elif line.startswith("no node"):
                self.refused += 1

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="package")
def balancer(rabbit_cluster: RabbitCluster) -> Iterator[Balancer]:
    b = Balancer(rabbit_cluster.urls())
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="package")
def infra(rabbit_cluster: RabbitCluster, balancer: Balancer) -> Iterator[dict[str, str]]:
    """The package's vhost (on the cluster: every process reaches it through the balancer) and
    database, migrated: `cbs migrate` declares the topology with every node a member."""
    with separate_infra("cluster", amqp_address=balancer.address, rabbitmq_node=rabbit_cluster.nodes[0].name) as made:
        yield made


@pytest.fixture(scope="package")
async def admin_db(infra: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(infra["database_url"], min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="package")
def cluster(infra: dict[str, str]) -> Iterator[Cluster]:
    """The edge and every worker, as `make test`'s end-to-end tests start them."""
    with every_process(LOGS, ready_timeout_s=120) as c:
        yield c
