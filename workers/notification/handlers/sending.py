"""The sender loop: two duties every replica runs (banking-rules §6; DESIGN §4).

`claim_due`, in one transaction: cancels what expired unsent, turns attempts whose sender died
mid-send into `interrupted` (their notification is retried as a new attempt, or fails), and claims
due notifications (FOR UPDATE SKIP LOCKED) under the providers' rate limits: each claim writes a
`sending` delivery-log row naming this process, committed before anything leaves.

`send_claimed`, in another: takes this process's committed claims, sends each once, and records
the outcome (attempt row, notification status, `notification.sent|delivered|failed`). An attempt
this process has already tried is never tried again here, even if recording its outcome failed:
it turns `interrupted` after the lease instead. So each attempt leaves at most once, and a
SIGKILL at any instant loses no notification (the worst is one more attempt after the lease).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from bus.handling import Context
from contracts.notification import (
    NotificationChannel, NotificationDelivered, NotificationFailed, NotificationSent, NotificationStatus,
)  # fmt: skip
from workers.notification import store
from workers.notification.domain import delivery
from workers.notification.domain.delivery import Outcome
from workers.notification.handlers import channels
from workers.notification.handlers.config import CONFIG

SENDER = f"notification-{uuid.uuid4().hex[:12]}"  # this process: its claims are its own to send
# Attempts this process has sent, by monotonic time: never sent again by it. Past the lease an
# attempt still `sending` is `interrupted` by claim_due, so older entries can go.
_TRIED: dict[tuple[uuid.UUID, int], float] = {}


def _fact(row: Any, attempt: int, now: dt.datetime) -> dict[str, Any]:
    return {"notification_id": row["notification_id"], "customer_id": row["customer_id"], "channel": row["channel"],
            "category": row["category"], "template": row["template"], "attempt": attempt,
            "correlation_id": row["correlation_id"], "occurred_at": now}  # fmt: skip


async def _give_up(ctx: Context, row: Any, attempt: int, code: str, why: str, status: str = "failed") -> None:
    await store.set_status(ctx.conn, row["notification_id"], status, ctx.now, error_code=code, error=why)
    await ctx.emit(NotificationFailed(**_fact(row, attempt, ctx.now), error_code=code, error=why[:1000]))


async def claim_due(ctx: Context) -> bool:
    now = ctx.now
    for row in await store.expire(ctx.conn, now, CONFIG.batch):
        await ctx.emit(NotificationFailed(**_fact(row, row["attempts"], now), error_code="expired",
                                          error="unsent before it expired (cancelled)"))  # fmt: skip
    for row in await store.interrupted(ctx.conn, now - CONFIG.lease, now, CONFIG.batch):
        if row["attempts"] >= delivery.MAX_ATTEMPTS:
            await _give_up(ctx, row, row["attempts"], "interrupted", "the sender stopped mid-send on the last attempt")
        else:
            await store.set_status(ctx.conn, row["notification_id"], NotificationStatus.retry.value, now,
                                   scheduled_at=now, error_code="interrupted")  # fmt: skip
    rows = await store.due(ctx.conn, now, CONFIG.batch)
    windows = [w for w, _ in delivery.RATE_LIMITS]
    # Each provider's attempts per window, read once a round and counted on as this round claims.
    used: dict[str, tuple[dict[dt.timedelta, int], dict[dt.timedelta, dt.datetime]]] = {}
    for row in rows:
        channel = NotificationChannel(row["channel"])
        provider = channels.provider_of(channel)
        if channel is NotificationChannel.webhook:
            endpoint = await store.endpoint(ctx.conn, row["endpoint_id"])
            if endpoint is None or not endpoint["enabled"]:
                await _give_up(ctx, row, row["attempts"], "endpoint_disabled", "the webhook endpoint is disabled", "cancelled")
                continue
            provider = f"webhook:{row['endpoint_id']}"
        if provider not in used:
            used[provider] = await store.provider_counts(ctx.conn, provider, now, windows)
        counts, oldest = used[provider]
        until = delivery.rate_limited_until(counts, oldest, delivery.RATE_LIMITS)
        if until is not None:
            await store.postpone(ctx.conn, row["notification_id"], until, now)
            continue
        await store.start_attempt(ctx.conn, row["notification_id"], channel.value, provider, SENDER, now)
        for window in windows:
            counts[window] = counts.get(window, 0) + 1
            oldest.setdefault(window, now)
    return len(rows) >= CONFIG.batch


async def _attempt(ctx: Context, row: Any, attempt: int) -> Outcome:
    channel = NotificationChannel(row["channel"])
    if channel is NotificationChannel.email:
        return await channels.send_email(row)
    if channel is NotificationChannel.sms:
        return await channels.sms_provider().send(ctx.conn, row, attempt, ctx.now)
    if channel is NotificationChannel.webhook:
        endpoint = await store.endpoint(ctx.conn, row["endpoint_id"])
        assert endpoint is not None, "a webhook notification names its endpoint"
        return await channels.send_webhook(row, endpoint["url"], endpoint["secret"], attempt)
    return Outcome(ok=True, delivered=True, response="in-app")


def _tried(key: tuple[uuid.UUID, int]) -> None:
    now = time.monotonic()
    _TRIED[key] = now
    horizon = now - 2 * CONFIG.lease.total_seconds()
    for old in [k for k, at in _TRIED.items() if at < horizon]:
        del _TRIED[old]


async def send_claimed(ctx: Context) -> bool:
    rows = await store.claimed_by(ctx.conn, SENDER, list(_TRIED), CONFIG.batch)
    for row in rows:
        attempt = row["attempt"]
        _tried((row["notification_id"], attempt))
        outcome = await _attempt(ctx, row, attempt)
        now = dt.datetime.now(dt.UTC)
        await store.finish_attempt(ctx.conn, row["notification_id"], attempt, outcome.ok, outcome.provider_message_id,
                                   outcome.response, outcome.error_code, outcome.retry_after_s, row["started_at"], now)  # fmt: skip
        await _record(ctx, row, attempt, outcome, now)
    return len(rows) >= CONFIG.batch


async def _record(ctx: Context, row: Any, attempt: int, outcome: Outcome, now: dt.datetime) -> None:
    channel = NotificationChannel(row["channel"])
    if channel is NotificationChannel.webhook:
        endpoint = await store.endpoint_result(ctx.conn, row["endpoint_id"], outcome.ok, CONFIG.webhook_disable_after, now)
        if not endpoint["enabled"] and not outcome.ok:
            await _give_up(ctx, row, attempt, "endpoint_disabled",
                           f"disabled after {endpoint['consecutive_failures']} failures in a row: {outcome.error_code}")  # fmt: skip
            return
    base = CONFIG.webhook_retry_delay if channel is NotificationChannel.webhook else CONFIG.retry_delay
    step = delivery.after_attempt(channel, attempt, outcome, now=now, base_delay=base, expires_at=row["expires_at"])
    fact = _fact(row, attempt, now)
    provider = row["provider"]
    if step.status in (NotificationStatus.sent, NotificationStatus.delivered):
        await store.set_status(ctx.conn, row["notification_id"], step.status.value, now)
        await ctx.emit(NotificationSent(**fact, provider=provider, provider_message_id=outcome.provider_message_id))
        if step.status is NotificationStatus.delivered:
            await ctx.emit(NotificationDelivered(**fact, provider=provider))
    elif step.status is NotificationStatus.retry:
        await store.set_status(ctx.conn, row["notification_id"], step.status.value, now, scheduled_at=step.scheduled_at,
                               error_code=outcome.error_code, error=outcome.response)  # fmt: skip
    else:
        await _give_up(ctx, row, attempt, outcome.error_code or "failed", outcome.response or "failed", step.status.value)
