"""The edge's per-route HTTP metrics: labelled by the route's template (bounded), every answer
counted, a request without a route under one label."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from api_edge import metrics
from api_edge.app import app as edge_app


def count(route: str, method: str, status: str) -> float:
    return metrics.HTTP_REQUESTS.labels(route, method, status)._value.get()


def small_app() -> FastAPI:
    router = APIRouter()

    @router.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "missing":
            raise HTTPException(404)
        return {"id": thing_id}

    app = FastAPI()
    app.include_router(router)
    app.add_middleware(metrics.HttpMetrics)
    return app


def test_requests_are_counted_by_route_template_and_status() -> None:
    client = TestClient(small_app())
    before_ok, before_404 = count("/v1/things/{thing_id}", "GET", "200"), count("/v1/things/{thing_id}", "GET", "404")
    before_unmatched = count(metrics.UNMATCHED, "GET", "404")
    assert client.get("/v1/things/a").status_code == 200
    assert client.get("/v1/things/b").status_code == 200
    assert client.get("/v1/things/missing").status_code == 404
    assert client.get("/v1/nowhere/at/all").status_code == 404
    assert count("/v1/things/{thing_id}", "GET", "200") == before_ok + 2
    assert count("/v1/things/{thing_id}", "GET", "404") == before_404 + 1
    assert count(metrics.UNMATCHED, "GET", "404") == before_unmatched + 1


def test_durations_are_observed_and_exported() -> None:
    registry = CollectorRegistry()
    for collector in metrics.COLLECTORS:
        registry.register(collector)
    TestClient(small_app()).get("/v1/things/x")
    text = generate_latest(registry).decode()
    assert 'cbs_http_request_duration_seconds_count{method="GET",route="/v1/things/{thing_id}"}' in text
    assert "cbs_http_requests_total{" in text


def test_the_edge_counts_its_own_routes() -> None:
    """The real app, without its lifespan: the liveness route needs nothing of it."""
    before = count("/health/live", "GET", "200")
    assert TestClient(edge_app).get("/health/live").status_code == 200
    assert count("/health/live", "GET", "200") == before + 1
