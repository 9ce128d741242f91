"""The token bucket: bursts up to the limit, then refills at limit/60 a second."""

from __future__ import annotations

from api_edge.limits import RateLimiter, limit_for, retry_after_header


def test_a_burst_up_to_the_limit_then_refusal_then_recovery() -> None:
    limiter = RateLimiter()
    assert all(limiter.take("alice", "auth", 10, now=0.0) == 0 for _ in range(10))
    wait = limiter.take("alice", "auth", 10, now=0.0)
    assert 5.9 < wait <= 6.0 and retry_after_header(wait) == "6"  # one token per 6 s
    assert limiter.take("bob", "auth", 10, now=0.0) == 0  # buckets are per principal
    assert limiter.take("alice", "transfers", 10, now=0.0) == 0  # and per route class
    assert limiter.take("alice", "auth", 10, now=6.0) == 0  # refilled
    assert limiter.take("alice", "auth", 10, now=6.0) > 0


def test_limits_by_role_and_class() -> None:
    assert limit_for("transfers", ("customer",)) == 50
    assert limit_for("payments", ("teller",)) == 30
    assert limit_for("transfers", ("admin",)) == 1_000
    assert limit_for("auth", ("system",)) == 10_000
