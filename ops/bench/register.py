"""`cbs bench`: figures through the edge, printed as a table (benchmarks, never timed tests).

Today it measures customer registration (`--kind register`), one request at a time: the
latency of one command's full round trip (HTTP → bus → worker → database commit → reply).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx

MAX_REQUESTS = 100_000  # a bench never runs unbounded


@dataclass(frozen=True)
class Figures:
    kind: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def table(self) -> str:
        rows = [
            ("kind", self.kind),
            ("requests", str(self.requests)),
            ("requests/s", f"{self.requests / self.seconds:.1f}"),
            ("p50 ms", f"{self.percentile(50):.2f}"),
            ("p95 ms", f"{self.percentile(95):.2f}"),
            ("p99 ms", f"{self.percentile(99):.2f}"),
            ("max ms", f"{max(self.latencies_ms):.2f}"),
            ("mean ms", f"{statistics.fmean(self.latencies_ms):.2f}"),
            ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def admin_login_form() -> dict[str, str]:
    """Benches act as the first admin (CBS_ADMIN_USERNAME / CBS_ADMIN_PASSWORD, development defaults)."""
    return {"grant_type": "password", "username": os.environ.get("CBS_ADMIN_USERNAME", "admin"),
            "password": os.environ.get("CBS_ADMIN_PASSWORD", "cbs-dev-admin-password")}  # fmt: skip


def registration(run: str, i: int) -> dict[str, object]:
    """A new individual customer's registration body (also the payment bench's customers)."""
    return {
        "customer_id": str(uuid.uuid4()),
        "customer_type": "individual",
        "first_name": "Bench",
        "last_name": f"Customer {i}",
        "date_of_birth": "1990-01-01",
        "email": f"bench-{run}-{i}@example.com",
        "phone": "+919800000000",
        "addresses": [{"street": "1 Bench Street", "city": "Mumbai", "country": "IN"}],
    }


def bench_register(base_url: str, count: int) -> Figures:
    assert 0 < count <= MAX_REQUESTS
    run = uuid.uuid4().hex[:8]
    latencies_ms: list[float] = []
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        login = client.post("/v1/auth/token", data=admin_login_form())
        assert login.status_code == 200, login.text
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        started = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            response = client.post("/v1/customers", json=registration(run, i), headers={"Idempotency-Key": f"{run}-{i}"})
            latencies_ms.append((time.perf_counter() - t0) * 1000)
            statuses[response.status_code] += 1
        seconds = time.perf_counter() - started
    return Figures("register (sequential, through the edge)", count, seconds, latencies_ms, statuses)
