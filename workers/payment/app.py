"""The payment worker process: `cbs worker payment`.

Besides its queues it runs two background duties on every replica: the payment sweep (approvals
that expired, settlements the partner never answered, held payments whose rail window opened)
and the standing-order scheduler. Row locks taken with SKIP LOCKED share the work between
replicas, and deterministic payment ids make each occurrence happen once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bus.worker import worker_app
from workers.payment import duties
from workers.payment.routes import ROUTES

SWEEP_INTERVAL_S = float(os.environ.get("CBS_PAYMENT_SWEEP_S", "1"))

log = logging.getLogger("cbs.payment")
app = worker_app(ROUTES)
_duties: list[asyncio.Task[None]] = []


async def _forever(name: str, duty: Callable[[Any, datetime], Awaitable[int]], batch: int) -> None:
    runtime = app.runtime  # type: ignore[attr-defined]
    while True:
        try:
            while await runtime.in_transaction(lambda conn: duty(conn, datetime.now(UTC))) == batch:
                pass  # a full batch: more may be due
        except Exception:  # a duty must outlive a database restart; it logs and tries again
            log.exception("%s failed", name)
        await asyncio.sleep(SWEEP_INTERVAL_S)


@app.after_startup
async def start_duties() -> None:
    _duties.append(asyncio.create_task(_forever("payment sweep", duties.sweep_due_payments, duties.SWEEP_BATCH)))
    _duties.append(asyncio.create_task(
        _forever("standing-order scheduler", duties.run_due_standing_orders, duties.SCHEDULER_BATCH)
    ))  # fmt: skip


@app.on_shutdown
async def stop_duties() -> None:
    for task in _duties:
        task.cancel()
    await asyncio.gather(*_duties, return_exceptions=True)
    _duties.clear()
