"""Liveness, readiness (broker reachable, every command queue consumed, revoked access learned
from identity) and metrics."""

from __future__ import annotations

import time

import aio_pika
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bus import topology
from bus.settings import WORKERS

router = APIRouter(tags=["health"])
READY_CACHE_S = 2.0  # readiness probes may come often; the broker is asked at most this often


class Readiness:
    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._checked_at = 0.0
        self._last: dict[str, object] = {}

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def check(self) -> dict[str, object]:
        if time.monotonic() - self._checked_at < READY_CACHE_S and self._last:
            return self._last
        self._last = await self._check()
        self._checked_at = time.monotonic()
        return self._last

    async def _check(self) -> dict[str, object]:
        try:
            if self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect_robust(self.amqp_url, timeout=3)
            channel = await self._connection.channel()
            try:
                missing = []
                for worker in WORKERS:
                    for key in topology.command_keys(worker):
                        queue = await channel.declare_queue(key, passive=True)
                        if not queue.declaration_result.consumer_count:
                            missing.append(key)
            finally:
                await channel.close()
        except Exception as exc:  # any failure to ask is "not ready", with the reason
            return {"ready": False, "broker": f"unreachable: {exc!r}"}
        return {"ready": not missing, "broker": "ok", "queues_without_consumers": missing}


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/health/ready", responses={503: {"description": "Not ready: the same report, saying what is missing",
                                              "content": {"application/json": {}}}})  # fmt: skip
async def ready(request: Request) -> JSONResponse:
    report = await request.app.state.readiness.check()
    broker_ok = await request.app.state.broker.ping(timeout=2)
    watch = getattr(request.app.state, "revocations", None)
    revocations_ok = watch is None or watch.synced  # until then tokens are answered 503
    report = {**report, "edge_broker": "ok" if broker_ok else "down",
              "revocations": "learned" if revocations_ok else "not yet read from identity"}  # fmt: skip
    ok = bool(report["ready"]) and broker_ok and revocations_ok
    return JSONResponse({"status": "ready" if ok else "not_ready", **report}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse)  # documented as what it is: Prometheus text
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
