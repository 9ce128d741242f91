"""Rate limits: a token bucket per principal and route class, answered 429 with Retry-After.

Limits a minute (banking-rules §8): route classes default 100, auth 10, transfers 50,
payments 30, accounts 100; admins get 1,000 and system principals 10,000 on every class.
Each can be changed with `CBS_RATE_<CLASS>_PER_MIN` (e.g. CBS_RATE_SYSTEM_PER_MIN for a bench).
Buckets live in this edge instance's memory (N edge replicas allow up to N times the limit),
or, when CBS_REDIS_URL is set, in Redis, shared by every edge instance.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

DEFAULTS_PER_MIN = {
    "default": 100, "auth": 10, "transfers": 50, "payments": 30, "accounts": 100,
    "admin": 1_000, "system": 10_000,
}  # fmt: skip
MAX_BUCKETS = 100_000  # least recently used buckets are dropped past this


def per_minute(name: str) -> float:
    return float(os.environ.get(f"CBS_RATE_{name.upper()}_PER_MIN", DEFAULTS_PER_MIN[name]))


def limit_for(route_class: str, roles: tuple[str, ...]) -> float:
    if "system" in roles or "partner" in roles:
        return per_minute("system")
    if "admin" in roles:
        return per_minute("admin")
    return per_minute(route_class)


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()

    async def take(self, key: str, route_class: str, limit_per_min: float) -> float:
        return self.take_at(key, route_class, limit_per_min, time.monotonic())

    def take_at(self, key: str, route_class: str, limit_per_min: float, now: float | None = None) -> float:
        """0 when allowed; else the seconds until a request would be."""
        now = time.monotonic() if now is None else now
        rate_per_s = limit_per_min / 60
        bucket = self._buckets.pop((key, route_class), None) or Bucket(tokens=limit_per_min, updated=now)
        bucket.tokens = min(limit_per_min, bucket.tokens + (now - bucket.updated) * rate_per_s)
        bucket.updated = now
        self._buckets[(key, route_class)] = bucket
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate_per_s


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))


# One atomic step of a token bucket in Redis, on the Redis server's clock (edges' clocks differ).
_BUCKET_LUA = """
local limit = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or limit
local updated = tonumber(state[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(limit / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same buckets, shared by every edge instance through Redis."""

    def __init__(self, url: str, prefix: str = "cbs:rate") -> None:
        import redis.asyncio as redis  # only needed when configured

        self._redis = redis.from_url(url)
        self._script = self._redis.register_script(_BUCKET_LUA)
        self._prefix = prefix

    async def take(self, key: str, route_class: str, limit_per_min: float) -> float:
        wait = await self._script(keys=[f"{self._prefix}:{route_class}:{key}"], args=[limit_per_min, limit_per_min / 60])
        return float(wait)

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter() -> RateLimiter | RedisRateLimiter:
    url = os.environ.get("CBS_REDIS_URL")
    return RedisRateLimiter(url) if url else RateLimiter()
