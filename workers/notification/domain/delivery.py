"""How sending goes on after an attempt (banking-rules §6), decided without I/O.

- Retries: 3 attempts at most, `retry_delay` apart, or later when the provider said `retry_after`;
  webhooks back off exponentially (delay × 2^(attempt − 1)).
- An endpoint that failed `disable_after` times in a row is disabled until an operator enables it.
- Provider rate limits: 60 a minute, 1,000 an hour, 10,000 a day; past one, sending waits.
- Webhook signatures: HMAC-SHA256 over `<unix seconds>.<body>`, sent as `t=…,v1=…`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.notification import NotificationChannel, NotificationStatus, SIGNATURE_TOLERANCE_S

MAX_ATTEMPTS = 3
RATE_LIMITS: tuple[tuple[dt.timedelta, int], ...] = (
    (dt.timedelta(minutes=1), 60), (dt.timedelta(hours=1), 1_000), (dt.timedelta(days=1), 10_000),
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What a channel answered for one attempt."""

    ok: bool
    delivered: bool = False  # known delivered (not only handed over)
    provider_message_id: str | None = None
    response: str | None = None
    error_code: str | None = None
    retry_after_s: float | None = None
    permanent: bool = False  # retrying cannot help (an address refused, a 4xx)


@dataclass(frozen=True)
class Next:
    status: NotificationStatus
    scheduled_at: dt.datetime | None  # when to try again (status retry)


def retry_delay(channel: NotificationChannel, attempt: int, base: dt.timedelta) -> dt.timedelta:
    """The wait after failed attempt `attempt` (1-based)."""
    if channel is NotificationChannel.webhook:
        return base * (2 ** (attempt - 1))
    return base


def after_attempt(channel: NotificationChannel, attempt: int, outcome: Outcome, *, now: dt.datetime, base_delay: dt.timedelta,
                  expires_at: dt.datetime) -> Next:  # fmt: skip
    if outcome.ok:
        return Next(NotificationStatus.delivered if outcome.delivered else NotificationStatus.sent, None)
    if outcome.permanent or attempt >= MAX_ATTEMPTS:
        return Next(NotificationStatus.failed, None)
    wait = retry_delay(channel, attempt, base_delay)
    if outcome.retry_after_s is not None:
        wait = max(wait, dt.timedelta(seconds=outcome.retry_after_s))
    at = now + wait
    if at >= expires_at:
        return Next(NotificationStatus.cancelled, None)
    return Next(NotificationStatus.retry, at)


def endpoint_disabled(consecutive_failures: int, disable_after: int) -> bool:
    return consecutive_failures >= disable_after


def rate_limited_until(sent_in: Mapping[dt.timedelta, int], oldest_in: Mapping[dt.timedelta, dt.datetime],
                       limits: tuple[tuple[dt.timedelta, int], ...] = RATE_LIMITS) -> dt.datetime | None:  # fmt: skip
    """When a provider may take the next message: None if now; else when the oldest attempt of a
    full window leaves it. `sent_in[w]` counts attempts within window `w`, `oldest_in[w]` is the
    first of them."""
    until: dt.datetime | None = None
    for window, limit in limits:
        if sent_in.get(window, 0) >= limit and window in oldest_in:
            free = oldest_in[window] + window
            until = free if until is None else max(until, free)
    return until


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `CBS-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now_s: int, tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """What a receiver does: parse `t` and every `v1`, refuse outside the replay window, compare in
    constant time."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    macs = [v for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not macs or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, mac.strip()) for mac in macs)
