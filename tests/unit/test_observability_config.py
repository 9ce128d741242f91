"""Prometheus and Grafana as compose.yaml provisions them (deploy/prometheus, deploy/grafana): every
process scraped on the port it serves, Grafana's data source and dashboards where compose mounts
them, every panel a PromQL query. That each metric is really exported is tests/e2e/test_dashboards.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bus.settings import WORKERS
from tests.promql import dashboard_exprs, metric_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(PROMETHEUS.read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the repo) of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            found[target] = source.removeprefix("./")
    return found


def test_compose_runs_prometheus_and_grafana_on_these_files(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert _mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "deploy/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert _mounts(grafana)["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    assert _mounts(grafana)["/var/lib/grafana/dashboards"] == "deploy/grafana/dashboards"
    for service in (prometheus, grafana):
        assert ":" in service["image"] and not service["image"].endswith(":latest"), service["image"]
        for path in _mounts(service).values():
            assert (ROOT / path).exists(), path
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", [])), "local only"


def test_the_edge_is_scraped_where_it_serves_metrics(compose: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
    edge = jobs["edge"]
    (target,) = edge["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "edge" and port == str(compose["services"]["edge"]["environment"]["CBS_EDGE_PORT"])
    assert edge.get("metrics_path", "/metrics") == "/metrics"


@pytest.mark.parametrize("worker", WORKERS)
def test_every_worker_replica_is_scraped_on_its_metrics_port(
    compose: dict[str, Any], jobs: dict[str, dict[str, Any]], worker: str
) -> None:
    job = jobs.get(f"worker-{worker}")
    assert job, f"prometheus.yml does not scrape worker-{worker}"
    (sd,) = job["dns_sd_configs"]  # every replica of a scaled service, not one of them
    assert sd["names"] == [f"worker-{worker}"] and sd["type"] == "A"
    assert str(sd["port"]) == compose["x-cbs-env"]["CBS_METRICS_PORT"]
    assert f"worker-{worker}" in compose["services"]


def test_grafana_reads_the_prometheus_compose_runs(compose: dict[str, Any]) -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == 9090 and source["type"] == "prometheus"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cbs.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == source["uid"], panel["title"]


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('sum by (le, a) (rate(x_bucket{s=~"a|b",t="c"}[5m]))') == {"x_bucket"}
    assert metric_names("histogram_quantile(0.95, sum(rate(y_sum[1m] offset 5m))) / on (job) z") == {"y_sum", "z"}
    assert metric_names('max without (instance) (g) > 1e3 and bool h') == {"g", "h"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_a_scraped_exporter(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    exprs = dict(dashboard_exprs(dashboard))
    assert {p["title"] for p in panels} == set(exprs), "a panel without a query"
    for title, expr in exprs.items():
        names = metric_names(expr)
        # CBS's own, FastStream's, and RabbitMQ's exporter (the job `rabbitmq` of deploy/prometheus).
        assert names and all(n.startswith(("cbs_", "faststream_", "rabbitmq_")) for n in names), (title, names)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
