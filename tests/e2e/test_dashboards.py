"""Every metric the Grafana dashboards query is exported by a running CBS process.

The cluster's edge and workers run as real processes, each worker serving its metrics on its own
port (CBS_METRICS_PORT, as in compose and Kubernetes). After a little traffic (a customer and an
account, a deposit through the ledger, a retried POST, a message the customer worker dead-letters)
every process is scraped, and each metric name in each panel's PromQL must be among the samples.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest

from bus.settings import WORKERS, broker_user, load
from contracts import customer as cu
from tests.e2e.conftest import ROOT, Cluster
from tests.e2e.test_flows import (
    open_account_when_eligible,
    post,
    register_body,
    verified_customer,
)
from tests.promql import dashboard_exprs, metric_names

pytestmark = pytest.mark.e2e

DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
# A label value may hold braces (a route template): only quoted text may.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)', re.MULTILINE)


def samples(text: str) -> dict[str, list[tuple[str, float]]]:
    """Metric name -> (labels, value) of each sample in a Prometheus text exposition."""
    found: dict[str, list[tuple[str, float]]] = {}
    for name, labels, value in _SAMPLE.findall(text):
        found.setdefault(name, []).append((labels, float(value)))
    return found


# RabbitMQ's own exporter (the rabbitmq_prometheus plugin scripts/prepare.sh enables), per object, as
# deploy/prometheus/prometheus.yml scrapes it: the dashboards' queue panels read it.
RABBITMQ_METRICS = f"http://{urlsplit(os.environ['CBS_AMQP_URL']).hostname}:15692/metrics/per-object"


def scrape(cluster: Cluster) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """Process -> its samples: the edge's /metrics, each worker's metrics port, and the broker's."""
    scraped = {"edge": samples(httpx.get(f"{cluster.base_url}/metrics", timeout=5).text)}
    for worker in WORKERS:
        port = cluster.metrics_ports[worker]
        scraped[worker] = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    scraped["rabbitmq"] = samples(httpx.get(RABBITMQ_METRICS, timeout=10).text)
    return scraped


def total(scraped: dict[str, dict[str, list[tuple[str, float]]]], name: str, *labels: str) -> float:
    """The sum of `name`'s samples, in every process, whose labels include each of `labels`."""
    return sum(v for process in scraped.values() for have, v in process.get(name, []) if all(f in have for f in labels))


async def dead_letter_one() -> None:
    """A RegisterCustomer typed `.v99`, sent as the operator's tools: refused invalid_message and
    dead-lettered by the customer worker."""
    register = cu.RegisterCustomer.model_validate(register_body(uuid.uuid4().hex[:8]))
    connection = await aio_pika.connect_robust(load().process_amqp_url("ops"))
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("cbs.commands", ensure=False)
        await exchange.publish(
            aio_pika.Message(register.model_dump_json().encode(), message_id=uuid.uuid4().hex,
                             type="customer.register_customer.v99", user_id=broker_user("ops"),
                             content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=register.routing_key,
        )  # fmt: skip


def some_traffic(cluster: Cluster) -> None:
    import hashlib

    vault = str(uuid.UUID(hashlib.md5(b"cbs.ledger.cash_vault.INR").hexdigest()))
    with cluster.client(timeout=10) as client:
        account = open_account_when_eligible(client, verified_customer(client))
        deposit = {"id": str(uuid.uuid4()), "debit_account_id": vault, "credit_account_id": account["account_id"],
                   "amount": 10_000, "currency": "INR", "code": "deposit"}  # fmt: skip
        key = uuid.uuid4().hex
        for _ in range(2):  # the second is answered from the ledger's inbox
            posted = post(client, "/v1/ledger/transfers", {"transfers": [deposit]}, key)
            assert posted.status_code == 200, posted.text
        assert client.get(f"/v1/accounts/{uuid.uuid4()}").status_code == 404  # an error by route
        assert client.get("/v1/no-such-route").status_code == 404
    asyncio.run(dead_letter_one())


def test_every_dashboard_metric_is_exported_by_a_running_process(cluster: Cluster) -> None:
    assert DASHBOARDS, "no dashboards in deploy/grafana/dashboards"
    some_traffic(cluster)
    wanted = {
        name: (path.name, title)
        for path in DASHBOARDS
        for title, expr in dashboard_exprs(json.loads(path.read_text()))
        for name in metric_names(expr)
    }
    assert wanted
    deadline = time.monotonic() + 30  # counters land as the workers answer; the dead letter a moment later
    while True:
        scraped = scrape(cluster)
        exported = {name for process in scraped.values() for name in process}
        missing = {name: where for name, where in wanted.items() if name not in exported}
        traffic_seen = (
            total(scraped, "cbs_dead_lettered_total", 'worker="customer"') >= 1
            and total(scraped, "cbs_inbox_duplicates_total", 'consumer="ledger.create_transfers"') >= 1
            and total(scraped, "cbs_group_commit_messages_total", 'outcome="committed"') >= 2
        )
        if (not missing and traffic_seen) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"dashboard metrics no running process exports: {missing}"
    assert traffic_seen, "the traffic sent is not in the metrics"
    # The edge's per-route metrics are by template: a read of any account is one series.
    assert total(scraped, "cbs_http_requests_total", 'route="/v1/accounts/{account_id}"', 'status="404"') >= 1
    assert total(scraped, "cbs_http_requests_total", 'route="unmatched"') >= 1
    # The business day as the day worker exports it: the date the edge answers, no close running.
    with cluster.client(timeout=10) as client:
        business_date = date.fromisoformat(client.get("/v1/business-day").json()["business_date"])
    midnight = datetime.combine(business_date, datetime.min.time(), tzinfo=UTC).timestamp()
    assert total(scraped, "cbs_business_date_seconds") == midnight
    assert total(scraped, "cbs_business_day_closing") == 0 and total(scraped, "cbs_cob_steps") == 0
    # The broker's per-queue series name the queues CBS declared.
    assert total(scraped, "rabbitmq_queue_consumers", 'queue="ledger.create_transfers"') >= 1
    # Every worker exports its pool and its outbox lag (a gauge: present from the start).
    for worker in WORKERS:
        assert "cbs_db_pool_connections" in scraped[worker], worker
        assert "cbs_outbox_lag_seconds" in scraped[worker], worker
