"""The edge's own refusals (401, 403) as facts on the bus, for audit (banking-rules §8).

The edge has no database and so no outbox: the event is published directly, with a publisher
confirm, before the refusal is answered. A broker that cannot take it within the bound does not
turn the refusal into a 500: it is logged instead (the caller is refused either way).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from bus import tracing
from bus.topology import EVENTS
from contracts.common import Event
from contracts.security import EdgeAccessDenied, EdgeAuthFailed

PUBLISH_TIMEOUT_S = 2.0
log = logging.getLogger("cbs.edge.refusals")


def event_for(request: Request, exc: Any, now: datetime) -> Event | None:
    """The fact to publish for an AuthError, or None (429 and 503 are not about who asked)."""
    client = request.client.host if request.client else None
    common = {"method": request.method[:10], "path": request.url.path[:500], "reason": str(exc.message)[:300],
              "client": client, "occurred_at": now}  # fmt: skip
    if exc.status == 401:
        return EdgeAuthFailed(**common)
    if exc.status == 403:
        who = getattr(exc, "who", None)
        return EdgeAccessDenied(**common, subject=who.subject[:200] if who else "unknown",
                                roles=list(who.roles)[:20] if who else [], permission=getattr(exc, "permission", None))  # fmt: skip
    return None


async def record(request: Request, exc: Any) -> None:
    event = event_for(request, exc, datetime.now(UTC))
    broker = getattr(request.app.state, "broker", None)
    if event is None or broker is None:
        return
    try:
        await asyncio.wait_for(
            broker.publish(
                event.model_dump(mode="json"), exchange=EVENTS, routing_key=event.routing_key,
                message_id=str(uuid.uuid4()), message_type=event.message_type, persist=True,
                headers=tracing.inject({}),  # audit's record of it joins the refused request's trace
            ),
            PUBLISH_TIMEOUT_S,
        )  # fmt: skip
    except Exception as error:  # the refusal stands; its record is what failed
        log.warning("could not publish %s: %r", event.routing_key, error)
