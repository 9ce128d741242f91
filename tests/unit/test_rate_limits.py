"""The token bucket: bursts up to the limit, then refills at limit/60 a second."""

from __future__ import annotations

from api_edge.limits import RateLimiter, limit_for, retry_after_header


def test_a_burst_up_to_the_limit_then_refusal_then_recovery() -> None:
    limiter = RateLimiter()
    assert all(limiter.take_at("alice", "auth", 10, now=0.0) == 0 for _ in range(10))
    wait = limiter.take_at("alice", "auth", 10, now=0.0)
    assert 5.9 < wait <= 6.0 and retry_after_header(wait) == "6"  # one token per 6 s
    assert limiter.take_at("bob", "auth", 10, now=0.0) == 0  # buckets are per principal
    assert limiter.take_at("alice", "transfers", 10, now=0.0) == 0  # and per route class
    assert limiter.take_at("alice", "auth", 10, now=6.0) == 0  # refilled
    assert limiter.take_at("alice", "auth", 10, now=6.0) > 0


def test_limits_by_role_and_class() -> None:
    assert limit_for("transfers", ("customer",)) == 50
    assert limit_for("payments", ("teller",)) == 30
    assert limit_for("transfers", ("admin",)) == 1_000
    assert limit_for("auth", ("system",)) == 10_000


async def test_redis_buckets_are_shared_by_every_edge() -> None:
    """Two limiters (two edge instances) on one real Redis share one bucket."""
    import uuid

    from api_edge.limits import RedisRateLimiter

    url = "redis://127.0.0.1:6379/0"
    first, second = RedisRateLimiter(url, prefix=f"test:{uuid.uuid4().hex}"), None
    second = RedisRateLimiter(url, prefix=first._prefix)
    try:
        waits = [await (first if i % 2 else second).take("carol", "auth", 10) for i in range(11)]
        assert waits[:10] == [0.0] * 10 and 5.0 < waits[10] <= 6.0
    finally:
        await first.close()
        await second.close()
